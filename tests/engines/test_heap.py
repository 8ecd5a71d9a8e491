"""Freed heap handed back to the OS (engines/heap.py, issue 28's memory item): the trimmer runs off the
caller's thread, coalesces asks made while it works, and a finished output asks it once."""

from __future__ import annotations

import platform
import threading
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from voxvault.engines import heap
from voxvault.synthesis import generation as generation_module
from voxvault.synthesis.generation import Generation

WAIT_S = 30.0  # a failure bound for a thread to get going, never a timing being tested


class Gate:
    """A release function that blocks each call until let through, counting the calls."""

    def __init__(self) -> None:
        self.calls = 0
        self.entered = threading.Semaphore(0)
        self.go = threading.Semaphore(0)
        self.caller: threading.Thread | None = None

    def __call__(self) -> bool:
        self.calls += 1
        self.caller = threading.current_thread()
        self.entered.release()
        assert self.go.acquire(timeout=WAIT_S)
        return True


def test_asks_made_during_a_trim_become_one_more_trim_in_the_trimmers_thread() -> None:
    gate = Gate()
    trimmer = heap.Trimmer(interval_s=0.0, release=gate)
    trimmer.soon()  # returns at once although the trim blocks
    assert gate.entered.acquire(timeout=WAIT_S)
    assert gate.caller is not threading.current_thread()
    for _ in range(5):
        trimmer.soon()
    gate.go.release()
    assert gate.entered.acquire(timeout=WAIT_S)  # the second trim, for all five asks
    assert gate.calls == 2
    assert not trimmer._wake.is_set()  # nothing left pending behind it
    gate.go.release()


def test_a_failing_trim_does_not_stop_the_trimmer() -> None:
    calls: list[int] = []
    done = threading.Semaphore(0)

    def release() -> bool:
        calls.append(1)
        done.release()
        if len(calls) == 1:
            raise OSError("no")
        return True

    trimmer = heap.Trimmer(interval_s=0.0, release=release)
    trimmer.soon()
    assert done.acquire(timeout=WAIT_S)
    trimmer.soon()
    assert done.acquire(timeout=WAIT_S)
    assert len(calls) == 2


def test_finishing_an_output_asks_for_one_trim(monkeypatch: pytest.MonkeyPatch) -> None:
    asked: list[int] = []
    monkeypatch.setattr(generation_module, "trim_soon", lambda: asked.append(1))
    log = SimpleNamespace(finish=lambda *a, **k: None)
    gen = Generation(log, SimpleNamespace(id="g", watermark_id=1), SimpleNamespace(), None, 0.0)  # type: ignore[arg-type]
    assert gen.finish(duration_s=1.0)
    assert not gen.finish(duration_s=1.0)  # finished once: no second record, no second ask
    assert asked == [1]


def _rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


@pytest.mark.skipif(
    platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="malloc_trim is glibc's"
)
def test_trim_returns_what_a_worker_thread_freed() -> None:
    kept: list[Any] = []

    def work() -> None:
        # 100 kB blocks (malloc's arena, not mmap) with a small block kept after each, so what is freed
        # lies between live blocks: free() alone cannot give it back.
        blocks = []
        for _ in range(600):
            blocks.append(bytearray(100_000))
            kept.append(bytearray(64))
        for b in blocks:
            b[::4096] = b"\x01" * len(b[::4096])  # touch every page
        del blocks

    t = threading.Thread(target=work)
    t.start()
    t.join()
    before = _rss_mb()
    assert heap.trim()
    assert before - _rss_mb() > 30  # of the ~60 MB freed
