"""Every error leaves as JSON ``{"error": {"code", "message", "type"}}`` (OpenAI's shape, plus ``code``).

No traceback, path or internal detail ever reaches the client; unexpected exceptions become a bare 500
``internal_error`` and are logged with the request id only.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from voxvault.errors import VoxError

log = logging.getLogger(__name__)

_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "invalid_request_error",
    415: "invalid_request_error",
    422: "invalid_request_error",
    429: "rate_limit_error",
}


def error_response(
    status: int,
    code: str,
    message: str,
    headers: dict[str, str] | None = None,
    details: dict[str, Any] | None = None,
) -> JSONResponse:
    kind = _TYPES.get(status, "invalid_request_error" if status < 500 else "server_error")  # 409, 410: client
    body: dict[str, Any] = {"code": code, "message": message, "type": kind}
    if details:
        body["details"] = details
    return JSONResponse({"error": body}, status_code=status, headers=headers)


def _count(request: Request, code: str) -> None:
    metrics = getattr(request.app.state, "metrics", None)
    if metrics is not None:
        metrics.errors.labels(code=code).inc()


def _field_message(err: dict[str, Any]) -> str:
    loc = ".".join(str(p) for p in err.get("loc", ()) if p not in ("body",))
    return f"{loc}: {err.get('msg', 'invalid')}" if loc else str(err.get("msg", "invalid"))


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(VoxError)
    async def _vox(request: Request, exc: VoxError) -> JSONResponse:
        _count(request, exc.code)
        headers = {}
        if "retry_after" in exc.details:
            headers["Retry-After"] = str(int(exc.details["retry_after"]))
        details = {k: v for k, v in exc.details.items() if k != "retry_after"}
        return error_response(exc.status, exc.code, exc.message, headers or None, details or None)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        if any(e.get("type") == "json_invalid" for e in errors):
            _count(request, "invalid_json")
            return error_response(400, "invalid_json", "the request body is not valid JSON")
        first = errors[0] if errors else {}
        code = "invalid_request"
        loc = [str(p) for p in first.get("loc", ())]
        if first.get("type") == "missing":
            code = "missing_field"
        elif "speed" in loc:
            code = "invalid_speed"
        elif "response_format" in loc:
            code = "unsupported_format"
        _count(request, code)
        fields = [_field_message(e) for e in errors[:5]]
        return error_response(422, code, "; ".join(fields) or "invalid request")

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        _count(request, code)
        return error_response(exc.status_code, code, str(exc.detail), getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        _count(request, "internal_error")
        log.exception("unhandled error request_id=%s", getattr(request.state, "request_id", "-"))
        return error_response(500, "internal_error", "internal error; the request id is in the server log")
