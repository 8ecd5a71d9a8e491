"""How long the CLI takes to answer what needs no model (issue 26, item 4): ``--help``, ``voices`` (with
no database yet, and with one), a bad ``--speed`` and a file that is not audio.

Each command runs ``--repeats`` times in a fresh interpreter; reported per command: median wall time and
median CPU time (user + system of the child, which a busy machine inflates less than wall time). Python
writes bytecode to a private cache (``PYTHONPYCACHEPREFIX``), warmed by one untimed run, as on a user's
machine. ``--src`` runs another checkout's ``src`` (the before figures: a ``git worktree`` or an
extracted ``git archive`` of an older commit).

    python bench/cli_latency.py --out bench/results/cli_latency.json
    python bench/cli_latency.py --src /tmp/before/src --out bench/results/cli_latency_before.json
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]

CASES: list[tuple[str, list[str], bool]] = [  # name, arguments, needs a database first
    ("--help", ["--help"], False),
    ("voices (no database yet)", ["voices"], False),
    ("voices (database)", ["voices"], True),
    ("say --speed 99", ["say", "Hello.", "--speed", "99", "-o", "{tmp}/x.wav"], False),
    ("transcribe <not audio>", ["transcribe", "{tmp}/notes.wav"], False),
]


def run(argv: list[str], env: dict[str, str]) -> tuple[float, float, int]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run(argv, env=env, capture_output=True, timeout=600)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, proc.returncode


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--src", type=Path, default=None, help="run this src/ instead of the installed package")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "cli_latency.json")
    args = ap.parse_args()

    results: list[dict[str, Any]] = []
    load_start = [round(x, 2) for x in os.getloadavg()]
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "notes.wav").write_text("these are not samples")
        env = {k: v for k, v in os.environ.items() if not k.startswith("VOXVAULT_")}
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = str(Path(tmp) / "pycache")
        if args.src is not None:
            env["PYTHONPATH"] = str(args.src.resolve())
        for name, template, needs_db in CASES:
            data = Path(tmp) / ("db" if needs_db else "empty")
            case_env = {**env, "VOXVAULT_DATA_DIR": str(data)}
            argv = [sys.executable, "-m", "voxvault", *(a.format(tmp=tmp) for a in template)]
            if needs_db:
                run([sys.executable, "-m", "voxvault", "keys", "list"], case_env)  # creates the database
            run(argv, case_env)  # untimed: writes the bytecode cache
            walls, cpus, codes = [], [], set()
            for _ in range(args.repeats):
                wall, cpu, code = run(argv, case_env)
                walls.append(wall)
                cpus.append(cpu)
                codes.add(code)
            results.append(
                {
                    "command": name,
                    "exit_status": sorted(codes),
                    "wall_s_median": round(statistics.median(walls), 3),
                    "cpu_s_median": round(statistics.median(cpus), 3),
                    "cpu_s_min": round(min(cpus), 3),
                }
            )
            print(json.dumps(results[-1]), flush=True)
    report = {
        "machine": {
            "cores": len(os.sched_getaffinity(0)),
            "python": sys.version.split()[0],
            "load_average_at_start": load_start,
            "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
        },
        "src": str(args.src) if args.src else "installed",
        "repeats": args.repeats,
        "results": results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
