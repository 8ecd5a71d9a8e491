"""ElevenLabs' account and voice-library calls, answered from voxvault's own voices and limits.

* ``GET /v2/voices``: search, category/type filters, sort and pagination (``next_page_token``).
* ``GET /v1/user`` and ``GET /v1/user/subscription``: a self-hosted "subscription" whose limits are the
  server's (characters per request, voice slots unlimited); SDKs and agent frameworks call these to check
  a key works.
* ``GET /v1/voices/{voice_id}/preview``: a short preview clip (MP3, watermarked and recorded like every
  output; it needs a key with ``speech:create``), what each voice's ``preview_url`` points at.

Voices carry ElevenLabs' ``category`` (``premade`` for presets, ``cloned`` for consented clones),
``labels``, ``description``, ``preview_url`` and ``settings``; ``GET /v1/voices`` uses the same fields.
"""

from __future__ import annotations

import base64
import datetime as dt
import time
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import JSONResponse, Response

from voxvault.api.deps import SpeechCreator, SpeechStreamsDep, VoicesReader, VoxVaultDep
from voxvault.api.voice_fields import DEFAULT_SETTINGS, voice_fields
from voxvault.errors import VoxError
from voxvault.governance.keys import Principal
from voxvault.service import VoxVault

router = APIRouter(tags=["elevenlabs"])


PREVIEW_TEXT = "Hello! This is a preview of this voice, spoken by voxvault."


def _all_voices(request: Request, vv: VoxVault, principal: Principal) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for v in vv.voices():
        out.append(
            {
                "voice_id": v.id,
                "name": v.name,
                "created_at_unix": None,
                "is_owner": False,
                **voice_fields(request, v.id, "preset", v.description),
            }
        )
    for row in vv.voice_registry.list(principal.project_id):
        created = row.created_at
        out.append(
            {
                "voice_id": row.voice_id,
                "name": row.name,
                "created_at_unix": int(created.timestamp()) if isinstance(created, dt.datetime) else None,
                "is_owner": True,
                "status": row.status,
                **voice_fields(request, row.voice_id, "cloned", ""),
            }
        )
    return [v for v in out if principal.may_use_voice(v["voice_id"])]


def _page_token(offset: int) -> str:
    return base64.urlsafe_b64encode(f"o:{offset}".encode()).decode("ascii")


def _offset(token: str | None) -> int:
    if not token:
        return 0
    try:
        raw = base64.urlsafe_b64decode(token.encode("ascii")).decode("ascii")
        if raw.startswith("o:") and raw[2:].isdigit():
            return int(raw[2:])
    except (ValueError, UnicodeError):
        pass
    raise VoxError("invalid_page_token", "next_page_token is not one this server gave out", 400)


@router.get("/v2/voices", response_class=JSONResponse)
def list_voices_v2(
    request: Request,
    vv: VoxVaultDep,
    principal: VoicesReader,
    next_page_token: Annotated[str | None, Query(max_length=64)] = None,
    page_size: Annotated[int, Query(ge=1, le=100)] = 10,
    search: Annotated[str | None, Query(max_length=200)] = None,
    sort: Annotated[Literal["created_at_unix", "name"] | None, Query()] = None,
    sort_direction: Annotated[Literal["asc", "desc"] | None, Query()] = None,
    voice_type: Annotated[
        Literal["personal", "community", "default", "workspace", "non-default", "saved"] | None, Query()
    ] = None,
    category: Annotated[Literal["premade", "cloned", "generated", "professional"] | None, Query()] = None,
    include_total_count: bool = True,
) -> JSONResponse:
    """ElevenLabs' searchable, paginated voice list (presets are ``default``, clones ``personal``)."""
    voices = _all_voices(request, vv, principal)
    if search:
        needle = search.lower()
        voices = [
            v for v in voices if needle in v["name"].lower() or needle in (v["description"] or "").lower()
        ]
    if category is not None:
        voices = [v for v in voices if v["category"] == category]
    if voice_type in {"personal", "workspace", "non-default"}:
        voices = [v for v in voices if v["category"] == "cloned"]
    elif voice_type == "default":
        voices = [v for v in voices if v["category"] == "premade"]
    elif voice_type in {"community", "saved"}:
        voices = []
    if sort == "name":
        voices.sort(key=lambda v: v["name"].lower(), reverse=sort_direction == "desc")
    elif sort == "created_at_unix":
        voices.sort(key=lambda v: v["created_at_unix"] or 0, reverse=sort_direction != "asc")
    start = _offset(next_page_token)
    page = voices[start : start + page_size]
    more = start + page_size < len(voices)
    return JSONResponse(
        {
            "voices": page,
            "has_more": more,
            "total_count": len(voices),
            "next_page_token": _page_token(start + page_size) if more else None,
        }
    )


def _subscription(vv: VoxVault, principal: Principal) -> dict[str, Any]:
    settings = vv.settings
    cloned = len(vv.voice_registry.list(principal.project_id))
    return {
        "tier": "self-hosted",
        "character_count": 0,
        "character_limit": settings.max_input_chars,
        "max_character_limit_extension": None,
        "max_credit_limit_extension": None,
        "can_extend_character_limit": False,
        "allowed_to_extend_character_limit": False,
        "next_character_count_reset_unix": None,
        "voice_slots_used": cloned,
        "professional_voice_slots_used": 0,
        "professional_voice_slots_used_in_workspace": 0,
        "voice_limit": 10_000,
        "max_voice_add_edits": None,
        "voice_add_edit_counter": 0,
        "professional_voice_limit": 0,
        "can_extend_voice_limit": False,
        "can_use_instant_voice_cloning": True,
        "can_use_professional_voice_cloning": False,
        "currency": None,
        "current_overage": None,
        "status": "active",
        "billing_period": None,
        "character_refresh_period": None,
    }


@router.get("/v1/user/subscription", response_class=JSONResponse)
def user_subscription(vv: VoxVaultDep, principal: VoicesReader) -> JSONResponse:
    """The server's limits in ElevenLabs' subscription shape (``character_limit``: per request)."""
    return JSONResponse(_subscription(vv, principal))


@router.get("/v1/user", response_class=JSONResponse)
def user(vv: VoxVaultDep, principal: VoicesReader) -> JSONResponse:
    """The key's project as an ElevenLabs user: ``user_id`` is the key id, ``workspace_id`` the project."""
    return JSONResponse(
        {
            "user_id": principal.key_id,
            "workspace_id": principal.project_id,
            "subscription": _subscription(vv, principal),
            "is_new_user": False,
            "can_use_delayed_payment_methods": False,
            "is_onboarding_completed": True,
            "is_onboarding_checklist_completed": True,
            "is_api_key_hashed": True,
            "created_at": 0,
            "seat_type": "workspace_admin" if principal.has("admin") else "workspace_member",
        }
    )


@router.get("/v1/voices/settings/default", response_class=JSONResponse)
def default_voice_settings(principal: VoicesReader) -> JSONResponse:
    """ElevenLabs' default voice settings (clients read them before a first request); only ``speed``
    changes how voxvault speaks."""
    return JSONResponse(dict(DEFAULT_SETTINGS))


@router.get("/v1/voices/{voice_id}/settings", response_class=JSONResponse)
def voice_settings(
    voice_id: Annotated[str, Path(max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")],
    vv: VoxVaultDep,
    principal: VoicesReader,
) -> JSONResponse:
    """A voice's settings: the defaults, once the voice is known in the caller's project (404 otherwise)."""
    vv.catalog.resolve(voice_id, project_id=principal.project_id)
    return JSONResponse(dict(DEFAULT_SETTINGS))


@router.get(
    "/v1/voices/{voice_id}/preview",
    name="voice_preview",
    response_class=Response,
    responses={200: {"content": {"audio/mpeg": {}}, "description": "A few seconds of the voice."}},
)
def voice_preview(
    voice_id: Annotated[str, Path(max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")],
    vv: VoxVaultDep,
    streams: SpeechStreamsDep,
    principal: SpeechCreator,
) -> Response:
    """A short MP3 of the voice; watermarked and recorded like any other output."""
    t_start = time.perf_counter()
    style = vv.voice_for(principal, voice_id)
    prepared = vv.pipeline.prepare(PREVIEW_TEXT, style, fmt="mp3", first_piece_phonemes=None)
    chunks, ticket = streams.start(principal, prepared, t_start)
    audio = b"".join(chunks)
    return Response(audio, media_type=prepared.content_type, headers={"x-generation-id": ticket.id})
