"""``/v1/consents``: consent scripts, enrollment uploads and renewal recordings.

Uploads are ``multipart/form-data``. The body is bounded before it is parsed: a declared
``Content-Length`` over ``max_upload_bytes`` is refused at once (413 ``upload_too_large``) without reading
a byte of it; otherwise the bytes are counted as they arrive (spooled to a temporary file past a few MiB)
and the request is refused the moment the count passes the limit. Only then is the form parsed.
The checks themselves run in a worker thread (they are CPU-bound model calls).
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, Path, Request
from fastapi.concurrency import run_in_threadpool
from pydantic import AliasChoices, BaseModel, ConfigDict, Field
from starlette.datastructures import FormData, UploadFile
from starlette.responses import JSONResponse

from voxvault.api.deps import ConsentManager, VoicesWriter, VoxVaultDep
from voxvault.api.forms import read_bounded_form
from voxvault.api.schemas import BINARY, VoiceDetailOut, multipart_body
from voxvault.errors import VoxError
from voxvault.service import VoxVault
from voxvault.text.validity import check_text
from voxvault.voices.enrollment import Upload

router = APIRouter(prefix="/v1/consents", tags=["consents"])

ConsentId = Annotated[str, Path(max_length=64, pattern=r"^[A-Za-z0-9-]+$")]


class ConsentCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    speaker_name: str = Field(max_length=200, description="Who is giving consent, as they will say it.")
    organization: str = Field(
        max_length=200,
        validation_alias=AliasChoices("organization", "organisation"),
        description="Who will use the voice.",
    )
    purpose: str = Field(max_length=300, description="What the voice will be used for.")
    expires_at: dt.datetime | None = Field(
        default=None, description="When the consent ends (ISO 8601 with zone)."
    )
    expires_in_days: float | None = Field(
        default=None, gt=0, description="Or: how many days the consent lasts."
    )


class ConsentTicketOut(BaseModel):
    consent_id: str
    status: str = "pending"
    script: str = Field(description="What the speaker reads aloud, one-time code included.")
    challenge: str = Field(description="The one-time code (shown once; send it back with the recording).")
    challenge_expires_at: dt.datetime
    expires_at: dt.datetime
    speaker_name: str
    organization: str
    purpose: str


class ConsentOut(BaseModel):
    consent_id: str
    status: str
    speaker_name: str
    organization: str
    purpose: str
    script: str
    created_at: dt.datetime
    challenge_expires_at: dt.datetime
    expires_at: dt.datetime | None
    verified_at: dt.datetime | None
    revoked_at: dt.datetime | None
    voice_id: str | None
    refusal: dict[str, Any] | None
    scores: dict[str, Any]
    evidence_kept: bool


@router.post("", status_code=201, response_model=ConsentTicketOut)
def create_consent(body: ConsentCreate, vv: VoxVaultDep, principal: ConsentManager) -> ConsentTicketOut:
    """Start a consent: returns the script (naming speaker, organisation and purpose) with a one-time code."""
    ticket = vv.consents.create(
        project_id=principal.project_id,
        speaker_name=body.speaker_name,
        organization=body.organization,
        purpose=body.purpose,
        expires_at=body.expires_at,
        expires_in_days=body.expires_in_days,
        actor=principal.key_id,
    )
    return ConsentTicketOut(**ticket.__dict__)


@router.get("/{consent_id}", response_model=ConsentOut)
def get_consent(consent_id: ConsentId, vv: VoxVaultDep, principal: ConsentManager) -> ConsentOut:
    """A consent's state, scores and refusal reason (never the code or the audio)."""
    return ConsentOut(**vv.consents.view(consent_id, principal.project_id).to_json())


async def _upload(item: Any, field: str) -> Upload:
    if not isinstance(item, UploadFile):
        raise VoxError("invalid_upload", f"'{field}' must be a file part", 422, field=field)
    data = await item.read()
    return Upload(filename=item.filename or field, data=data, content_type=item.content_type)


def _text(form: FormData, field: str, *, required: bool) -> str | None:
    value = form.get(field)
    if value is None:
        if required:
            raise VoxError("missing_field", f"the form needs a '{field}' field", 422, field=field)
        return None
    if not isinstance(value, str):
        raise VoxError("invalid_upload", f"'{field}' must be a text field", 422, field=field)
    check_text(value, f"'{field}'")  # a NUL would reach the database
    return value


async def _enroll_form(request: Request, vv: VoxVault) -> tuple[FormData, Upload, list[Upload]]:
    form = await read_bounded_form(request, vv.settings.max_upload_bytes, vv.settings.enroll_max_files + 1)
    recording_part = form.get("recording")
    if recording_part is None:
        await form.close()
        raise VoxError("missing_field", "the form needs the consent 'recording' file", 422, field="recording")
    recording = await _upload(recording_part, "recording")
    samples = [await _upload(p, "samples") for p in [*form.getlist("samples"), *form.getlist("samples[]")]]
    return form, recording, samples


@router.post(
    "/{consent_id}/enroll",
    status_code=201,
    openapi_extra=multipart_body(
        ["challenge", "recording", "samples"],
        {
            "challenge": {"type": "string", "description": "The consent's one-time code."},
            "name": {"type": "string", "description": "Name for the new voice."},
            "recording": BINARY,
            "samples": {"type": "array", "items": BINARY},
        },
    ),
)
async def enroll(
    consent_id: ConsentId, request: Request, vv: VoxVaultDep, principal: VoicesWriter
) -> JSONResponse:
    """Upload the consent recording and voice samples; on success the new voice can speak at once."""
    await run_in_threadpool(vv.consents.check_open, consent_id, principal.project_id, actor=principal.key_id)
    form, recording, samples = await _enroll_form(request, vv)
    try:
        challenge = _text(form, "challenge", required=True) or ""
        name = _text(form, "name", required=False)
        voice = await run_in_threadpool(
            lambda: vv.enrollment.enroll(
                consent_id=consent_id,
                project_id=principal.project_id,
                challenge=challenge,
                recording=recording,
                samples=samples,
                name=name,
                actor=principal.key_id,
            )
        )
    finally:
        await form.close()
    return JSONResponse(VoiceDetailOut(**voice.to_json()).model_dump(mode="json"), status_code=201)


@router.post(
    "/{consent_id}/verify",
    response_model=ConsentOut,
    openapi_extra=multipart_body(
        ["challenge", "recording", "voice_id"],
        {
            "challenge": {"type": "string"},
            "voice_id": {"type": "string", "description": "The voice this consent renews."},
            "recording": BINARY,
        },
    ),
)
async def verify_for_renewal(
    consent_id: ConsentId, request: Request, vv: VoxVaultDep, principal: ConsentManager
) -> ConsentOut:
    """Verify a new consent recording for an existing voice; then PATCH the voice with this consent id."""
    await run_in_threadpool(vv.consents.check_open, consent_id, principal.project_id, actor=principal.key_id)
    form = await read_bounded_form(request, vv.settings.max_upload_bytes, 2)
    try:
        challenge = _text(form, "challenge", required=True) or ""
        voice_id = _text(form, "voice_id", required=True) or ""
        part = form.get("recording")
        if part is None:
            raise VoxError(
                "missing_field", "the form needs the consent 'recording' file", 422, field="recording"
            )
        recording = await _upload(part, "recording")
        view = await run_in_threadpool(
            lambda: vv.enrollment.verify_for_voice(
                consent_id=consent_id,
                project_id=principal.project_id,
                challenge=challenge,
                recording=recording,
                voice_id=voice_id,
                actor=principal.key_id,
            )
        )
    finally:
        await form.close()
    return ConsentOut(**view.to_json())
