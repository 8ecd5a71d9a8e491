"""``/v1/keys``: an organisation's admins create, list and revoke its API keys.

The secret appears once, in the creation response; afterwards only its prefix is ever shown. Keys of
other organisations do not exist as far as a caller can tell (404).
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

from fastapi import APIRouter, Path
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from voxvault.api.deps import Admin, VoxVaultDep
from voxvault.api.schemas import KeyCreated, KeyOut
from voxvault.errors import VoxError
from voxvault.governance.keys import MAX_NAME, MAX_VOICE_IDS

router = APIRouter(prefix="/v1/keys", tags=["keys"])

Scope = Literal[
    "voices:read",
    "voices:write",
    "consent:manage",
    "speech:create",
    "speech:transcribe",
    "audit:read",
    "admin",
]
VoiceId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.:-]{1,64}$")]


class KeyCreateRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(default="", max_length=MAX_NAME, description="A label for people, e.g. 'ci'.")
    scopes: list[Scope] = Field(min_length=1, max_length=6)
    voice_ids: list[VoiceId] | None = Field(
        default=None, max_length=MAX_VOICE_IDS, description="Limit the key to these voices (null: all)."
    )
    expires_at: dt.datetime | None = Field(default=None, description="ISO time; UTC when no zone is given.")
    project_id: str | None = Field(
        default=None,
        max_length=64,
        description="A project of the caller's organisation (default: the caller's).",
    )


class KeysOut(BaseModel):
    keys: list[KeyOut]


@router.post("", status_code=201, response_model=KeyCreated)
def create_key(body: KeyCreateRequest, vv: VoxVaultDep, principal: Admin) -> KeyCreated:
    """Create a key in the caller's organisation; the response is the only time the secret is shown."""
    if principal.voice_ids is not None and (
        body.voice_ids is None or not set(body.voice_ids) <= principal.voice_ids
    ):
        # A key limited to some voices must not mint a key for more.
        raise VoxError("voice_not_allowed", "this key may only create keys limited to its own voices", 403)
    expires_at = body.expires_at
    if expires_at is not None:
        try:
            expires_at = (
                expires_at.replace(tzinfo=dt.UTC)
                if expires_at.tzinfo is None
                else expires_at.astimezone(dt.UTC)
            )
        except OverflowError:
            raise VoxError("invalid_expiry", "expires_at is out of range") from None
    created = vv.keys.create(
        org_id=principal.org_id,
        project_id=body.project_id or principal.project_id,
        scopes=list(body.scopes),
        name=body.name,
        voice_ids=list(body.voice_ids) if body.voice_ids is not None else None,
        expires_at=expires_at,
        actor=principal.key_id,
    )
    return KeyCreated.created(created)


@router.get("", response_model=KeysOut)
def list_keys(vv: VoxVaultDep, principal: Admin) -> KeysOut:
    """The organisation's keys, including revoked and expired ones; never a secret or its hash."""
    return KeysOut(keys=[KeyOut.of(k) for k in vv.keys.list(principal.org_id)])


@router.delete("/{key_id}", response_model=KeyOut)
def revoke_key(vv: VoxVaultDep, principal: Admin, key_id: Annotated[str, Path(max_length=64)]) -> KeyOut:
    """Revoke a key at once; it answers 401 from then on. Revoking twice is harmless."""
    return KeyOut.of(vv.keys.revoke(key_id, principal.org_id, actor=principal.key_id))
