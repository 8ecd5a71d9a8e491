"""Refuse request text that cannot be spoken or stored, for every route at once (audit finding 8).

A JSON body can spell a lone surrogate (``"\\ud800"``) or a NUL (``"\\u0000"``) with an escape, and
``json.loads`` on bytes also turns UTF-8-encoded surrogates (``ED A0 80``) into lone surrogates. Such a
string used to travel through validation and fail deep inside (hashing, espeak, the database) as a 500.

``TextGuardMiddleware`` scans each JSON(-lines) request body as the route reads it, chunk by chunk, without
buffering or parsing it, and raises ``InvalidBodyText`` (400 ``invalid_text``) from ``receive`` before the
route sees the last byte, so the route never acts on it. JSON that is not UTF-8 (UTF-16/32, which
``json.loads`` would accept) is refused too. A NUL in the path or query string is refused before routing.
Multipart text fields cannot carry surrogates (Starlette decodes them as UTF-8 or Latin-1).
"""

from __future__ import annotations

import re
from email.message import Message as EmailMessage

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from voxvault.api.errors import error_response

__all__ = ["InvalidBodyText", "JsonTextScanner", "TextGuardMiddleware", "install_text_guard"]

# An escape (``\u`` + four hex digits, or ``\`` + any byte, so ``\\`` pairs are consumed and backslash
# parity holds), or a UTF-8-encoded surrogate (which only json.loads' surrogatepass decoding would accept).
_TOKEN = re.compile(rb"\\(?:u([0-9a-fA-F]{4})|.)|\xed[\xa0-\xbf]", re.DOTALL)
_WINDOW = 12  # a token is at most 6 bytes: scanning stops this short of a chunk's end until more arrives


class InvalidBodyText(HTTPException):
    """Raised from ``receive``: an HTTPException, so FastAPI's body parsing lets it through unchanged."""

    def __init__(self, message: str) -> None:
        super().__init__(400, message)
        self.message = message


class JsonTextScanner:
    """Finds lone surrogates and NULs in raw JSON bytes fed in any chunking."""

    def __init__(self) -> None:
        self._carry = b""
        self._high_pending = False  # the carry starts right after an unpaired high surrogate
        self._started = False

    def feed(self, chunk: bytes, final: bool) -> str | None:
        """The problem found so far, or None."""
        data = self._carry + chunk
        if not self._started and (len(data) >= 4 or final):
            self._started = True
            head = data[:4]
            if head[:2] in (b"\xff\xfe", b"\xfe\xff") or b"\x00" in head:
                return "JSON must be encoded as UTF-8"
        cut = len(data) if final else len(data) - _WINDOW
        high_end = 0 if self._high_pending else -1
        done = 0
        for m in _TOKEN.finditer(data):
            if m.start() >= cut:
                break
            code = int(m.group(1), 16) if m.group(1) else None
            if high_end >= 0:
                if m.start() != high_end or code is None or not 0xDC00 <= code <= 0xDFFF:
                    return "contains a lone surrogate escape (\\uD800-\\uDBFF without its pair)"
                high_end = -1
            elif m.group(1) is None and m.group(0)[:1] == b"\xed":
                return "contains a UTF-8-encoded surrogate, which is not a character"
            elif code is not None and 0xD800 <= code <= 0xDBFF:
                high_end = m.end()
            elif code is not None and 0xDC00 <= code <= 0xDFFF:
                return "contains a lone surrogate escape (\\uDC00-\\uDFFF without its pair)"
            elif code == 0:
                return "contains a NUL character (\\u0000)"
            done = m.end()
        keep = len(data) if final else max(done, cut)
        if high_end >= 0 and (final or keep > high_end):
            return "contains a lone surrogate escape (\\uD800-\\uDBFF without its pair)"
        self._carry = data[keep:]
        self._high_pending = high_end >= 0
        return None


def _is_json(content_type: str | None) -> bool:
    """Bodies that FastAPI or the batch route parse as JSON: JSON, ``+json``, JSON lines, or no type."""
    if not content_type:
        return True
    message = EmailMessage()
    message["content-type"] = content_type
    main, sub = message.get_content_maintype(), message.get_content_subtype()
    return main == "application" and (
        sub in ("json", "x-ndjson", "ndjson", "jsonl", "x-jsonlines") or sub.endswith("+json")
    )


class TextGuardMiddleware:
    """Pure ASGI: wraps ``receive`` of JSON requests with a ``JsonTextScanner``."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        query = scope.get("query_string", b"")
        if "\x00" in scope.get("path", "") or b"%00" in query or b"\x00" in query:
            response = error_response(400, "invalid_text", "the URL contains a NUL character")
            await response(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        content_type = headers.get(b"content-type", b"").decode("latin-1") or None
        if scope.get("method") in ("GET", "HEAD", "OPTIONS") or not _is_json(content_type):
            await self.app(scope, receive, send)
            return
        scanner = JsonTextScanner()

        async def checked_receive() -> Message:
            message = await receive()
            if message["type"] == "http.request":
                problem = scanner.feed(message.get("body", b""), not message.get("more_body", False))
                if problem is not None:
                    raise InvalidBodyText(f"the request body {problem}")
            return message

        await self.app(scope, checked_receive, send)


def install_text_guard(app: FastAPI) -> None:
    """Add the middleware and the handler that answers ``InvalidBodyText`` as 400 ``invalid_text``."""

    async def _invalid_text(request: Request, exc: Exception) -> JSONResponse:
        metrics = getattr(request.app.state, "metrics", None)
        if metrics is not None:
            metrics.errors.labels(code="invalid_text").inc()
        return error_response(400, "invalid_text", getattr(exc, "message", "invalid text"))

    app.add_exception_handler(InvalidBodyText, _invalid_text)
    app.add_middleware(TextGuardMiddleware)
