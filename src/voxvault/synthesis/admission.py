"""Bounded admission for synthesis, and the scheduler that shares the model between admitted streams.

Admission: a fixed number of requests may be in progress (``max_active + max_waiting``); beyond that, or
when the scheduler is already running late on the streams it has, a request gets 429 ``server_busy``
with ``Retry-After`` at once. Memory stays bounded under load and clients learn quickly to retry,
instead of every request slowing down together on a 2-core machine.

Scheduling: admitted streams do not hold the model for their whole length. Each piece asks the
``PieceScheduler`` for a model slot with a deadline (earliest deadline first): a stream's first piece is
due when the request arrived, a later piece when the audio already sent runs out at the listener. So new
streams get their first audio quickly while streams with audio in hand wait their turn.
"""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from voxvault.errors import VoxError


class PieceScheduler:
    """At most ``parallel`` model calls at once, granted earliest deadline first (``time.perf_counter``)."""

    def __init__(self, parallel: int = 2) -> None:
        if parallel < 1:
            raise ValueError("parallel must be at least 1")
        self.parallel = parallel
        self._cond = threading.Condition()
        self._running = 0
        self._waiting: list[tuple[float, int]] = []
        self._seq = itertools.count()
        self.granted = 0  # slots handed out so far (tests and metrics)

    @property
    def running(self) -> int:
        return self._running

    @property
    def waiting(self) -> int:
        return len(self._waiting)

    def lateness_s(self, now: float | None = None) -> float:
        """How far past its deadline the most overdue waiting piece is (0 when none is overdue)."""
        now = time.perf_counter() if now is None else now
        with self._cond:
            return max(0.0, now - self._waiting[0][0]) if self._waiting else 0.0

    def acquire(self, deadline: float, cancel: threading.Event | None = None) -> bool:
        """Wait for a slot; False (and no slot held) when ``cancel`` is set while waiting."""
        ticket = (deadline, next(self._seq))
        with self._cond:
            heapq.heappush(self._waiting, ticket)
            while not (self._running < self.parallel and self._waiting[0] == ticket):
                if cancel is not None and cancel.is_set():
                    self._waiting.remove(ticket)
                    heapq.heapify(self._waiting)
                    self._cond.notify_all()
                    return False
                # A cancelled stream's event is set from another thread without notifying: poll it.
                self._cond.wait(timeout=0.05 if cancel is not None else None)
            heapq.heappop(self._waiting)
            self._running += 1
            self.granted += 1
            self._cond.notify_all()  # the next in line may fit too
            return True

    def release(self) -> None:
        with self._cond:
            self._running -= 1
            self._cond.notify_all()

    @contextmanager
    def slot(self, deadline: float) -> Iterator[None]:
        self.acquire(deadline)
        try:
            yield
        finally:
            self.release()


class Admission:
    """Counts requests in progress; refuses with 429 when full or when the model is running late."""

    def __init__(
        self,
        max_active: int,
        max_waiting: int,
        retry_after_s: int = 1,
        *,
        lateness: Callable[[], float] | None = None,
        max_lateness_s: float | None = None,
    ) -> None:
        self._lock = threading.Lock()
        self._admitted = 0
        self._running = 0
        self.capacity = max_active + max_waiting
        self.retry_after_s = retry_after_s
        self._lateness = lateness
        self.max_lateness_s = max_lateness_s

    @property
    def admitted(self) -> int:
        return self._admitted

    @property
    def running_streams(self) -> int:
        return self._running

    def _busy(self, message: str) -> VoxError:
        return VoxError("server_busy", message, 429, retry_after=self.retry_after_s)

    def reserve(self) -> None:
        """Claim a place or refuse with 429 ``server_busy``."""
        late = self._lateness() if self._lateness is not None and self.max_lateness_s is not None else 0.0
        with self._lock:
            if self._admitted >= self.capacity:
                raise self._busy("too many synthesis requests in progress; retry shortly")
            if self.max_lateness_s is not None and self._admitted > 0 and late > self.max_lateness_s:
                raise self._busy("synthesis is running behind the streams in progress; retry shortly")
            self._admitted += 1

    def release(self) -> None:
        with self._lock:
            self._admitted -= 1

    @contextmanager
    def running(self) -> Iterator[None]:
        """Mark an admitted request as producing audio.

        It does not wait: model time is shared per piece by the pipeline's ``PieceScheduler``, so a long
        stream never blocks the first audio of the streams admitted after it.
        """
        with self._lock:
            self._running += 1
        try:
            yield
        finally:
            with self._lock:
                self._running -= 1
