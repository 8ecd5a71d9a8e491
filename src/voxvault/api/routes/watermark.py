"""``POST /v1/watermark/detect``: is this audio ours, and which request made it?"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from voxvault.api.deps import VoicesReader, VoxVaultDep
from voxvault.api.forms import read_bounded_form
from voxvault.api.schemas import BINARY, multipart_body
from voxvault.errors import VoxError

router = APIRouter(tags=["watermark"])


@router.post(
    "/v1/watermark/detect",
    openapi_extra=multipart_body(["file"], {"file": BINARY}),
)
async def detect(request: Request, vv: VoxVaultDep, principal: VoicesReader) -> Any:
    """Multipart field ``file``: any common audio format, 1.5 s to ``max_upload_seconds``.

    Returns ``present``, ``confidence`` and ``payload`` (the generation's watermark id); keys with the
    ``audit:read`` scope also get the ``generation`` record when it belongs to their organisation.
    """
    form = await read_bounded_form(request, vv.settings.max_upload_bytes, 1)
    upload = form.get("file")
    if not isinstance(upload, UploadFile):
        raise VoxError("missing_file", "send the audio as the multipart field 'file'", 422)
    data = await upload.read()
    prov = vv.provenance
    result = await run_in_threadpool(prov.detect_bytes, data)
    result["generation"] = None
    if result["present"] and principal.has("audit:read"):
        record = prov.generation(int(result["payload"]))
        if record is not None and vv.may_see_generation(principal, record):
            result["generation"] = record
    prov.record_detection(result, principal.key_id)
    return result
