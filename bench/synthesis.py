"""Synthesis benchmark: real-time factor and time to first audio, voxvault vs the plain baseline.

The baseline runs the same shipped int8 ONNX model the plain way, in a stock onnxruntime session: whole
text phonemised, one model call (split only where the model's token limit forces it), audio available
when everything is done. voxvault streams piece by piece with the configured graph (precision `auto` by
default). Both run in this process, interleaved, so machine noise hits them alike. Writes JSON and the
table in docs/benchmarks.md.

    python bench/synthesis.py --out bench/results/synthesis.json --doc docs/benchmarks.md
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np
from doc_block import replace_block

from voxvault.config import Settings
from voxvault.service import VoxVault

ROOT = Path(__file__).resolve().parents[1]

TEXTS = {
    "short": "Hello there, friend.",
    "medium": (
        "The committee will meet on Tuesday morning to review the budget, and every member "
        "should bring their notes and questions."
    ),
}
_LONG_SENTENCES = [
    "Once upon a time, in a small village between two rivers, there lived a baker who rose before dawn.",
    "Every morning she lit the oven, kneaded the dough, and watched the sky turn from grey to gold.",
    "The villagers loved her bread, but they loved her stories even more, for she knew the old tales.",
    "Children gathered at her window after school, pressing their noses to the glass and waiting patiently.",
    "She told them about dragons that slept under mountains and ships that sailed to the edge of the world.",
    "One winter the river froze so hard that the mill stopped turning and flour became scarce in the valley.",
]
TEXTS["long"] = " ".join(_LONG_SENTENCES * 3)  # ~300 words


def words(text: str) -> int:
    return len(text.split())


class Baseline:
    """The plain way: the shipped int8 ONNX, whole text in one call (chunked only at the per-call limit)."""

    def __init__(self, vv: VoxVault) -> None:
        import onnxruntime as ort

        from voxvault.engines.kokoro import SAMPLE_RATE, ensure_joined_model

        # The shipped graph exactly as joined from the PyPI parts, in a stock session (all cores).
        model = ensure_joined_model(vv.settings.resolved_cache_dir)
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = os.cpu_count() or 1
        self.session = ort.InferenceSession(str(model), sess_options=opts, providers=["CPUExecutionProvider"])
        self.sample_rate = SAMPLE_RATE
        self.tokenize = vv.pipeline.tts.tokenize
        self.max_tokens = vv.pipeline.tts.max_phonemes
        self.style = np.asarray(vv.catalog.resolve("alpha").style, dtype=np.float32).reshape(-1, 256)
        self.phonemizer = vv.frontend

    def _speak(self, tokens: list[int]) -> np.ndarray:
        row = self.style[min(len(tokens), len(self.style)) - 1].reshape(1, 256)
        feed = {
            "tokens": np.array([[0, *tokens, 0]], dtype=np.int64),
            "style": row,
            "speed": np.array([1.0], dtype=np.float32),
        }
        return np.asarray(self.session.run(None, feed)[0], dtype=np.float32).reshape(-1)

    def run(self, text: str) -> tuple[float, float]:
        t0 = time.perf_counter()
        pieces = self.phonemizer.plan(text, first_piece_max_phonemes=None)
        phonemes = " ".join(p.phonemes for p in pieces)
        tokens = self.tokenize(phonemes)
        limit = self.max_tokens  # the model's per-call limit
        chunks = [tokens[i : i + limit] for i in range(0, len(tokens), limit)]
        audio = np.concatenate([self._speak(c) for c in chunks])
        took = time.perf_counter() - t0
        return took, len(audio) / self.sample_rate


def ours(vv: VoxVault, text: str) -> tuple[float, float, float]:
    style = vv.catalog.resolve("alpha")
    t0 = time.perf_counter()
    prepared = vv.pipeline.prepare(text, style, fmt="pcm")
    stats: dict[str, float] = {}
    for _ in vv.pipeline.stream(prepared, stats=stats):
        pass
    total = time.perf_counter() - t0
    first = stats["first_audio_s"] + (total - stats["total_s"])  # include text front end time
    return first, total, stats["audio_s"]


def ge2e_seconds(vv: VoxVault, reps: int) -> float:
    enc = vv.engines.speaker()
    rng = np.random.default_rng(0)
    clip = ROOT.parent / "shared" / "testdata" / "speakers" / "en_andrew.wav"
    if clip.exists():
        from voxvault.audio import decode

        a = decode(clip, max_bytes=10**8, max_seconds=60, target_sr=16000).samples
        audio = np.tile(a, int(np.ceil(10 * 16000 / len(a))))[: 10 * 16000]
    else:
        audio = (rng.standard_normal(10 * 16000) * 0.1).astype(np.float32)
    enc.embed(audio, 16000)
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        enc.embed(audio, 16000)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="bench/results/synthesis.json")
    ap.add_argument("--doc", default=None)
    ap.add_argument("--reps", type=int, default=3)
    args = ap.parse_args()

    settings = Settings()
    vv = VoxVault(settings)
    t0 = time.perf_counter()
    vv.warm_up()
    load_s = time.perf_counter() - t0
    base = Baseline(vv)
    base.run("Warm up.")

    rows: dict[str, Any] = {}
    for name, text in TEXTS.items():
        reps = 1 if name == "long" else args.reps
        o_first, o_total, o_audio, b_total, b_audio = [], [], [], [], []
        for _ in range(reps):  # interleaved so noise hits both alike
            f, t, a = ours(vv, text)
            o_first.append(f)
            o_total.append(t)
            o_audio.append(a)
            bt, ba = base.run(text)
            b_total.append(bt)
            b_audio.append(ba)
        med = statistics.median
        rows[name] = {
            "words": words(text),
            "voxvault": {
                "first_audio_s": round(med(o_first), 4),
                "total_s": round(med(o_total), 4),
                "audio_s": round(med(o_audio), 3),
                "rtf": round(med(o_total) / med(o_audio), 4),
            },
            "baseline": {
                "first_audio_s": round(med(b_total), 4),
                "total_s": round(med(b_total), 4),
                "audio_s": round(med(b_audio), 3),
                "rtf": round(med(b_total) / med(b_audio), 4),
            },
        }
        rows[name]["first_audio_vs_baseline_total"] = round(med(o_first) / med(b_total), 4)
        print(name, json.dumps(rows[name]), flush=True)

    result = {
        "machine": {
            "cpu": platform.processor() or platform.machine(),
            "cores": os.cpu_count(),
            "python": platform.python_version(),
            "node": platform.node(),
        },
        "settings": {"tts_engine": settings.tts_engine, "kokoro_precision": settings.kokoro_precision},
        "engine_load_and_warmup_s": round(load_s, 3),
        "texts": rows,
        "ge2e_embed_10s_audio_s": round(ge2e_seconds(vv, args.reps), 4),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "targets": {
            "medium_rtf_max": 0.15,
            "medium_first_audio_vs_baseline_max": 0.4,
        },
    }
    result["targets"]["medium_rtf_met"] = rows["medium"]["voxvault"]["rtf"] <= 0.15
    result["targets"]["medium_first_audio_met"] = rows["medium"]["first_audio_vs_baseline_total"] <= 0.4
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}")
    if args.doc:
        write_doc(Path(args.doc), result)


BEGIN, END = "<!-- synthesis:begin -->", "<!-- synthesis:end -->"


def write_doc(path: Path, r: dict[str, Any]) -> None:
    lines = [
        BEGIN,
        f"Machine: {r['machine']['cores']} cores ({r['machine']['cpu']}), Python {r['machine']['python']}; "
        f"engine `{r['settings']['tts_engine']}` precision `{r['settings']['kokoro_precision']}`.",
        "",
        "| text | words | voxvault RTF | voxvault first audio (s) | baseline RTF | baseline whole-text (s) "
        "| first audio / baseline |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, row in r["texts"].items():
        v, b = row["voxvault"], row["baseline"]
        lines.append(
            f"| {name} | {row['words']} | {v['rtf']:.3f} | {v['first_audio_s']:.3f} | {b['rtf']:.3f} "
            f"| {b['total_s']:.3f} | {row['first_audio_vs_baseline_total']:.2f} |"
        )
    lines += [
        "",
        f"GE2E embedding of 10 s of audio: {r['ge2e_embed_10s_audio_s']:.3f} s. "
        f"Peak RSS: {r['peak_rss_mb']:.0f} MB. Engine load + warm-up: {r['engine_load_and_warmup_s']:.2f} s.",
        f"Targets: medium RTF ≤ 0.15 → {'met' if r['targets']['medium_rtf_met'] else 'NOT met'}; "
        f"medium first audio ≤ 0.4 × baseline → "
        f"{'met' if r['targets']['medium_first_audio_met'] else 'NOT met'}.",
        END,
    ]
    replace_block(path, "\n".join(lines), BEGIN, END, heading="## Synthesis (`make bench`)")


if __name__ == "__main__":
    main()
