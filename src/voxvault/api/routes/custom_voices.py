"""The SDKs' custom-voice calls, mapped onto voxvault's consent flow, never around it (docs/consent.md).

* ElevenLabs ``POST /v1/voices/add`` (``voices.ivc.create``: multipart ``name``, ``files[]``): no voice is
  made from the files. voxvault starts a consent instead and answers ``requires_verification: true``
  with its ``consent_id``, the script (with a one-time code) the speaker must read, and where to upload
  that recording with the samples (``POST /v1/consents/{id}/enroll``). The files are not kept: samples of
  a voice without its speaker's verified consent are exactly what voxvault does not store.
  The consent names ``speaker_name`` (default: the voice's ``name``), ``organization`` (default: the
  key's organisation) and ``purpose`` (default: the ``description``) and lasts ``expires_in_days``
  (default 365), which the form may set.
* OpenAI ``POST /v1/audio/voice_consents`` and ``POST /v1/audio/voices``: OpenAI's consent is a recording
  of a fixed phrase, which anyone could replay; voxvault's must carry a one-time code it issued. Both are
  refused up front (400 ``consent_flow_required``) with the way to do it.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from voxvault.api.deps import ConsentManager, VoxVaultDep
from voxvault.api.forms import read_bounded_form
from voxvault.api.schemas import BINARY, multipart_body
from voxvault.errors import VoxError

router = APIRouter(tags=["consents"])

DEFAULT_PURPOSE = "speech synthesis through this voxvault server"
DEFAULT_CONSENT_DAYS = 365.0  # ElevenLabs' add has no expiry; the script says when consent ends
FLOW = (
    "start a consent with POST /v1/consents (speaker_name, organization, purpose); the speaker reads its "
    "script, one-time code included; upload that recording with the samples to "
    "POST /v1/consents/{consent_id}/enroll (docs/consent.md)"
)


def _field(value: object, name: str, limit: int) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise VoxError("invalid_upload", f"'{name}' must be a text field", 422, field=name)
    value = value.strip()
    if len(value) > limit:
        raise VoxError("invalid_request", f"'{name}' is longer than {limit} characters", 422, field=name)
    return value or None


@router.post(
    "/v1/voices/add",
    response_class=JSONResponse,
    openapi_extra=multipart_body(  # the form is read by hand (bounded)
        ["name", "files"],
        {
            "name": {"type": "string"},
            "files": {"type": "array", "items": BINARY},
            "description": {"type": "string"},
            "speaker_name": {"type": "string"},
            "organization": {"type": "string"},
            "expires_in_days": {"type": "number"},
        },
    ),
)
async def elevenlabs_add_voice(request: Request, vv: VoxVaultDep, principal: ConsentManager) -> JSONResponse:
    """ElevenLabs' instant clone: starts a voxvault consent (``requires_verification: true``)."""
    form = await read_bounded_form(request, vv.settings.max_upload_bytes, vv.settings.enroll_max_files)
    try:
        name = _field(form.get("name"), "name", 200)
        if name is None:
            raise VoxError("missing_field", "the form needs the voice's 'name'", 422, field="name")
        files = [*form.getlist("files"), *form.getlist("files[]")]
        if not files or any(isinstance(f, str) for f in files):
            raise VoxError(
                "missing_field", "the form needs one or more 'files' of the voice", 422, field="files"
            )
        speaker = _field(form.get("speaker_name"), "speaker_name", 200) or name
        organization = _field(form.get("organization"), "organization", 200)
        purpose = (
            _field(form.get("purpose"), "purpose", 300)
            or _field(form.get("description"), "description", 300)
            or DEFAULT_PURPOSE
        )
        days_text = _field(form.get("expires_in_days"), "expires_in_days", 12)
        try:
            days = float(days_text) if days_text is not None else DEFAULT_CONSENT_DAYS
        except ValueError:
            raise VoxError("invalid_request", "expires_in_days must be a number", 422) from None
    finally:
        await form.close()  # the files are not kept (module docstring)
    if organization is None:
        orgs = await run_in_threadpool(vv.keys.organizations, principal.org_id)
        organization = orgs[0].name if orgs else "this voxvault server's operator"
    ticket = await run_in_threadpool(
        lambda: vv.consents.create(
            project_id=principal.project_id,
            speaker_name=speaker,
            organization=organization,
            purpose=purpose,
            expires_in_days=days,
            actor=principal.key_id,
        )
    )
    return JSONResponse(
        {
            "voice_id": "",
            "requires_verification": True,
            "consent_id": ticket.consent_id,
            "script": ticket.script,
            "challenge": ticket.challenge,
            "challenge_expires_at": ticket.challenge_expires_at.isoformat(),
            "enroll_url": f"/v1/consents/{ticket.consent_id}/enroll",
            "message": "no voice was made: the speaker reads the script aloud, then upload that recording "
            "(field 'recording') with the samples ('samples') and the code ('challenge') to enroll_url",
        }
    )


def _refuse() -> None:
    raise VoxError(
        "consent_flow_required", f"this server makes voices only with its own consent: {FLOW}", 400
    )


@router.post("/v1/audio/voice_consents")
def openai_voice_consents(principal: ConsentManager) -> None:
    """OpenAI's consent recording: refused, with the way to give a verifiable consent."""
    _refuse()


@router.post("/v1/audio/voices")
def openai_create_voice(principal: ConsentManager) -> None:
    """OpenAI's custom voice: refused, with the way to make one (docs/consent.md)."""
    _refuse()
