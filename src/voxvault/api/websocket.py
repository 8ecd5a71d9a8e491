"""WebSocket plumbing both streaming sockets share (ElevenLabs text input, speech-to-text): close codes,
the exception that ends a socket with one, and a best-effort close that tells the client why.

Refusals close with a code a client can act on, after an ``{"error": {"code", "message"}}`` message:
1007 malformed message, 1009 message too big, 1008 policy, 1013 busy (retry later), 1011 internal.
"""

from __future__ import annotations

import json
import logging

import anyio
from starlette.websockets import WebSocket, WebSocketState

from voxvault.errors import VoxError

log = logging.getLogger(__name__)

# WebSocket close codes (RFC 6455 section 7.4.1).
WS_NORMAL = 1000
WS_UNSUPPORTED = 1003
WS_INVALID = 1007
WS_POLICY = 1008
WS_TOO_BIG = 1009
WS_INTERNAL = 1011
WS_TRY_LATER = 1013


class WsClose(Exception):
    """End the WebSocket with ``code``; ``reason`` is a stable error code, ``message`` says more."""

    def __init__(self, code: int, reason: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message


class ClientGone(Exception):
    """The client closed the connection or it broke."""


def close_for(exc: VoxError) -> WsClose:
    code = WS_TRY_LATER if exc.status == 429 else WS_INTERNAL if exc.status >= 500 else WS_POLICY
    return WsClose(code, exc.code, exc.message)


def query_bool(value: str | None, name: str) -> bool:
    if value is None or value.lower() in {"false", "0", "no", ""}:
        return False
    if value.lower() in {"true", "1", "yes"}:
        return True
    raise VoxError("invalid_parameter", f"{name} must be true or false")


async def close_socket(ws: WebSocket, code: int, reason: str, message: str | None = None) -> None:
    """Best effort: an error message, then the close frame; a client that is not reading gets neither."""
    if ws.application_state != WebSocketState.CONNECTED:
        return
    try:
        with anyio.fail_after(2.0):
            if message is not None:
                await ws.send_text(json.dumps({"error": {"code": reason, "message": message}}))
            await ws.close(code=code, reason=reason[:120])
    except Exception:  # noqa: BLE001 - the connection is already gone or stuck
        log.debug("websocket close not delivered code=%d reason=%s", code, reason)
