"""Bounded admission for synthesis: a fixed number run, a fixed number wait, the rest get 429 at once.

Memory stays bounded under load and clients learn quickly to retry (``Retry-After``), instead of every
request slowing down together on a 2-core machine.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from voxvault.errors import VoxError


class Admission:
    def __init__(self, max_active: int, max_waiting: int, retry_after_s: int = 1) -> None:
        self._slots = threading.Semaphore(max_active)
        self._lock = threading.Lock()
        self._admitted = 0
        self.capacity = max_active + max_waiting
        self.retry_after_s = retry_after_s

    @property
    def admitted(self) -> int:
        return self._admitted

    def reserve(self) -> None:
        """Claim a place (running or waiting) or refuse with 429 ``server_busy``."""
        with self._lock:
            if self._admitted >= self.capacity:
                raise VoxError(
                    "server_busy",
                    "too many synthesis requests in progress; retry shortly",
                    429,
                    retry_after=self.retry_after_s,
                )
            self._admitted += 1

    def release(self) -> None:
        with self._lock:
            self._admitted -= 1

    @contextmanager
    def running(self) -> Iterator[None]:
        """Hold one of the active slots (after ``reserve``); blocks while all are busy."""
        self._slots.acquire()
        try:
            yield
        finally:
            self._slots.release()
