"""``voxvault serve`` for bench/memory_bursts.py: SIGUSR1 appends glibc mallinfo2 and RSS to $M28_MI."""

import ctypes
import json
import os
import signal
import sys
from pathlib import Path


class MI(ctypes.Structure):
    _fields_ = [
        (n, ctypes.c_size_t)
        for n in (
            "arena",
            "ordblks",
            "smblks",
            "hblks",
            "hblkhd",
            "usmblks",
            "fsmblks",
            "uordblks",
            "fordblks",
            "keepcost",
        )
    ]


libc = ctypes.CDLL("libc.so.6")
libc.mallinfo2.restype = MI


TRACE = os.environ.get("M28_TRACE")  # a path: tracemalloc's top growth since the first dump, per dump
first_snapshot = None
if TRACE:
    import tracemalloc

    tracemalloc.start(8)


def trace() -> None:
    global first_snapshot
    snap = tracemalloc.take_snapshot().filter_traces([tracemalloc.Filter(False, tracemalloc.__file__)])
    if first_snapshot is None:
        first_snapshot = snap
        return
    with open(TRACE, "a") as f:
        total = sum(s.size for s in snap.statistics("filename")) / 2**20
        f.write(f"--- traced {total:.1f} MB\n")
        for stat in snap.compare_to(first_snapshot, "traceback")[:8]:
            f.write(f"{stat.size_diff / 2**20:+.2f} MB {stat.count_diff:+d} blocks\n")
            f.write("\n".join("    " + line for line in stat.traceback.format()[-6:]) + "\n")


def dump(*_):
    if TRACE:
        trace()
    m = libc.mallinfo2()
    status = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines())
    rss = int(status["VmRSS"].split()[0]) // 1024
    thr = int(status["Threads"].split()[0])
    with open(os.environ["M28_MI"], "a") as f:
        f.write(
            json.dumps(
                {
                    "rss": rss,
                    "threads": thr,
                    "in_use_mb": round((m.uordblks + m.hblkhd) / 2**20, 1),
                    "free_in_arenas_mb": round(m.fordblks / 2**20, 1),
                    "arena_mb": round(m.arena / 2**20, 1),
                }
            )
            + "\n"
        )


signal.signal(signal.SIGUSR1, dump)
from voxvault.cli import app  # noqa: E402 - after the signal handler

sys.argv = ["voxvault", "serve", *sys.argv[1:]]
app()
