"""API keys: shown once, stored as SHA-256 of the secret, checked for scope, tenant, expiry, revocation.

Secrets are 32 random bytes (256 bits) so a fast hash is enough; a slow password hash buys nothing.
A key reads ``vv_<prefix>_<secret>``; the prefix is stored in clear so people can tell keys apart.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import secrets
from dataclasses import dataclass

from sqlalchemy import select

from voxvault.errors import VoxError
from voxvault.store.db import Database
from voxvault.store.models import ApiKey, Organization, Project, utcnow

SCOPES = ("voices:read", "voices:write", "consent:manage", "speech:create", "audit:read", "admin")
KEY_PREFIX = "vv_"


def hash_key(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Principal:
    """Who is calling: the key, its tenant and what it may do."""

    key_id: str
    org_id: str
    project_id: str
    scopes: frozenset[str]
    voice_ids: frozenset[str] | None = None

    def has(self, scope: str) -> bool:
        return "admin" in self.scopes or scope in self.scopes

    def may_use_voice(self, voice_id: str) -> bool:
        return self.voice_ids is None or voice_id in self.voice_ids


@dataclass(frozen=True)
class CreatedKey:
    id: str
    secret: str  # shown once
    prefix: str
    scopes: list[str]
    project_id: str


class KeyService:
    def __init__(self, db: Database) -> None:
        self.db = db

    # -- tenants ---------------------------------------------------------------------------------------
    def ensure_default_project(self) -> tuple[str, str]:
        """The org and project created on first start; returns (org_id, project_id)."""
        with self.db.session() as s:
            project = s.scalars(select(Project).order_by(Project.created_at).limit(1)).first()
            if project is not None:
                return project.org_id, project.id
            org = Organization(name="default")
            s.add(org)
            s.flush()
            project = Project(org_id=org.id, name="default", lexicon={})
            s.add(project)
            s.flush()
            return org.id, project.id

    def create_org_project(self, org_name: str, project_name: str = "default") -> tuple[str, str]:
        with self.db.session() as s:
            org = Organization(name=org_name)
            s.add(org)
            s.flush()
            project = Project(org_id=org.id, name=project_name, lexicon={})
            s.add(project)
            s.flush()
            return org.id, project.id

    # -- keys ------------------------------------------------------------------------------------------
    def create(
        self,
        *,
        org_id: str,
        project_id: str,
        scopes: list[str],
        name: str = "",
        voice_ids: list[str] | None = None,
        expires_at: dt.datetime | None = None,
        secret: str | None = None,
    ) -> CreatedKey:
        unknown = sorted(set(scopes) - set(SCOPES))
        if unknown or not scopes:
            raise VoxError("invalid_scope", f"unknown scopes {unknown}; known: {', '.join(SCOPES)}")
        if secret is None:
            prefix = secrets.token_hex(4)
            secret = f"{KEY_PREFIX}{prefix}_{secrets.token_urlsafe(32)}"
        else:
            if len(secret) < 24:
                raise VoxError("weak_key", "a supplied key must be at least 24 characters")
            prefix = secret.removeprefix(KEY_PREFIX)[:8]
        with self.db.session() as s:
            row = ApiKey(
                org_id=org_id,
                project_id=project_id,
                prefix=prefix,
                key_hash=hash_key(secret),
                name=name,
                scopes=sorted(set(scopes)),
                voice_ids=sorted(voice_ids) if voice_ids is not None else None,
                expires_at=expires_at,
            )
            s.add(row)
            s.flush()
            return CreatedKey(row.id, secret, prefix, row.scopes, project_id)

    def authenticate(self, secret: str) -> Principal:
        digest = hash_key(secret)
        with self.db.session() as s:
            row = s.scalars(select(ApiKey).where(ApiKey.key_hash == digest)).first()
            if row is None or not hmac.compare_digest(row.key_hash, digest):
                raise VoxError("invalid_api_key", "the API key is not valid", 401)
            now = utcnow()
            if row.revoked_at is not None:
                raise VoxError("api_key_revoked", "the API key has been revoked", 401)
            if row.expires_at is not None and row.expires_at <= now:
                raise VoxError("api_key_expired", "the API key has expired", 401)
            if row.last_used_at is None or (now - row.last_used_at).total_seconds() > 60:
                row.last_used_at = now
            project_id = row.project_id
            if project_id is None:
                project = s.scalars(select(Project).where(Project.org_id == row.org_id).limit(1)).first()
                project_id = project.id if project else ""
            return Principal(
                key_id=row.id,
                org_id=row.org_id,
                project_id=project_id,
                scopes=frozenset(row.scopes),
                voice_ids=frozenset(row.voice_ids) if row.voice_ids is not None else None,
            )

    def list(self, org_id: str) -> list[ApiKey]:
        with self.db.session() as s:
            rows = list(s.scalars(select(ApiKey).where(ApiKey.org_id == org_id).order_by(ApiKey.created_at)))
            s.expunge_all()
            return rows

    def revoke(self, key_id: str, org_id: str) -> None:
        with self.db.session() as s:
            row = s.get(ApiKey, key_id)
            if row is None or row.org_id != org_id:
                raise VoxError("key_not_found", "no such API key", 404)
            if row.revoked_at is None:
                row.revoked_at = utcnow()

    def count(self) -> int:
        with self.db.session() as s:
            return len(list(s.scalars(select(ApiKey.id).limit(1))))
