"""Batch throughput: items per minute and hours of audio per hour, per executor, on this machine.

Runs the same job (short prompt-style lines, WAV) through the in-process pool with 1 and 2 workers and
through Ray with 2 actors on a Ray instance started here, each into a fresh folder with fresh job
records. Throughput is measured from the first item sent to the last item recorded; worker start-up
(model load) is reported separately. Writes JSON and the batch table in docs/benchmarks.md.

    python bench/batch.py --out bench/results/batch.json --doc docs/benchmarks.md
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

from doc_block import replace_block

from voxvault.config import Settings
from voxvault.jobs.batch import run_batch
from voxvault.jobs.executors import Executor, LocalExecutor, RayExecutor
from voxvault.jobs.spec import BatchSpec, parse_items
from voxvault.service import VoxVault

LINES = [
    "Welcome to the north entrance.",
    "Please keep your ticket until the end of your journey.",
    "The next train to the airport leaves from platform four.",
    "Your order has been shipped and will arrive on Thursday.",
    "Press one to hear these options again.",
    "Chapter seven. The lighthouse keeper's daughter.",
    "Thank you for calling. Your call is important to us.",
    "Turn left at the second set of traffic lights.",
]


def items(n: int) -> BatchSpec:
    rows = [{"id": f"line-{i:04d}", "text": LINES[i % len(LINES)]} for i in range(n)]
    return parse_items("".join(json.dumps(r) + "\n" for r in rows).encode(), kind="jsonl")


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def gpu_row() -> dict[str, Any]:
    import onnxruntime

    providers = onnxruntime.get_available_providers()
    if "CUDAExecutionProvider" not in providers:
        return {
            "available": False,
            "note": "no GPU in this session (onnxruntime providers: "
            f"{', '.join(providers)}); GPU batching not measured",
        }
    return {
        "available": True,
        "note": "a CUDA provider is present, but the Kokoro engine runs one item per "
        "model call: GPU batching is not implemented, so no GPU row was measured",
    }


def measure(settings: Settings, spec: BatchSpec, executor: Executor, root: Path, name: str) -> dict[str, Any]:
    vv = VoxVault(settings)
    t0 = time.perf_counter()
    result = run_batch(vv, spec, str(root / name), executor=executor)
    wall = time.perf_counter() - t0
    vv.db.dispose()
    assert result.counts.done == len(spec.items) and result.counts.skipped == 0, result.counts
    per_s = len(spec.items) / result.processing_s
    row = {
        "executor": executor.name,
        "workers": executor.workers,
        "onnx_threads_per_worker": settings.threads
        or (max(1, int(executor.cpus_per_worker)) if isinstance(executor, RayExecutor) else os.cpu_count()),
        "items": len(spec.items),
        "audio_s": round(result.audio_seconds, 2),
        "startup_s": round(result.startup_s, 2),
        "processing_s": round(result.processing_s, 2),
        "wall_s": round(wall, 2),
        "items_per_minute": round(per_s * 60, 1),
        "audio_hours_per_hour": round(result.audio_seconds / result.processing_s, 2),
        "load_average_1min_after": round(os.getloadavg()[0], 2),
    }
    print(name, json.dumps(row), flush=True)
    return row


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="bench/results/batch.json")
    ap.add_argument("--doc", default=None)
    ap.add_argument("--items", type=int, default=24)
    ap.add_argument("--ray-address", default=None, help="Use this Ray cluster instead of starting one here.")
    ap.add_argument("--no-ray", action="store_true")
    args = ap.parse_args()

    spec = items(args.items)
    cores = os.cpu_count() or 1
    rows: list[dict[str, Any]] = []
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="vv-bench-batch-") as tmp:
        root = Path(tmp)
        base = Settings()
        settings = Settings(data_dir=root / "data", cache_dir=base.resolved_cache_dir, threads=base.threads)
        # As the CLI does: one worker uses every core; N workers split them.
        split = settings.model_copy(update={"threads": settings.threads or max(1, cores // 2)})
        rows.append(measure(settings, spec, LocalExecutor(1), root, "local-1"))
        rows.append(measure(split, spec, LocalExecutor(2), root, "local-2"))
        if not args.no_ray:
            try:
                rows.append(measure(settings, spec, RayExecutor(2, args.ray_address), root, "ray-2"))
            except Exception as exc:  # noqa: BLE001 - reported in the results instead
                rows.append({"executor": "ray", "workers": 2, "error": f"{type(exc).__name__}: {exc}"})

    result = {
        "machine": {
            "cpu": cpu_name(),
            "cores": cores,
            "python": platform.python_version(),
            "load_average_1min_before": round(load_before, 2),
        },
        "settings": {
            "tts_engine": settings.tts_engine,
            "kokoro_precision": settings.kokoro_precision,
            "format": "wav",
        },
        "job": {"items": len(spec.items), "texts": "short prompt-style lines (5-10 words)"},
        "runs": rows,
        "gpu": gpu_row(),
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}")
    if args.doc:
        write_doc(Path(args.doc), result)


BEGIN, END = "<!-- batch:begin -->", "<!-- batch:end -->"


def write_doc(path: Path, r: dict[str, Any]) -> None:
    m = r["machine"]
    lines = [
        BEGIN,
        f"Machine: {m['cores']} cores ({m['cpu']}), Python {m['python']}; "
        f"engine `{r['settings']['tts_engine']}` precision `{r['settings']['kokoro_precision']}`; "
        f"{r['job']['items']} items of "
        f"{r['job']['texts']}, WAV. Throughput counts from the first item sent to the last recorded; "
        "start-up is the workers loading the model. The machine is shared: its 1-minute load average was "
        f"{m['load_average_1min_before']:.1f} at the start (see each row's after-run value), so these are "
        "lower bounds for a quiet machine.",
        "",
        "| executor | workers | ONNX threads each | items/min | audio h per h | audio (s) | processing (s) "
        "| start-up (s) | load after |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row in r["runs"]:
        if "error" in row:
            lines.append(f"| {row['executor']} | {row['workers']} | | failed: {row['error']} | | | | | |")
            continue
        lines.append(
            f"| {row['executor']} | {row['workers']} | {row['onnx_threads_per_worker']} "
            f"| {row['items_per_minute']:.1f} | {row['audio_hours_per_hour']:.2f} | {row['audio_s']:.1f} "
            f"| {row['processing_s']:.1f} | {row['startup_s']:.1f} | {row['load_average_1min_after']:.1f} |"
        )
    lines += ["", f"GPU: {r['gpu']['note']}.", END]
    replace_block(path, "\n".join(lines), BEGIN, END, heading="## Batch jobs (`make bench-batch`)")


if __name__ == "__main__":
    main()
