"""Multipart forms read with a hard byte limit, for every route that takes an upload.

A declared ``Content-Length`` over the limit is refused at once (413 ``upload_too_large``) without
reading a byte of it; otherwise the bytes are counted as they arrive (spooled to a temporary file past a
few MiB) and the request is refused the moment the count passes the limit. Only then is the form parsed.
"""

from __future__ import annotations

import tempfile

from fastapi import Request
from starlette.datastructures import FormData
from starlette.requests import ClientDisconnect
from starlette.types import Message

from voxvault.errors import VoxError

SPOOL_IN_MEMORY = 4 * 1024 * 1024
READ_CHUNK = 64 * 1024


async def read_bounded_form(request: Request, max_bytes: int, max_files: int) -> FormData:
    """The multipart form, read with a hard byte limit (see the module docstring)."""
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            size = int(declared)
        except ValueError:
            raise VoxError("invalid_upload", "Content-Length is not a number", 400) from None
        if size > max_bytes:
            raise VoxError(
                "upload_too_large",
                f"the upload is {size} bytes; the limit is {max_bytes} bytes",
                413,
                max_bytes=max_bytes,
            )
    content_type = request.headers.get("content-type", "")
    if not content_type.lower().startswith("multipart/form-data"):
        raise VoxError("invalid_upload", "send the files as multipart/form-data", 415)
    spool = tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY)  # noqa: SIM115 - closed below or by form
    try:
        total = 0
        try:
            async for chunk in request.stream():
                total += len(chunk)
                if total > max_bytes:
                    raise VoxError(
                        "upload_too_large",
                        f"the upload is larger than the {max_bytes} byte limit",
                        413,
                        max_bytes=max_bytes,
                    )
                spool.write(chunk)
        except ClientDisconnect:
            raise VoxError("invalid_upload", "the client disconnected during the upload", 400) from None
        spool.seek(0)

        async def replay() -> Message:
            data = spool.read(READ_CHUNK)
            return {"type": "http.request", "body": data, "more_body": bool(data)}

        try:
            return await Request(request.scope, replay).form(max_files=max_files, max_fields=16)
        except VoxError:
            raise
        except Exception as exc:  # malformed multipart: python-multipart/Starlette raise various types
            raise VoxError("invalid_upload", "the multipart body could not be parsed", 400) from exc
    finally:
        spool.close()
