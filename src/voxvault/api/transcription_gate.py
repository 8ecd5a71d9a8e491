"""How many transcriptions run at once (HTTP and WebSocket alike), and how many may wait."""

from __future__ import annotations

import threading

from voxvault.errors import VoxError


class TranscriptionGate:
    """``running`` transcriptions at once, ``waiting`` more queued; past that, refuse (429)."""

    def __init__(self, running: int, waiting: int) -> None:
        self.running = running
        self.limit = running + waiting
        self._slots = threading.Semaphore(running)
        self._lock = threading.Lock()
        self._admitted = 0

    def admit(self) -> None:
        with self._lock:
            if self._admitted >= self.limit:
                raise VoxError(
                    "server_busy", "too many transcriptions are running; retry shortly", 429, retry_after=5
                )
            self._admitted += 1

    def run(self, wait_s: float = 60.0) -> None:
        """Block until a slot is free (call in a worker thread, after :meth:`admit`); 429 after ``wait_s``
        (a long stream holds its slot while it is open: nobody waits for it forever)."""
        if not self._slots.acquire(timeout=wait_s):
            message = "every transcription slot stayed busy; retry shortly"
            raise VoxError("server_busy", message, 429, retry_after=10)

    def done(self, started: bool) -> None:
        if started:
            self._slots.release()
        with self._lock:
            self._admitted -= 1
