"""Kokoro engines side by side, in one run: onnxruntime precisions (each without and with the compiled
vocoder kernels, ``engines/kernels``) and PyTorch (CPU, or CUDA when present), and a fine-tuned voice
(adapted style biases) on each engine that speaks it itself.

Each engine speaks the same sentences (one call each, 5 runs, median); PyTorch also does a forward and
backward pass for the style gradient (what a fine-tuning step costs). Writes JSON and, with ``--doc``, a
table into ``docs/benchmarks.md`` between ``<!-- bench-engines:start/end -->``.

    python bench/engines.py --out bench/results/engines.json --doc docs/benchmarks.md [--device cuda]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from doc_block import replace_block  # noqa: E402

from voxvault.cloning.adapt.decoder import adaptable_weights  # noqa: E402
from voxvault.engines.base import AdaptedWeights  # noqa: E402
from voxvault.engines.kokoro import KokoroEngine, cpu_has_vnni  # noqa: E402
from voxvault.engines.kokoro_torch import KokoroTorchEngine  # noqa: E402
from voxvault.engines.onnx_float import is_style_bias  # noqa: E402
from voxvault.text import TextFrontend  # noqa: E402

SENTENCES = {
    "21 words": "The committee will meet again on Thursday to review the budget and decide which of the "
    "three proposals goes forward.",
    "3 words": "Thanks for waiting.",
}
RUNS = 5
BEGIN, END = "<!-- bench-engines:start -->", "<!-- bench-engines:end -->"


def _phonemes(frontend: TextFrontend, text: str) -> str:
    return frontend.phonemes(text)


def _time(fn: Any, runs: int) -> tuple[float, Any]:
    fn()  # warm-up (first call allocates)
    times, out = [], None
    for _ in range(runs):
        t0 = time.perf_counter()
        out = fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def measure(cache: Path, device: str, runs: int) -> dict[str, Any]:
    precisions = ("int8", "float", "int8-vnni") if cpu_has_vnni() else ("int8", "float")  # no VNNI: = int8
    engines: dict[str, Any] = {}
    for p in precisions:  # each graph as shipped/rewritten, then with the compiled vocoder kernels
        engines[p] = KokoroEngine(cache, precision=p, kernels="off")
        fused = KokoroEngine(cache, precision=p)
        if fused.fused_kernels:
            engines[f"{p}+fused"] = fused
    engines[f"torch-{device}"] = KokoroTorchEngine(cache, device=device)
    first = next(iter(engines.values()))
    frontend = TextFrontend(max_phonemes=first.max_phonemes)
    voice = first.preset_styles()["jm_kumo"]
    # A fine-tuned voice (decoder adaptation's default: the 58 style biases) on each engine that takes
    # its weights itself; small deltas, as a trained voice has.
    calls: dict[str, Any] = {name: engine.synthesize for name, engine in engines.items()}
    for name, engine in list(engines.items()):
        biases = _style_bias_shapes(engine)
        adapted = AdaptedWeights("bench", {n: np.full(s, 0.01, np.float32) for n, s in biases.items()})
        if biases and engine.speaks(adapted):
            calls[f"{name} adapted"] = lambda p, v, e=engine, a=adapted: e.synthesize_adapted(p, v, 1.0, a)
    rows: dict[str, Any] = {}
    for name, call in calls.items():
        engine = engines[name.removesuffix(" adapted")]
        row: dict[str, Any] = {"precision": getattr(engine, "precision", None)}
        for label, text in SENTENCES.items():
            ph = _phonemes(frontend, text)
            seconds, audio = _time(lambda c=call, p=ph: c(p, voice), runs)
            row[label] = {"seconds": round(seconds, 4), "audio_s": round(len(audio) / 24_000, 3)}
            row[label]["rtf"] = round(seconds / max(len(audio) / 24_000, 1e-9), 4)
        rows[name] = row
    torch_engine = engines[f"torch-{device}"]
    ph = _phonemes(frontend, SENTENCES["21 words"])
    tokens = torch_engine.tokenize(ph)

    def step() -> float:
        style = torch.tensor(voice[len(tokens) - 1], requires_grad=True)
        audio = torch_engine.forward(tokens, style)
        (audio**2).mean().backward()
        return float(audio.numel())

    seconds, samples = _time(step, max(2, runs // 2))
    rows[f"torch-{device}"]["forward_backward_21_words"] = {
        "seconds": round(seconds, 3),
        "per_audio_second": round(seconds / (samples / 24_000), 3),
    }
    return rows


def _style_bias_shapes(engine: Any) -> dict[str, tuple[int, ...]]:
    if isinstance(engine, KokoroTorchEngine):
        return {n: tuple(engine.graph.constants[n].shape) for n in adaptable_weights(engine, "bias")}
    graph = onnx.load(str(engine.model_path)).graph
    return {t.name: tuple(t.dims) for t in graph.initializer if is_style_bias(t.name)}


def machine() -> str:
    from stream import machine as describe  # bench/stream.py: CPU model, cores, versions

    m = describe()
    gpu = f", GPU {torch.cuda.get_device_name(0)}" if torch.cuda.is_available() else ""
    isa = "AVX512-VNNI" if cpu_has_vnni() else "no VNNI"
    return f"{m['cpu']} ({isa}), {m['cores']} cores{gpu}; torch {torch.__version__}"


def render(report: dict[str, Any]) -> str:
    lines = [
        BEGIN,
        f"Machine: {report['machine']}. Run {report['when']}, medians of {report['runs']} calls, "
        f"load average at start {report['load_start']}.",
        "",
        "| engine | 21-word s | 21-word RTF | 3-word s | 3-word RTF |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, row in report["engines"].items():
        a, b = row["21 words"], row["3 words"]
        lines.append(
            f"| `{name}` | {a['seconds']:.3f} | {a['rtf']:.3f} | {b['seconds']:.3f} | {b['rtf']:.3f} |"
        )
    for name, row in report["engines"].items():
        fb = row.get("forward_backward_21_words")
        if fb:
            lines.append("")
            lines.append(
                f"`{name}` forward + backward to the style (one gradient step's model cost), 21 words: "
                f"{fb['seconds']:.2f} s ({fb['per_audio_second']:.2f} s per audio second)."
            )
    lines.append(END)
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=ROOT / "bench/results/engines.json")
    parser.add_argument("--doc", type=Path)
    parser.add_argument("--cache", type=Path, default=ROOT / ".cache/models")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--runs", type=int, default=RUNS)
    args = parser.parse_args()
    if args.device == "cpu":
        torch.set_num_threads(len(os.sched_getaffinity(0)))
    load_start = [round(x, 2) for x in os.getloadavg()]
    report = {
        "machine": machine(),
        "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "runs": args.runs,
        "load_start": load_start,
        "engines": measure(args.cache, args.device, args.runs),
        "load_end": [round(x, 2) for x in os.getloadavg()],
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    if args.doc is not None:
        heading = "## Kokoro engines side by side (`make bench-engines`)"
        replace_block(args.doc, render(report), BEGIN, END, heading=heading)
    print(json.dumps(report["engines"], indent=2))


if __name__ == "__main__":
    main()
