"""``/v1/transcription-batches``: many audio files transcribed in the background, resumable (issue 23).

Upload the files as ``multipart/form-data``, one ``file`` field each (ids are the file names' stems), with
optional ``model`` (base, tiny.en), ``language``, ``diarize`` (default true) and ``num_speakers``. The job
runs in the batch service's thread like a speech batch (jobs/transcribe_items.py) and survives a restart;
poll ``GET /v1/transcription-batches/{id}``, read the manifest, then each item's ``json``, ``srt`` or
``rttm``. Every route needs the ``speech:transcribe`` scope; a speech batch's id is ``not_found`` here, and
a transcription batch's id under ``/v1/batches``.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated

from fastapi import APIRouter, Path, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from starlette.datastructures import FormData, UploadFile

from voxvault.api.deps import BatchServiceDep, Transcriber, VoxVaultDep
from voxvault.api.forms import read_bounded_form
from voxvault.api.schemas import BINARY, BatchErrorOut, BatchErrorsOut, BatchOut, multipart_body
from voxvault.errors import VoxError
from voxvault.jobs.service import BatchStatus

router = APIRouter(prefix="/v1/transcription-batches", tags=["batches", "transcription"])
JobId = Annotated[str, Path(max_length=64, pattern=r"^[A-Za-z0-9-]+$")]
ItemId = Annotated[str, Path(max_length=64)]
TASK = "transcribe"
_CONTENT_TYPES = {"json": "application/json", "srt": "application/x-subrip", "rttm": "text/plain"}


def _out(status: BatchStatus) -> BatchOut:
    base = f"/v1/transcription-batches/{status.id}"
    return BatchOut(**asdict(status), manifest_url=f"{base}/manifest", errors_url=f"{base}/errors")


def _text(form: FormData, name: str) -> str | None:
    value = form.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise VoxError("invalid_request", f"'{name}' must be a text field", 400, field=name)
    return value.strip() or None


@router.post(
    "",
    status_code=202,
    response_model=BatchOut,
    openapi_extra=multipart_body(
        ["file"],
        {
            "file": {"type": "array", "items": BINARY},
            "model": {"type": "string", "enum": ["base", "tiny.en"]},
            "language": {"type": "string"},
            "diarize": {"type": "boolean"},
            "num_speakers": {"type": "integer"},
        },
    ),
)
async def create_transcription_batch(
    request: Request, vv: VoxVaultDep, service: BatchServiceDep, principal: Transcriber
) -> BatchOut:
    """Queue the uploaded files; each becomes ``transcripts/<id>.json`` (text, segments, words with their
    speaker, speakers), ``.srt`` and ``.rttm``."""
    from voxvault.jobs.transcribe_items import MAX_UPLOAD_FILES, TranscribeJobOptions, submit_job

    form = await read_bounded_form(request, vv.settings.max_upload_bytes, MAX_UPLOAD_FILES)
    try:
        files = []
        for upload in form.getlist("file"):
            if not isinstance(upload, UploadFile):
                raise VoxError("missing_file", "'file' must be a file part, not a text field", 422)
            files.append((upload.filename or "", await upload.read()))
        diarize = (_text(form, "diarize") or "true").lower()
        if diarize not in ("true", "false", "1", "0"):
            raise VoxError("invalid_request", "'diarize' must be true or false", 400, field="diarize")
        speakers = _text(form, "num_speakers")
        if speakers is not None and not speakers.isdigit():
            raise VoxError("invalid_num_speakers", "num_speakers must be an integer from 1 to 32", 400)
        options = TranscribeJobOptions(
            model=_text(form, "model"),
            language=(_text(form, "language") or "").lower() or None,
            diarize=diarize in ("true", "1"),
            num_speakers=int(speakers) if speakers is not None else None,
        )
    finally:
        await form.close()
    status = await run_in_threadpool(submit_job, service, files, principal=principal, options=options)
    return _out(status)


@router.get("/{job_id}", response_model=BatchOut)
def get_transcription_batch(job_id: JobId, service: BatchServiceDep, principal: Transcriber) -> BatchOut:
    """Status and counts: total, done (skipped included), failed, skipped, pending."""
    return _out(service.status(job_id, principal.project_id, TASK))


@router.get(
    "/{job_id}/manifest",
    response_class=Response,
    responses={200: {"content": {"application/x-ndjson": {}}, "description": "manifest.jsonl so far"}},
)
def get_transcription_manifest(job_id: JobId, service: BatchServiceDep, principal: Transcriber) -> Response:
    """One JSON line per finished item: id, path (its JSON transcript), duration, sha256 of that JSON."""
    data = service.manifest(job_id, principal.project_id, TASK)
    return Response(data, media_type="application/x-ndjson")


@router.get("/{job_id}/errors", response_model=BatchErrorsOut)
def get_transcription_errors(
    job_id: JobId,
    service: BatchServiceDep,
    principal: Transcriber,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> BatchErrorsOut:
    """Files that failed (not audio, silent, too long...), each with its error code and message."""
    errors = service.errors(job_id, principal.project_id, limit=limit, offset=offset, task=TASK)
    return BatchErrorsOut(errors=[BatchErrorOut(**e) for e in errors])


@router.get(
    "/{job_id}/items/{item_id}/transcript",
    response_class=Response,
    responses={
        200: {
            "content": {t: {} for t in _CONTENT_TYPES.values()},
            "description": "The item's transcript (json), subtitles (srt) or speaker turns (rttm)",
        }
    },
)
def get_item_transcript(
    job_id: JobId,
    item_id: ItemId,
    service: BatchServiceDep,
    principal: Transcriber,
    format: Annotated[str, Query(description="json, srt or rttm")] = "json",  # noqa: A002 - the API name
) -> Response:
    from voxvault.jobs.transcribe_items import read_transcript

    fmt = format.lower()
    data = read_transcript(service, job_id, principal.project_id, item_id, fmt)
    return Response(data, media_type=_CONTENT_TYPES[fmt])
