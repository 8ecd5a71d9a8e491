"""Streamed HTTP responses that stop when their client stops: gone (disconnected) or stuck (not reading).

Gone: Starlette iterates a sync generator in worker threads and, when the client disconnects, cancels
the response but never closes the generator; it lives on (and with it the generator's admission place)
until a worker thread happens to drop it. ``ClosingStreamingResponse`` closes it at once, so its
``finally`` runs: the synthesis stops before its next piece and the place is released. A body may also
register a stop (``synthesis.hangup.on_client_gone``; a ``GenerationStream`` does) that runs the moment
the client goes, while the body is still busy making its next chunk: the generation's cancel event, which
cuts the model call in flight short. Before, the dropped stream's piece in flight kept the cores from
the next caller for up to a whole piece.

Stuck: responses are pulled, not pushed: the pipeline renders the next piece only when the previous
bytes have been handed to the socket, and uvicorn's ``send`` waits while the socket's buffers are full.
So a client that never reads costs at most the kernel's socket buffers plus uvicorn's 64 KiB write
buffer, never unbounded memory. What it would still hold is its admission place and a thread;
``SendTimeoutMiddleware`` gives each ``send`` of an HTTP response ``app.state.send_timeout_s`` seconds and
drops the response when one takes longer, which stops the synthesis and frees both.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import AsyncIterator, Callable, Iterator

import anyio
from starlette.responses import StreamingResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from voxvault.synthesis.hangup import collecting

log = logging.getLogger(__name__)


class SendTimeout(Exception):
    """The client did not take the response's bytes in time."""


def _only_send_timeouts(exc: BaseException) -> bool:
    if isinstance(exc, SendTimeout):
        return True
    if isinstance(exc, BaseExceptionGroup):
        return all(_only_send_timeouts(e) for e in exc.exceptions)
    return False


class SendTimeoutMiddleware:
    """Pure ASGI middleware, outermost of the app's own; HTTP only (WebSocket routes time their sends)."""

    def __init__(self, app: ASGIApp, default_timeout_s: float = 20.0) -> None:
        self.app = app
        self.default_timeout_s = default_timeout_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        owner = scope.get("app")
        timeout = float(getattr(getattr(owner, "state", None), "send_timeout_s", self.default_timeout_s))

        async def guarded_send(message: Message) -> None:
            try:
                with anyio.fail_after(timeout):
                    await send(message)
            except TimeoutError:
                raise SendTimeout from None

        try:
            await self.app(scope, receive, guarded_send)
        except BaseException as exc:
            if not _only_send_timeouts(exc):
                raise
            # The response has started, so nothing can be said to the client; uvicorn closes the
            # connection because the response never completed.
            log.warning(
                "response dropped: client took no data for %.0f s path=%s", timeout, scope.get("path", "")
            )


async def iterate_in_thread(chunks: Iterator[bytes]) -> AsyncIterator[bytes]:
    """Pull each chunk in a worker thread; closing this closes ``chunks`` too (in a thread: it may block).

    Cancelled while a chunk is being made (the client went away), it runs the body's ``on_client_gone``
    stops at once, then waits for that chunk's thread to finish before closing the body.
    """
    stops: list[Callable[[], None]] = []
    busy = threading.Lock()  # the body runs in one thread at a time: close waits for the pull in flight
    ended = False

    def pull() -> bytes | None:
        with collecting(stops), busy:
            return next(chunks, None)

    def close() -> None:
        with busy:
            closer = getattr(chunks, "close", None)
            if closer is not None:
                closer()

    try:
        while (data := await anyio.to_thread.run_sync(pull, abandon_on_cancel=True)) is not None:
            yield data
        ended = True
    finally:
        if not ended:
            for stop in stops:
                stop()
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(close)


class ClosingStreamingResponse(StreamingResponse):
    """A StreamingResponse that closes its body iterator however the response ends."""

    def __init__(self, content: Iterator[bytes], **kwargs: object) -> None:
        super().__init__(iterate_in_thread(content), **kwargs)  # type: ignore[arg-type]

    async def stream_response(self, send: Send) -> None:
        try:
            await super().stream_response(send)
        finally:
            aclose = getattr(self.body_iterator, "aclose", None)
            if aclose is not None:
                with anyio.CancelScope(shield=True):
                    await aclose()
