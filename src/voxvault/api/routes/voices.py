"""``/v1/voices``: the voices a caller can use (presets and its project's clones) and a clone's lifecycle.

``PATCH`` renames, revokes (``{"status": "revoked"}``: synthesis is refused at once with 403
``consent_revoked``) or renews (``{"consent_id": ...}`` with a consent verified for this voice).
``DELETE`` erases: embedding, style, samples and consent audio are deleted; an audit entry remains.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Request
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ConfigDict, Field

from voxvault.api.deps import VoicesReader, VoicesWriter, VoxVaultDep
from voxvault.api.schemas import VoiceDetailOut, VoiceOut, VoicesOut
from voxvault.api.voice_fields import voice_fields
from voxvault.errors import VoxError
from voxvault.voices.presets import resolve_preset

router = APIRouter(prefix="/v1/voices", tags=["voices"])

VoiceId = Annotated[str, Path(max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")]


class VoicePatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, min_length=1, max_length=200)
    status: Literal["revoked"] | None = Field(default=None, description="'revoked' withdraws consent.")
    consent_id: str | None = Field(
        default=None, max_length=64, description="Renew: a consent verified for this voice."
    )


class ErasureOut(BaseModel):
    voice_id: str
    status: str
    blobs_deleted: int
    consents_scrubbed: int
    outputs_deleted: int = 0  # batch clips spoken with the voice, deleted from the store
    batch_items_scrubbed: int = 0
    exported_outputs_left: int = 0  # clips in folders the user exported to (`batch run --out`): theirs


@router.get("", response_model=VoicesOut)
def list_voices(request: Request, vv: VoxVaultDep, principal: VoicesReader) -> VoicesOut:
    """Presets, then the caller's project's cloned voices (erased ones are gone)."""
    presets = [
        VoiceOut(
            voice_id=v.id,
            name=v.name,
            kind=v.kind,
            status=v.status,
            **voice_fields(request, v.id, "preset", v.description),
        )
        for v in vv.voices()
    ]
    cloned = [
        VoiceOut(
            voice_id=v.voice_id,
            name=v.name,
            kind="cloned",
            status=v.status,
            expires_at=v.expires_at,
            **voice_fields(request, v.voice_id, "cloned", ""),
        )
        for v in vv.voice_registry.list(principal.project_id)
    ]
    return VoicesOut(voices=presets + cloned)


@router.get("/{voice_id}", response_model=VoiceDetailOut)
def get_voice(voice_id: VoiceId, vv: VoxVaultDep, principal: VoicesReader) -> VoiceDetailOut:
    """One voice: status, consent and its expiry, what was kept and until when, enrollment scores."""
    preset = resolve_preset(voice_id)
    if preset is not None:
        known = {v.id: v for v in vv.voices()}
        if preset.id in known:
            return VoiceDetailOut(
                voice_id=preset.id,
                name=preset.id,
                kind="preset",
                status="active",
                engine=vv.settings.tts_engine,
            )
    return VoiceDetailOut(**vv.voice_registry.get(voice_id, principal.project_id).to_json())


def _not_preset(voice_id: str) -> None:
    if resolve_preset(voice_id) is not None:
        raise VoxError("preset_voice", "preset voices cannot be changed or erased", 409)


@router.patch("/{voice_id}", response_model=VoiceDetailOut)
def update_voice(
    voice_id: VoiceId, body: VoicePatch, vv: VoxVaultDep, principal: VoicesWriter
) -> VoiceDetailOut:
    """Rename, revoke consent, or renew with a newly verified consent."""
    registry = vv.voice_registry
    _not_preset(voice_id)
    registry.get(voice_id, principal.project_id)  # 404 first, whatever the body says
    if body.name is None and body.status is None and body.consent_id is None:
        raise VoxError("invalid_request", "give a name, status 'revoked', or a consent_id to renew", 422)
    if body.status is not None and body.consent_id is not None:
        raise VoxError("invalid_request", "revoke and renew are separate requests", 422)
    result: dict[str, Any] = {}
    if body.name is not None:
        result = registry.rename(voice_id, principal.project_id, body.name, actor=principal.key_id).to_json()
    if body.status == "revoked":
        result = registry.revoke(voice_id, principal.project_id, actor=principal.key_id).to_json()
    if body.consent_id is not None:
        renewed = registry.renew(voice_id, principal.project_id, body.consent_id, actor=principal.key_id)
        result = renewed.to_json()
    return VoiceDetailOut(**result)


@router.delete("/{voice_id}", response_model=ErasureOut)
async def erase_voice(voice_id: VoiceId, vv: VoxVaultDep, principal: VoicesWriter) -> ErasureOut:
    """Erase the voice: embedding, style, samples and consent audio leave the database and blob store."""
    _not_preset(voice_id)
    result = await run_in_threadpool(
        lambda: vv.voice_registry.erase(voice_id, principal.project_id, actor=principal.key_id)
    )
    return ErasureOut(**result.to_json())
