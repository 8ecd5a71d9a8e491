"""What the memory settings of issue 28 cost in speed: first audio and RTF of the same warm engine with
onnxruntime arena shrinkage and a fixed 1 MB glibc mmap threshold (the defaults) and without them,
interleaved (A B B A ...), so machine noise hits both alike.

"Without" sets the mmap threshold to 32 MB, the ceiling glibc's own threshold climbs to, since a process
cannot return to glibc's sliding threshold once it is fixed; the server without the setting never calls
mallopt.

    python bench/memory_arena_cost.py --reps 5 --out bench/results/memory_arena_cost.json
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import statistics
import time
from pathlib import Path

from synthesis import ours
from voxvault.config import Settings
from voxvault.service import VoxVault

TEXTS = {
    "short": "Okay, done.",
    "medium": "Sure, I can help with that. Your order shipped this morning and should arrive on Thursday.",
    "long": (
        "Once upon a time, in a small village between two rivers, there lived a baker who rose before "
        "dawn. Every morning she lit the oven, kneaded the dough, and sang quietly to herself while the "
        "bread rose. The villagers said her loaves tasted of sunlight."
    ),
}
M_MMAP_THRESHOLD = -3


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--split", action="store_true", help="also each setting alone")
    args = ap.parse_args()
    mallopt = ctypes.CDLL(None).mallopt
    settings = Settings()
    mallopt(M_MMAP_THRESHOLD, settings.malloc_mmap_threshold_kb * 1024)
    vv = VoxVault(settings)
    vv.warm_up()
    engine = vv.pipeline.tts
    for text in TEXTS.values():
        ours(vv, text)
    variants = {"with": (True, 1 << 20), "without": (False, 32 << 20)}
    if args.split:  # which of the two costs the time
        variants |= {"shrink_only": (True, 32 << 20), "mmap_only": (False, 1 << 20)}
    times: dict[str, dict[str, dict[str, list[float]]]] = {
        v: {t: {"first": [], "total": [], "rtf": []} for t in TEXTS} for v in variants
    }
    load = [os.getloadavg()[0]]
    for rep in range(args.reps):
        order = list(variants)[rep % len(variants) :] + list(variants)[: rep % len(variants)]
        for name in TEXTS:
            for v in order:
                engine.arena_shrinkage, threshold = variants[v]
                mallopt(M_MMAP_THRESHOLD, threshold)
                first, total, audio = ours(vv, TEXTS[name])
                times[v][name]["first"].append(first)
                times[v][name]["total"].append(total)
                times[v][name]["rtf"].append(total / audio)
        load.append(os.getloadavg()[0])
    medians = {
        v: {t: {k: round(statistics.median(x), 4) for k, x in d.items()} for t, d in per.items()}
        for v, per in times.items()
    }
    ratio = {
        v: {
            t: {k: round(medians[v][t][k] / medians["without"][t][k] - 1, 4) for k in ("first", "rtf")}
            for t in TEXTS
        }
        for v in variants
        if v != "without"
    }
    report = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "reps": args.reps,
        "threads": engine.threads,
        "precision": engine.precision,
        "load_1min": load,
        "median_s": medians,
        "vs_without": ratio,
        "raw_s": times,
    }
    args.out.write_text(json.dumps(report, indent=1) + "\n")
    print(json.dumps({k: v for k, v in report.items() if k != "raw_s"}, indent=1))


if __name__ == "__main__":
    main()
