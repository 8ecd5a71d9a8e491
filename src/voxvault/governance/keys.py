"""API keys: shown once, stored as SHA-256 of the secret, checked for scope, tenant, expiry, revocation.

Secrets carry 256 random bits, so a fast hash is enough; a slow password hash buys nothing. A key reads
``vv_<prefix>_<secret>``; the 8-character prefix is stored in clear so people can tell keys apart.

Tenancy: an organisation owns projects and keys; a key belongs to one project of its organisation and
only ever sees that project's voices, consents and jobs. ``admin`` keys manage their organisation's keys.
The first organisation (created on first start) is the *operator* organisation: its ``audit:read`` keys
see the whole audit chain; other organisations see only their own entries.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from voxvault.errors import VoxError
from voxvault.store.db import Database
from voxvault.store.models import ApiKey, Organization, Project, utcnow

if TYPE_CHECKING:
    from voxvault.governance.audit import AuditTrail

SCOPES = (
    "voices:read",
    "voices:write",
    "consent:manage",
    "speech:create",
    "speech:transcribe",
    "audit:read",
    "admin",
)
KEY_PREFIX = "vv_"
MAX_VOICE_IDS = 1000
MAX_NAME = 200
_VOICE_ID = re.compile(r"[A-Za-z0-9_.:-]{1,64}")
_DURATION = re.compile(r"(\d+)\s*([smhdw])")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def hash_key(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def supplied_key_prefix(secret: str) -> str:
    """The listed prefix of a key someone supplied (``VOXVAULT_BOOTSTRAP_KEY``): derived from the whole
    secret under its own label, so it is neither part of the secret nor part of its stored hash."""
    return hashlib.sha256(b"voxvault key prefix\x00" + secret.encode("utf-8")).hexdigest()[:8]


def parse_expiry(value: str, now: dt.datetime | None = None) -> dt.datetime:
    """``30d``, ``12h``, ``90m``, ``2w`` from now, or an ISO date/time (UTC when no zone is given)."""
    now = now or utcnow()
    m = _DURATION.fullmatch(value.strip().lower())
    try:
        if m:
            seconds = int(m.group(1)) * _UNITS[m.group(2)]
            if seconds <= 0:
                raise VoxError("invalid_expiry", "an expiry must be in the future")
            return now + dt.timedelta(seconds=seconds)
        when = dt.datetime.fromisoformat(value.strip())
        return when.replace(tzinfo=dt.UTC) if when.tzinfo is None else when.astimezone(dt.UTC)
    except (ValueError, OverflowError):
        raise VoxError("invalid_expiry", "expiry is a duration like 30d/12h or an ISO date") from None


@dataclass(frozen=True)
class Principal:
    """Who is calling: the key, its tenant and what it may do."""

    key_id: str
    org_id: str
    project_id: str
    scopes: frozenset[str]
    voice_ids: frozenset[str] | None = None
    prefix: str = ""

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
    org_id: str = ""
    name: str = ""
    voice_ids: list[str] | None = None
    created_at: dt.datetime | None = None
    expires_at: dt.datetime | None = None


@dataclass(frozen=True)
class ProjectInfo:
    id: str
    org_id: str
    name: str
    created_at: dt.datetime


@dataclass(frozen=True)
class OrganizationInfo:
    id: str
    name: str
    created_at: dt.datetime
    projects: list[ProjectInfo]


@dataclass(frozen=True)
class KeyInfo:
    """What may be shown about a key after creation: never the secret, never its hash."""

    id: str
    prefix: str
    name: str
    org_id: str
    project_id: str | None
    scopes: list[str]
    voice_ids: list[str] | None
    created_at: dt.datetime
    expires_at: dt.datetime | None
    revoked_at: dt.datetime | None
    last_used_at: dt.datetime | None

    @classmethod
    def of(cls, row: ApiKey) -> KeyInfo:
        return cls(
            row.id,
            row.prefix,
            row.name,
            row.org_id,
            row.project_id,
            list(row.scopes),
            list(row.voice_ids) if row.voice_ids is not None else None,
            row.created_at,
            row.expires_at,
            row.revoked_at,
            row.last_used_at,
        )

    @property
    def state(self) -> str:
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at is not None and self.expires_at <= utcnow():
            return "expired"
        return "active"


def _check_scopes(scopes: list[str]) -> list[str]:
    unknown = sorted(set(scopes) - set(SCOPES))
    if unknown or not scopes:
        raise VoxError("invalid_scope", f"unknown or missing scopes {unknown}; known: {', '.join(SCOPES)}")
    return sorted(set(scopes))


def _check_voice_ids(voice_ids: list[str] | None) -> list[str] | None:
    if voice_ids is None:
        return None
    if len(voice_ids) > MAX_VOICE_IDS:
        raise VoxError("invalid_voice_ids", f"a key may list at most {MAX_VOICE_IDS} voices")
    for v in voice_ids:
        if not isinstance(v, str) or not _VOICE_ID.fullmatch(v):
            raise VoxError("invalid_voice_ids", "voice ids are 1-64 characters of [A-Za-z0-9_.:-]")
    return sorted(set(voice_ids))


class KeyService:
    def __init__(self, db: Database, audit: AuditTrail | None = None) -> None:
        self.db = db
        self.audit = audit

    def _audit(self, action: str, actor: str | None, target: str | None, details: dict[str, Any]) -> None:
        if self.audit is not None:
            self.audit.record(action, actor=actor, target=target, details=details)

    # -- tenants ---------------------------------------------------------------------------------------
    def ensure_default_project(self) -> tuple[str, str]:
        """The org and project created on first start; returns (org_id, project_id)."""
        with self.db.session() as s:
            project = s.scalars(select(Project).order_by(Project.created_at, Project.id).limit(1)).first()
            if project is not None:
                return project.org_id, project.id
            org = Organization(name="default")
            s.add(org)
            s.flush()
            project = Project(org_id=org.id, name="default", lexicon={})
            s.add(project)
            s.flush()
            return org.id, project.id

    def create_org_project(
        self, org_name: str, project_name: str = "default", actor: str | None = None
    ) -> tuple[str, str]:
        """A new organisation (tenant) with its first project; audited ``org.created``."""
        with self.db.session() as s:
            org = Organization(name=org_name)
            s.add(org)
            s.flush()
            project = Project(org_id=org.id, name=project_name, lexicon={})
            s.add(project)
            s.flush()
            org_id, project_id = org.id, project.id
        # An operator's act: not listed in the new tenant's own audit export (no details.org_id).
        self._audit("org.created", actor, org_id, {"created_org_id": org_id, "first_project_id": project_id})
        return org_id, project_id

    def create_project(self, org_id: str, name: str, actor: str | None = None) -> str:
        """A new project in ``org_id``; audited ``project.created``."""
        with self.db.session() as s:
            if s.get(Organization, org_id) is None:
                raise VoxError("org_not_found", "no such organisation", 404)
            project = Project(org_id=org_id, name=name, lexicon={})
            s.add(project)
            try:
                s.flush()
            except IntegrityError:
                raise VoxError(
                    "project_exists", f"the organisation already has a project named {name!r}", 409
                ) from None
            project_id = project.id
        self._audit("project.created", actor, project_id, {"org_id": org_id, "project_id": project_id})
        return project_id

    def organizations(self, org_id: str | None = None) -> list[OrganizationInfo]:
        """Every organisation (or only ``org_id``) with its projects, oldest first."""
        with self.db.session() as s:
            q = select(Organization).order_by(Organization.created_at, Organization.id)
            if org_id is not None:
                q = q.where(Organization.id == org_id)
            orgs = list(s.scalars(q))
            projects = s.scalars(
                select(Project)
                .where(Project.org_id.in_([o.id for o in orgs]))
                .order_by(Project.created_at, Project.id)
            )
            by_org: dict[str, list[ProjectInfo]] = {}
            for p in projects:
                by_org.setdefault(p.org_id, []).append(ProjectInfo(p.id, p.org_id, p.name, p.created_at))
            return [OrganizationInfo(o.id, o.name, o.created_at, by_org.get(o.id, [])) for o in orgs]

    def operator_org_id(self) -> str | None:
        """The organisation created first (by ``bootstrap``): it runs the installation."""
        with self.db.session() as s:
            return s.scalars(
                select(Organization.id).order_by(Organization.created_at, Organization.id).limit(1)
            ).first()

    def project_org(self, project_id: str) -> str | None:
        with self.db.session() as s:
            project = s.get(Project, project_id)
            return project.org_id if project is not None else None

    def org_key_ids(self, org_id: str) -> set[str]:
        with self.db.session() as s:
            return set(s.scalars(select(ApiKey.id).where(ApiKey.org_id == org_id)))

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
        actor: str | None = None,
        bootstrap: bool = False,
    ) -> CreatedKey:
        """Create a key in ``project_id`` (which must belong to ``org_id``); the secret is returned once."""
        scopes = _check_scopes(scopes)
        voice_ids = _check_voice_ids(voice_ids)
        if len(name) > MAX_NAME:
            raise VoxError("invalid_name", f"key names are at most {MAX_NAME} characters")
        if expires_at is not None:
            if expires_at.tzinfo is None:
                expires_at = expires_at.replace(tzinfo=dt.UTC)
            if expires_at <= utcnow():
                raise VoxError("invalid_expiry", "expires_at must be in the future")
        if secret is None:
            prefix = secrets.token_hex(4)
            secret = f"{KEY_PREFIX}{prefix}_{secrets.token_urlsafe(32)}"
        else:
            if len(secret) < 24 or any(c.isspace() for c in secret) or not secret.isprintable():
                raise VoxError(
                    "weak_key", "a supplied key must be at least 24 printable non-space characters"
                )
            prefix = supplied_key_prefix(secret)  # never the secret's own first characters
        with self.db.session() as s:
            project = s.get(Project, project_id)
            if project is None or project.org_id != org_id:
                raise VoxError("project_not_found", "no such project in this organisation", 404)
            row = ApiKey(
                org_id=org_id,
                project_id=project_id,
                prefix=prefix,
                key_hash=hash_key(secret),
                name=name,
                scopes=scopes,
                voice_ids=voice_ids,
                expires_at=expires_at,
            )
            s.add(row)
            try:
                s.flush()
            except IntegrityError:
                raise VoxError("key_exists", "that key already exists", 409) from None
            created = CreatedKey(
                row.id,
                secret,
                prefix,
                list(scopes),
                project_id,
                org_id,
                name,
                voice_ids,
                row.created_at,
                expires_at,
            )
        self._audit(
            "key.created",
            actor,
            created.id,
            {
                "org_id": org_id,
                "project_id": project_id,
                "prefix": prefix,
                "name": name,
                "scopes": scopes,
                "voice_ids": voice_ids,
                "expires_at": expires_at.isoformat() if expires_at else None,
                "bootstrap": bootstrap,
            },
        )
        return created

    def authenticate(self, secret: str) -> Principal:
        """The principal for ``secret``; 401 ``VoxError`` when unknown, revoked or expired."""
        digest = hash_key(secret)
        with self.db.session() as s:
            row = s.scalars(select(ApiKey).where(ApiKey.key_hash == digest)).first()
            if row is None or not hmac.compare_digest(row.key_hash, digest):
                raise VoxError("invalid_api_key", "the API key is not valid", 401)
            now = utcnow()
            refusal = None
            if row.revoked_at is not None:
                refusal = VoxError("api_key_revoked", "the API key has been revoked", 401)
            elif row.expires_at is not None and row.expires_at <= now:
                refusal = VoxError("api_key_expired", "the API key has expired", 401)
            if refusal is None and (
                row.last_used_at is None or (now - row.last_used_at).total_seconds() > 60
            ):
                row.last_used_at = now
            key_id, org_id, project_id = row.id, row.org_id, row.project_id
            if project_id is None:
                project = s.scalars(
                    select(Project).where(Project.org_id == row.org_id).order_by(Project.created_at).limit(1)
                ).first()
                project_id = project.id if project else ""
            principal = Principal(
                key_id=key_id,
                org_id=org_id,
                project_id=project_id,
                scopes=frozenset(row.scopes),
                voice_ids=frozenset(row.voice_ids) if row.voice_ids is not None else None,
                prefix=row.prefix,
            )
        if refusal is not None:
            # A stolen key being tried after revocation is worth knowing about.
            self._audit("access.denied", key_id, None, {"reason": refusal.code})
            raise refusal
        return principal

    def list(self, org_id: str | None = None) -> list[KeyInfo]:
        """Keys of ``org_id`` (every key when None: the CLI, run by the operator), oldest first."""
        with self.db.session() as s:
            q = select(ApiKey).order_by(ApiKey.created_at, ApiKey.id)
            if org_id is not None:
                q = q.where(ApiKey.org_id == org_id)
            return [KeyInfo.of(r) for r in s.scalars(q)]

    def get(self, key_id: str, org_id: str | None = None) -> KeyInfo:
        with self.db.session() as s:
            row = s.get(ApiKey, key_id)
            if row is None or (org_id is not None and row.org_id != org_id):
                raise VoxError("key_not_found", "no such API key", 404)
            return KeyInfo.of(row)

    def revoke(self, key_id: str, org_id: str | None, actor: str | None = None) -> KeyInfo:
        """Revoke a key of ``org_id`` (any org when None); revoking twice is harmless.

        Through the API (``org_id`` given) the last active admin key of an organisation cannot be
        revoked: nothing could then manage its keys (409 ``last_admin_key``). The CLI (``org_id`` None)
        may, since the operator can always create another key there.
        """
        with self.db.session() as s:
            row = s.get(ApiKey, key_id)
            if row is None or (org_id is not None and row.org_id != org_id):
                raise VoxError("key_not_found", "no such API key", 404)
            changed = row.revoked_at is None
            if changed and org_id is not None and _is_active_admin(row, utcnow()):
                others = s.scalars(
                    select(ApiKey)
                    .where(ApiKey.org_id == row.org_id, ApiKey.id != row.id, ApiKey.revoked_at.is_(None))
                    .with_for_update()  # PostgreSQL: two revocations cannot both see the other key
                )
                if not any(_is_active_admin(other, utcnow()) for other in others):
                    raise VoxError(
                        "last_admin_key",
                        "this is the organisation's last active admin key; create another admin key first",
                        409,
                    )
            if changed:
                row.revoked_at = utcnow()
            s.flush()
            info = KeyInfo.of(row)
        if changed:
            self._audit("key.revoked", actor, key_id, {"org_id": info.org_id, "prefix": info.prefix})
        return info

    def count(self) -> int:
        """0 when no key exists yet (first start), else 1: only emptiness matters."""
        with self.db.session() as s:
            return len(list(s.scalars(select(ApiKey.id).limit(1))))


def _is_active_admin(row: ApiKey, now: dt.datetime) -> bool:
    """An admin key that can still be used: not revoked, not expired, not limited to some voices."""
    return (
        "admin" in (row.scopes or [])
        and row.voice_ids is None
        and row.revoked_at is None
        and (row.expires_at is None or row.expires_at > now)
    )
