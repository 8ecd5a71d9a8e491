"""Telling a render that its listener has gone, while the render is busy (issue 28, barge-in).

A streamed body is pulled chunk by chunk in a worker thread; when the client hangs up, the thread is
still inside the model call for the next chunk. The response layer (``api/streaming.py``) collects, per
response, the stops its body registered with ``on_client_gone`` while being pulled, and runs them the
moment the response ends early: a ``GenerationStream`` registers its cancel event, which cuts the model
call in flight short (``Interruptible`` engines) instead of finishing a piece nobody will hear.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar

_STOPS: ContextVar[list[Callable[[], None]] | None] = ContextVar("hangup_stops", default=None)


def on_client_gone(stop: Callable[[], None]) -> None:
    """Run ``stop`` as soon as the response being pulled ends early; a no-op outside such a pull."""
    stops = _STOPS.get()
    if stops is not None and stop not in stops:
        stops.append(stop)


@contextmanager
def collecting(stops: list[Callable[[], None]]) -> Iterator[None]:
    """Stops registered by code run in this block (this thread) are appended to ``stops``."""
    token = _STOPS.set(stops)
    try:
        yield
    finally:
        _STOPS.reset(token)
