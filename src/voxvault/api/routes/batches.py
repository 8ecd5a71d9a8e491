"""``/v1/batches``: many clips from one JSONL or CSV upload, made in the background, resumable.

Upload as ``multipart/form-data`` (field ``file``; optional fields ``voice`` and ``response_format``) or
as the raw body (``application/x-ndjson``/``application/jsonl`` or ``text/csv``; ``voice`` and
``response_format`` as query parameters). Every line is checked before anything is stored: a bad file
is refused with each bad line named in ``error.details.errors``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import asdict
from typing import Annotated, Any

from fastapi import APIRouter, FastAPI, Path, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from voxvault.api.deps import BatchServiceDep, SettingsDep, SpeechCreator, batch_service
from voxvault.api.schemas import BatchErrorOut, BatchErrorsOut, BatchOut
from voxvault.errors import VoxError
from voxvault.jobs.service import BatchService, BatchStatus


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    # Starting at app start resumes jobs a previous server process left unfinished.
    await run_in_threadpool(batch_service, app)
    yield
    service: BatchService | None = getattr(app.state, "batches", None)
    if service is not None:
        await run_in_threadpool(service.stop)
        app.state.batches = None


router = APIRouter(prefix="/v1/batches", tags=["batches"], lifespan=_lifespan)
JobId = Annotated[str, Path(max_length=64, pattern=r"^[A-Za-z0-9-]+$")]

_UPLOAD_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {
                        "file": {"type": "string", "format": "binary", "description": "JSONL or CSV items"},
                        "voice": {"type": "string", "description": "Default voice for items without one"},
                        "response_format": {"type": "string", "description": "Default format (wav)"},
                    },
                }
            },
            "application/x-ndjson": {"schema": {"type": "string"}},
            "text/csv": {"schema": {"type": "string"}},
        },
    }
}


def _out(status: BatchStatus) -> BatchOut:
    base = f"/v1/batches/{status.id}"
    return BatchOut(**asdict(status), manifest_url=f"{base}/manifest", errors_url=f"{base}/errors")


async def _read_limited(request: Request, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise VoxError("upload_too_large", "the items file is larger than the upload limit", 413)
        chunks.append(chunk)
    return b"".join(chunks)


async def _upload(request: Request, limit: int) -> tuple[bytes, str | None, dict[str, Any]]:
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit + 64 * 1024:
        raise VoxError("upload_too_large", "the items file is larger than the upload limit", 413)
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "multipart/form-data":
        name = "items.csv" if content_type in ("text/csv", "application/csv") else None
        if content_type in ("application/x-ndjson", "application/jsonl", "application/json"):
            name = "items.jsonl"
        return await _read_limited(request, limit), name, {}
    async with request.form(max_files=1, max_fields=5) as form:
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            raise VoxError("missing_file", "send the items as the multipart field 'file'")
        data = await upload.read(limit + 1)
        if len(data) > limit:
            raise VoxError("upload_too_large", "the items file is larger than the upload limit", 413)
        fields = {k: v for k, v in form.items() if k in ("voice", "response_format") and isinstance(v, str)}
        return data, upload.filename, fields


@router.post("", status_code=202, response_model=BatchOut, openapi_extra=_UPLOAD_BODY)
async def create_batch(
    request: Request,
    service: BatchServiceDep,
    settings: SettingsDep,
    principal: SpeechCreator,
    voice: Annotated[
        str | None, Query(max_length=64, description="Default voice (a preset if unset).")
    ] = None,
    response_format: Annotated[str, Query(description="Default audio format.")] = "wav",
) -> BatchOut:
    """Queue a batch job; poll ``GET /v1/batches/{id}`` for counts, then read the manifest."""
    data, filename, fields = await _upload(request, settings.max_upload_bytes)
    status = await run_in_threadpool(
        service.submit,
        data,
        filename=filename,
        principal=principal,
        voice=fields.get("voice") or voice,
        fmt=(fields.get("response_format") or response_format).lower(),
    )
    return _out(status)


@router.get("/{job_id}", response_model=BatchOut)
def get_batch(job_id: JobId, service: BatchServiceDep, principal: SpeechCreator) -> BatchOut:
    """Status and counts: total, done (skipped included), failed, skipped, pending."""
    return _out(service.status(job_id, principal.project_id))


@router.get(
    "/{job_id}/manifest",
    response_class=Response,
    responses={200: {"content": {"application/x-ndjson": {}}, "description": "manifest.jsonl so far"}},
)
def get_manifest(job_id: JobId, service: BatchServiceDep, principal: SpeechCreator) -> Response:
    """One JSON line per finished item: id, path, duration, sha256, watermark_id, voice, format."""
    data = service.manifest(job_id, principal.project_id)
    return Response(data, media_type="application/x-ndjson")


@router.get("/{job_id}/errors", response_model=BatchErrorsOut)
def get_errors(
    job_id: JobId,
    service: BatchServiceDep,
    principal: SpeechCreator,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> BatchErrorsOut:
    """Items that failed, each with its error code and message (a re-run of the job retries them)."""
    errors = service.errors(job_id, principal.project_id, limit=limit, offset=offset)
    return BatchErrorsOut(errors=[BatchErrorOut(**e) for e in errors])


@router.get(
    "/{job_id}/items/{item_id}/audio",
    response_class=Response,
    responses={200: {"content": {"audio/wav": {}, "audio/mpeg": {}}, "description": "The item's audio"}},
)
def get_item_audio(
    job_id: JobId,
    item_id: Annotated[str, Path(max_length=64)],
    service: BatchServiceDep,
    principal: SpeechCreator,
) -> Response:
    data, content_type = service.audio(job_id, principal.project_id, item_id)
    return Response(data, media_type=content_type)
