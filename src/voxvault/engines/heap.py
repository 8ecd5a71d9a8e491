"""Handing freed memory back to the OS (glibc), so a long-running server's RSS shows what it uses.

glibc gives each thread that allocates its own arena (up to 8 per core) and keeps what is freed there for
reuse. A server runs a request's synthesis and encoding in whichever worker thread is free, so over many
requests more arenas each keep a request's worth of freed buffers. Measured with ``bench/memory.py``
(issue 28): RSS flat for 900 requests, then two steps of 12-14 MB, each an arena that had been nearly
empty (132 kB resident) now holding that much, while Python's own objects did not grow. ``trim``
(``malloc_trim(0)``) returns the free pages of every arena. It walks every arena (a few ms on a server's
heap, ~36 ms on a fragmented 1.9 GB one), so requests do not call it: ``trim_soon`` wakes one daemon
thread that trims at most once per ``TRIM_INTERVAL_S``, off every request's path.
"""

from __future__ import annotations

import contextlib
import ctypes
import threading
import time
from collections.abc import Callable

_libc: list[ctypes.CDLL | None] = []  # [] until looked up; [None] where there is no glibc


def _malloc_trim() -> bool:
    if not _libc:
        try:
            lib: ctypes.CDLL | None = ctypes.CDLL("libc.so.6")
        except OSError:
            lib = None
        _libc.append(lib if lib is not None and hasattr(lib, "malloc_trim") else None)
    lib = _libc[0]
    if lib is None:
        return False
    lib.malloc_trim(0)
    return True


def trim() -> bool:
    """Give free heap pages back to the OS now; True when it ran (False without glibc)."""
    return _malloc_trim()


TRIM_INTERVAL_S = 2.0


class Trimmer:
    """One daemon thread that trims when asked (``soon``), at most once per ``interval_s``."""

    def __init__(self, interval_s: float = TRIM_INTERVAL_S, release: Callable[[], bool] = _malloc_trim):
        self.interval_s = interval_s
        self.release = release
        self.runs = 0
        self._wake = threading.Event()
        self._start_lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def soon(self) -> None:
        """Ask for a trim; returns at once (the trim runs in the trimmer's thread)."""
        if self._thread is None:
            with self._start_lock:
                if self._thread is None:
                    self._thread = threading.Thread(target=self._run, name="voxvault-heap-trim", daemon=True)
                    self._thread.start()
        self._wake.set()

    def _run(self) -> None:
        while True:
            self._wake.wait()
            self._wake.clear()
            with contextlib.suppress(Exception):  # a failed trim must not end the thread
                self.release()
            self.runs += 1
            time.sleep(self.interval_s)  # asks meanwhile set the event again: one trim after the pause


_trimmer = Trimmer()


def trim_soon() -> None:
    """Ask the process's trimmer to give free heap pages back to the OS soon (never blocks)."""
    _trimmer.soon()
