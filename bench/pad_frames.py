"""Issue 28, pad frames: Kokoro with and without the boundary pads' durations capped (``cap_pad_durations``),
interleaved in one process at one thread: first pieces' frames and CPU, long sentences' CPU, Whisper WER of
the openers' first clauses, speech-part spectral distance, lead-in silence and onset energy.

    OMP_NUM_THREADS=1 .venv/bin/python bench/pad_frames.py --precision int8 --out /tmp/pad_int8.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from numpy.typing import NDArray
from onnx import helper, numpy_helper

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "engines"))

LONG = [
    "The quarterly report shows that revenue grew steadily across every region, although costs in the "
    "northern warehouses rose faster than anyone on the planning team had expected.",
    "When the storm finally passed, the villagers walked down to the harbour to count the boats and "
    "found that only two of them had been damaged by the waves.",
    "Please make sure that all of the documents are signed and dated before you send them back to our "
    "office, otherwise the application cannot be processed this month.",
    "Scientists have long wondered why some birds migrate thousands of kilometres every year while "
    "others of the same species stay close to home for their whole lives.",
    "If the train is delayed again tomorrow morning, we will meet at the café next to the station and "
    "take a taxi to the conference centre together.",
]


def cap_pad_durations(
    model: onnx.ModelProto, durations: str, frames: int = 2, trail_frames: int | None = None
) -> int:
    """Cap the predicted durations of the boundary pads (the first and last token) at ``frames``.

    Kokoro gives each pad 5-15 frames (25 ms each) of near-silence, which every call trims away again
    (``kokoro._speech_bounds``); the vocoder's cost grows with frames, so a first piece as short as
    "Okay." spent about a quarter of its time rendering silence. ``durations`` (the rounded, clipped
    frames per token) keeps its name, so whatever reads it (the alignment, an exposed output) sees the
    capped values. Returns 1, or 0 where the graph has no such tensor or is already capped.
    """
    graph = model.graph
    uncapped = durations + "_uncapped"
    made = [i for i, n in enumerate(graph.node) if durations in n.output]
    if not made or any(uncapped in n.output for n in graph.node):
        return 0
    producer = graph.node[made[0]]
    producer.output[list(producer.output).index(durations)] = uncapped

    def const(name: str, value: NDArray[Any]) -> str:
        graph.initializer.append(numpy_helper.from_array(value, f"pad_cap.{name}"))
        return f"pad_cap.{name}"

    ints = {v: const(f"i{v}".replace("-", "m"), np.array([v], dtype=np.int64)) for v in (0, 1, -1)}
    end = const("end", np.array([np.iinfo(np.int64).max], dtype=np.int64))
    low = const("low", np.array(1.0, dtype=np.float32))
    high = const("high", np.array(float(frames), dtype=np.float32))
    trail_high = const("trail_high", np.array(float(trail_frames or 10_000), dtype=np.float32))
    axis = ints[-1]
    lead, mid, trail = (f"{durations}_{part}" for part in ("lead", "mid", "trail"))
    nodes = [
        helper.make_node("Slice", [uncapped, ints[0], ints[1], axis], [lead], name="/pad_cap/lead"),
        helper.make_node("Slice", [uncapped, ints[1], ints[-1], axis], [mid], name="/pad_cap/mid"),
        helper.make_node("Slice", [uncapped, ints[-1], end, axis], [trail], name="/pad_cap/trail"),
        helper.make_node("Clip", [lead, low, high], [lead + "_capped"], name="/pad_cap/clip_lead"),
        helper.make_node("Clip", [trail, low, trail_high], [trail + "_capped"], name="/pad_cap/clip_trail"),
        helper.make_node(
            "Concat", [lead + "_capped", mid, trail + "_capped"], [durations], name="/pad_cap/join", axis=-1
        ),
    ]
    for k, node in enumerate(nodes):
        graph.node.insert(made[0] + 1 + k, node)
    return 1


def _load() -> str:
    """The 1-minute load average, written beside every timing."""
    return Path("/proc/loadavg").read_text().split()[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--precision", default="int8")
    parser.add_argument("--cache", type=Path, default=Path.home() / ".cache/voxvault/test-models")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--frames", type=int, default=2)
    parser.add_argument("--trail", type=int, default=0, help="trailing pad's cap (0: not capped)")
    parser.add_argument("--no-wer", action="store_true")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()

    from openers import OPENERS
    from test_kokoro import spectral_distance_db

    from voxvault.engines.kernels import kernel_library
    from voxvault.engines.kokoro import (
        DURATIONS_TENSOR,
        SAMPLES_PER_FRAME,
        KokoroEngine,
        _speech_bounds,
        graph_feeds,
    )
    from voxvault.engines.onnx_float import expose_output
    from voxvault.synthesis.pipeline import SpeechPipeline, VoiceStyle
    from voxvault.text import TextFrontend

    engine = KokoroEngine(args.cache, precision=args.precision, threads=1)
    plain = engine._session
    graph = onnx.load(str(engine.model_path))
    changed = cap_pad_durations(graph, DURATIONS_TENSOR, args.frames, args.trail or None)
    expose_output(graph, DURATIONS_TENSOR)
    capped_path = Path(f"/tmp/e28/capped-{engine.model_path.name}")
    onnx.save(graph, str(capped_path))
    library = kernel_library(args.cache / "kernels") if engine.fused_kernels else None
    capped = engine._session_for(capped_path, library)
    sessions = {"without": plain, "with": capped}
    styles = engine.preset_styles()
    voice_name = "af_heart" if "af_heart" in styles else sorted(styles)[0]
    style = styles[voice_name]
    sr = engine.sample_rate
    pipeline = SpeechPipeline(engine, TextFrontend(), adaptable_tts=None)
    voice = VoiceStyle(voice_name, style)
    firsts = [pipeline.prepare(t, voice, first_piece_phonemes=8).pieces[0].phonemes for t in OPENERS]

    def call(which: str, phonemes: str) -> tuple[np.ndarray, float, int, np.ndarray]:
        engine._session = sessions[which]
        tokens = engine.tokenize(phonemes)
        feeds = graph_feeds(tokens, engine._style_row(style, len(tokens)), 1.0)
        t0 = time.process_time()
        out = engine._run(feeds)
        cpu = time.process_time() - t0
        raw = np.clip(out[0].reshape(-1), -1, 1)
        dur = out[1].reshape(-1) if len(out) > 1 else np.zeros(0)
        return raw, cpu, raw.size // SAMPLES_PER_FRAME, dur

    rows: dict[str, Any] = {"precision": engine.precision, "fused": engine.fused_kernels, "voice": voice_name}
    loads = [_load()]
    first_rows = []
    for k, ph in enumerate(firsts):
        cpu: dict[str, list[float]] = {"with": [], "without": []}
        info: dict[str, Any] = {"text": OPENERS[k], "phonemes": ph}
        for r in range(args.repeats):
            for which in ("with", "without") if (k + r) % 2 else ("without", "with"):
                raw, c, frames, dur = call(which, ph)
                cpu[which].append(c)
                b, e = _speech_bounds(raw, sr)
                info[which] = {
                    "frames": frames,
                    "pads": [float(dur[0]), float(dur[-1])] if dur.size else None,
                    "lead_s": b / sr,
                    "trail_s": (raw.size - e) / sr,
                    "kept_s": (e - b) / sr,
                    "onset50_rms": float(np.sqrt(np.mean(raw[b : b + sr // 20] ** 2))),
                    "audio": raw[b:e],
                }
        for which in cpu:
            info[which]["cpu_s"] = float(np.median(cpu[which]))
        info["distance_db"] = spectral_distance_db(info["with"]["audio"], info["without"]["audio"])
        first_rows.append(info)
    loads.append(_load())
    long_rows = []
    for k, text in enumerate(LONG):
        ph = " ".join(p.phonemes for p in pipeline.prepare(text, voice).pieces)
        res: dict[str, Any] = {}
        for which in ("with", "without") if k % 2 else ("without", "with"):
            raw, c, frames, _ = call(which, ph)
            b, e = _speech_bounds(raw, sr)
            res[which] = {"cpu_s": c, "frames": frames, "rtf": c / ((e - b) / sr), "audio": raw[b:e]}
        res["distance_db"] = spectral_distance_db(res["with"].pop("audio"), res["without"].pop("audio"))
        long_rows.append(res)
    loads.append(_load())
    wer: dict[str, float] = {}
    if not args.no_wer:
        from voxvault.engines.asr import word_error_rate
        from voxvault.engines.whisper import WhisperRecognizer

        rec = WhisperRecognizer("base", args.cache, threads=1)
        clauses = [t.split(",")[0] for t in OPENERS]
        for which in ("without", "with"):
            engine._session = sessions[which]
            errs = []
            for clause in clauses:
                audio = pipeline.render(pipeline.prepare(clause, voice, fmt="wav")).samples
                errs.append(word_error_rate(clause, rec.transcribe(audio, sr)))
            wer[which] = float(np.mean(errs))
        loads.append(_load())
    for info in first_rows:
        for which in ("with", "without"):
            info[which].pop("audio")
    rows.update(first=first_rows, long=long_rows, wer=wer, loads=loads, changed=changed)
    args.out.write_text(json.dumps(rows, indent=1))

    def med(key: str, which: str, sub: list[dict[str, Any]]) -> float:
        return float(np.median([r[which][key] for r in sub]))

    for label, sub in (("Okay.", first_rows[:1]), ("openers", first_rows)):
        print(
            f"{label}: frames {med('frames', 'without', sub):.0f} -> {med('frames', 'with', sub):.0f}, "
            f"cpu {med('cpu_s', 'without', sub) * 1e3:.0f} -> {med('cpu_s', 'with', sub) * 1e3:.0f} ms, "
            f"lead {med('lead_s', 'without', sub) * 1e3:.0f} -> {med('lead_s', 'with', sub) * 1e3:.0f} ms, "
            f"onset rms {med('onset50_rms', 'without', sub):.4f} -> {med('onset50_rms', 'with', sub):.4f}"
        )
    print("first-piece distance dB max", max(r["distance_db"] for r in first_rows))
    print(
        "long: cpu",
        sum(r["without"]["cpu_s"] for r in long_rows),
        "->",
        sum(r["with"]["cpu_s"] for r in long_rows),
        "distance max",
        max(r["distance_db"] for r in long_rows),
    )
    print("wer", wer, "loads", loads)


if __name__ == "__main__":
    main()
