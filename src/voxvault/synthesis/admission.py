"""Bounded admission for synthesis, and the scheduler that shares the model between admitted streams.

Admission: at most ``max_active + max_waiting`` requests are in progress, and a new one is taken only if
its first audio can be expected within ``max_first_audio_s``; otherwise it gets 429 ``server_busy`` with
``Retry-After`` at once. Memory stays bounded under load, clients learn quickly to retry, and the
streams already admitted keep their pace instead of every request slowing down together on a small box.

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

# Cost is counted in phonemes; until a call has been timed, a phoneme is assumed to take this long.
_EWMA_WEIGHT = 0.2


class PieceScheduler:
    """At most ``parallel`` model calls at once, granted earliest deadline first (``time.perf_counter``).

    It also learns how long a phoneme takes (moving average over the calls it has timed) so that it can
    say how long new work would wait: ``expected_wait_s``.
    """

    def __init__(self, parallel: int = 2) -> None:
        if parallel < 1:
            raise ValueError("parallel must be at least 1")
        self.parallel = parallel
        self._cond = threading.Condition()
        self._waiting: list[tuple[float, int, int]] = []  # (deadline, ticket, cost)
        self._running: dict[int, tuple[int, float]] = {}  # ticket -> (cost, started)
        self._tickets = itertools.count(1)
        self._seconds_per_cost: float | None = None
        self.granted = 0  # slots handed out so far

    @property
    def running(self) -> int:
        return len(self._running)

    @property
    def waiting(self) -> int:
        return len(self._waiting)

    @property
    def seconds_per_cost(self) -> float | None:
        """Measured model seconds per unit of cost (per phoneme), None before the first call."""
        return self._seconds_per_cost

    def lateness_s(self, now: float | None = None) -> float:
        """How far past its deadline the most overdue waiting piece is (0 when none is overdue)."""
        now = time.perf_counter() if now is None else now
        with self._cond:
            return max(0.0, now - self._waiting[0][0]) if self._waiting else 0.0

    def expected_wait_s(self, extra_cost: float = 0.0, now: float | None = None) -> float:
        """Seconds until work of ``extra_cost`` due now would be done, behind the work already due."""
        now = time.perf_counter() if now is None else now
        with self._cond:
            spc = self._seconds_per_cost
            if spc is None:
                return 0.0
            due = sum(cost for deadline, _, cost in self._waiting if deadline <= now)
            busy = sum(max(0.0, cost * spc - (now - started)) for cost, started in self._running.values())
            return ((due + extra_cost) * spc + busy) / self.parallel

    def acquire(self, deadline: float, cancel: threading.Event | None = None, cost: int = 1) -> int | None:
        """Wait for a slot; its ticket (pass it to ``release``), or None when ``cancel`` is set first."""
        ticket = next(self._tickets)
        entry = (deadline, ticket, max(1, cost))
        with self._cond:
            heapq.heappush(self._waiting, entry)
            while not (len(self._running) < self.parallel and self._waiting[0] == entry):
                if cancel is not None and cancel.is_set():
                    self._waiting.remove(entry)
                    heapq.heapify(self._waiting)
                    self._cond.notify_all()
                    return None
                # A cancelled stream's event is set from another thread without notifying: poll it.
                self._cond.wait(timeout=0.05 if cancel is not None else None)
            heapq.heappop(self._waiting)
            self._running[ticket] = (entry[2], time.perf_counter())
            self.granted += 1
            self._cond.notify_all()  # the next in line may fit too
            return ticket

    def release(self, ticket: int) -> None:
        with self._cond:
            cost, started = self._running.pop(ticket)
            sample = (time.perf_counter() - started) / cost
            old = self._seconds_per_cost
            self._seconds_per_cost = sample if old is None else old + _EWMA_WEIGHT * (sample - old)
            self._cond.notify_all()

    @contextmanager
    def slot(self, deadline: float, cost: int = 1) -> Iterator[None]:
        ticket = self.acquire(deadline, cost=cost)
        assert ticket is not None  # only a cancel event makes acquire give up
        try:
            yield
        finally:
            self.release(ticket)


class Admission:
    """Counts requests in progress; refuses with 429 when full or when first audio would come too late.

    ``expected_wait`` (given the number of requests admitted but not yet started, the new one included)
    returns the seconds until such a request would have its first audio; see ``PieceScheduler``.
    """

    def __init__(
        self,
        max_active: int,
        max_waiting: int,
        retry_after_s: int = 1,
        *,
        expected_wait: Callable[[int], float] | None = None,
        max_first_audio_s: float | None = None,
    ) -> None:
        self._lock = threading.Lock()
        self._admitted = 0
        self._running = 0
        self.capacity = max_active + max_waiting
        self.retry_after_s = retry_after_s
        self._expected_wait = expected_wait
        self.max_first_audio_s = max_first_audio_s

    @property
    def admitted(self) -> int:
        return self._admitted

    def _busy(self, message: str) -> VoxError:
        return VoxError("server_busy", message, 429, retry_after=self.retry_after_s)

    def reserve(self) -> None:
        """Claim a place or refuse with 429 ``server_busy``."""
        with self._lock:
            if self._admitted >= self.capacity:
                raise self._busy("too many synthesis requests in progress; retry shortly")
            if self._expected_wait is not None and self.max_first_audio_s is not None and self._admitted:
                starting = self._admitted - self._running + 1
                if self._expected_wait(starting) > self.max_first_audio_s:
                    raise self._busy("the requests in progress would delay this one's audio; retry shortly")
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
