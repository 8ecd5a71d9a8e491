"""Transcription benchmark (``make bench-asr``): WER, speed and peak memory of voxvault's Whisper.

    python bench/asr.py --out bench/results/asr.json --doc docs/benchmarks.md

Real read English with known transcripts: the five LibriVox clips of Debian's ``pocketsphinx-testdata``
(BSD-2; ``apt-get install pocketsphinx-testdata``). Measured in one run, on the same clips:

* WER of voxvault's engine (base and tiny.en: windowed, VAD, batched encoder, word timestamps) and, as the
  baseline, of plain faster-whisper on the same weights with its defaults (``WhisperModel.transcribe``).
  Text is normalised (lowercase, punctuation dropped, ``mr`` = ``mister``) before jiwer counts errors.
* Speed on a "batch" file: the clips looped into a file of ``--long-minutes`` minutes (WER on it checks the
  window boundaries too), each engine in its own process: wall time, CPU time and peak RSS.
* Peak RSS on an hour-long file (speech at both ends, quiet room tone between) for voxvault (decodes and
  recognises in windows) and for plain faster-whisper (decodes the whole hour first), both with VAD.

The machine is shared with other work: the load average is recorded before and after each run, and CPU
seconds per audio second (all threads) are reported beside the wall-clock real-time factor.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
LIBRIVOX = Path("/usr/share/pocketsphinx/test/data/librivox")
SR = 16_000
_STANDARD = {"mr": "mister", "mrs": "missus", "dr": "doctor"}


def normalise(text: str) -> str:
    from voxvault.engines.asr import normalize_text

    return " ".join(_STANDARD.get(w, w) for w in normalize_text(text).split())


def wer(refs: list[str], hyps: list[str]) -> float:
    import jiwer

    return float(jiwer.wer([normalise(r) for r in refs], [normalise(h) for h in hyps]))


def clips() -> list[tuple[Path, str]]:
    table = (LIBRIVOX / "transcription").read_text().splitlines()
    out = []
    for line in table:
        m = re.match(r"<s>(.*)</s>\s*\((.*)\)", line.strip())
        if m:
            out.append((LIBRIVOX / f"{m.group(2)}.wav", m.group(1).strip()))
    return out


def cpu_name() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def model_dir(name: str) -> Path:
    from voxvault.config import Settings
    from voxvault.engines.whisper import MODELS, ensure_model_dir

    return ensure_model_dir(Settings().prepare().resolved_cache_dir, MODELS[name])


# ---------------------------------------------------------------------------------------------- child
def child(engine: str, model: str, paths: list[Path], threads: int) -> list[dict[str, Any]]:
    """Transcribe ``paths`` in this (fresh) process, the model loaded once: text, wall and CPU seconds
    per file, and the process's peak RSS so far."""
    t_load = time.perf_counter()
    rows = []
    if engine == "voxvault":
        from voxvault.engines.whisper import TranscribeOptions, WhisperRecognizer

        rec = WhisperRecognizer(model, model_dir(model).parent, threads=threads)
    else:
        from faster_whisper import WhisperModel

        fw = WhisperModel(str(model_dir(model)), device="cpu", compute_type="int8", cpu_threads=threads)
    load_s = time.perf_counter() - t_load
    for path in paths:
        c0, t0 = os.times(), time.perf_counter()
        if engine == "voxvault":
            opts = TranscribeOptions()
            result = rec.recognize_file(path, opts, max_bytes=1 << 40, max_seconds=1e6, timeout_s=1e6)
            text = " ".join(s.text.strip() for s in result)
            duration = result.duration
        else:
            segs, info = fw.transcribe(str(path), vad_filter=engine == "faster-whisper+vad")
            text = " ".join(s.text.strip() for s in segs)
            duration = float(info.duration)
        wall = time.perf_counter() - t0
        c1 = os.times()
        rows.append(
            {
                "engine": engine,
                "model": model,
                "text": text,
                "audio_s": round(duration, 3),
                "load_s": round(load_s, 2),
                "wall_s": round(wall, 2),
                "cpu_s": round((c1.user - c0.user) + (c1.system - c0.system), 2),
                "peak_rss_mb": peak_rss_mb(),
            }
        )
    return rows


def peak_rss_mb() -> float:
    """This process's own peak RSS (VmHWM, reset at exec; ru_maxrss would carry the parent's over)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024, 1)
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def run_child(engine: str, model: str, paths: list[Path], threads: int) -> list[dict[str, Any]]:
    load_before = os.getloadavg()[0]
    cmd = [sys.executable, __file__, "--child", engine, "--model", model, "--threads", str(threads)]
    cmd += ["--file", *map(str, paths)]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"{engine} {model} failed: {proc.stderr.strip()[-2000:]}")
    rows: list[dict[str, Any]] = json.loads(proc.stdout.strip().splitlines()[-1])
    for row in rows:
        row["load_before"] = round(load_before, 2)
        row["load_after"] = round(os.getloadavg()[0], 2)
        row["rtf"] = round(row["wall_s"] / row["audio_s"], 3)
        row["cpu_per_audio_s"] = round(row["cpu_s"] / row["audio_s"], 3)
    return rows


# ---------------------------------------------------------------------------------------------- files
def write_flac(path: Path, audio: np.ndarray) -> None:
    from voxvault.audio.io import encode

    path.write_bytes(encode(audio, SR, "flac"))


def looped(items: list[tuple[Path, str]], seconds: float) -> tuple[np.ndarray, str]:
    """The clips back to back (0.5 s apart) until ``seconds``; the matching reference text."""
    from voxvault.audio.io import decode

    pieces = [decode(p, max_bytes=1 << 30, max_seconds=600, target_sr=SR).samples for p, _ in items]
    gap = np.zeros(SR // 2, dtype=np.float32)
    audio: list[np.ndarray] = []
    text: list[str] = []
    total = 0
    while total < seconds * SR:
        for piece, (_, ref) in zip(pieces, items, strict=True):
            audio += [piece, gap]
            text.append(ref)
            total += piece.size + gap.size
    return np.concatenate(audio), " ".join(text)


def hour_file(items: list[tuple[Path, str]], minutes: float, speech_minutes: float) -> np.ndarray:
    """Speech for ``speech_minutes`` at each end, quiet room tone (about -70 dBFS) in between."""
    speech, _ = looped(items, speech_minutes * 60 / 2)
    quiet = np.random.default_rng(0).standard_normal(int(minutes * 60 * SR) - 2 * speech.size, np.float32)
    quiet *= 1e-4
    return np.concatenate([speech, quiet, speech])


# ---------------------------------------------------------------------------------------------- main
def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="bench/results/asr.json")
    ap.add_argument("--doc", default=None)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--long-minutes", type=float, default=5.0)
    ap.add_argument("--hour-minutes", type=float, default=60.0)
    ap.add_argument("--speech-minutes", type=float, default=4.0, help="speech in the hour-long file")
    ap.add_argument("--child", default=None)
    ap.add_argument("--model", default="base")
    ap.add_argument("--file", nargs="+", default=[])
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.model, [Path(f) for f in args.file], args.threads)))
        return
    if not (LIBRIVOX / "transcription").is_file():
        sys.exit("pocketsphinx-testdata is not installed (apt-get install pocketsphinx-testdata); skipping")

    items = clips()
    refs = [ref for _, ref in items]
    result: dict[str, Any] = {
        "machine": {
            "cpu": cpu_name(),
            "cores": os.cpu_count(),
            "python": platform.python_version(),
            "load_average_1min_before": round(os.getloadavg()[0], 2),
        },
        "threads": args.threads,
        "clips": [p.name for p, _ in items],
        "normalisation": "voxvault.engines.asr.normalize_text; mr/mrs/dr spelled out",
    }
    for name in ("base", "tiny.en"):
        model_dir(name)  # joined once, outside every timing

    # WER per model, voxvault and plain faster-whisper, on the clips (one process each).
    wer_rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for model in ("base", "tiny.en"):
            for engine in ("voxvault", "faster-whisper"):
                rows = run_child(engine, model, [p for p, _ in items], args.threads)
                hyps = [row["text"] for row in rows]
                wall = sum(row["wall_s"] for row in rows)
                cpu = sum(row["cpu_s"] for row in rows)
                audio = sum(row["audio_s"] for row in rows)
                wer_rows.append(
                    {
                        "engine": engine,
                        "model": model,
                        "wer": round(wer(refs, hyps), 4),
                        "per_clip_wer": [round(wer([r], [h]), 4) for r, h in zip(refs, hyps, strict=True)],
                        "hypotheses": hyps,
                        "audio_s": round(audio, 2),
                        "rtf_short_clips": round(wall / audio, 3),
                        "cpu_per_audio_s": round(cpu / audio, 3),
                    }
                )
                print(f"WER {engine} {model}: {wer_rows[-1]['wer']:.4f}", flush=True)
        result["wer"] = wer_rows

        # Speed on a longer file ("batch"), and WER across its windows.
        long_audio, long_ref = looped(items, args.long_minutes * 60)
        long_path = Path(tmp) / "long.flac"
        write_flac(long_path, long_audio)
        speed = []
        for engine, model in (("voxvault", "base"), ("faster-whisper", "base"), ("voxvault", "tiny.en")):
            [row] = run_child(engine, model, [long_path], args.threads)
            row["wer"] = round(wer([long_ref], [row.pop("text")]), 4)
            speed.append(row)
            print(f"long {engine} {model}: {row}", flush=True)
        result["long_file"] = {"minutes": round(long_audio.size / SR / 60, 2), "runs": speed}

        # Peak memory on an hour.
        hour = hour_file(items, args.hour_minutes, speech_minutes=args.speech_minutes)
        hour_path = Path(tmp) / "hour.flac"
        write_flac(hour_path, hour)
        hour_minutes = round(hour.size / SR / 60, 2)
        del hour, long_audio  # the children's memory is measured, not this process's
        memory = []
        for engine, model in (("voxvault", "tiny.en"), ("faster-whisper+vad", "tiny.en")):
            [row] = run_child(engine, model, [hour_path], args.threads)
            row.pop("text", None)
            memory.append(row)
            print(f"hour {engine} {model}: {row}", flush=True)
        result["hour_file"] = {
            "minutes": hour_minutes,
            "speech_minutes": args.speech_minutes,
            "flac_mb": round(hour_path.stat().st_size / 1e6, 1),
            "runs": memory,
        }
    result["machine"]["load_average_1min_after"] = round(os.getloadavg()[0], 2)

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}")
    if args.doc:
        write_doc(Path(args.doc), result)


BEGIN, END = "<!-- bench-asr:begin -->", "<!-- bench-asr:end -->"


def write_doc(path: Path, r: dict[str, Any]) -> None:
    from doc_block import replace_block

    m = r["machine"]
    lines = [
        BEGIN,
        f"Machine: {m['cores']} cores ({m['cpu']}), Python {m['python']}, {r['threads']} inference threads; "
        f"shared with other engineers' work: load average {m['load_average_1min_before']:.1f} before, "
        f"{m['load_average_1min_after']:.1f} after (each row's own values in `bench/results/asr.json`). "
        "Wall-clock numbers are therefore pessimistic; CPU s per audio s (all threads) is the steadier "
        "measure: on a quiet machine the wall RTF approaches that divided by the thread count.",
        "",
        f"WER on the {len(r['clips'])} LibriVox clips of `pocketsphinx-testdata` (read English, "
        f"{r['wer'][0]['audio_s']:.0f} s), normalised ({r['normalisation']}); the baseline is plain "
        "faster-whisper with its defaults on the same weights, in the same run:",
        "",
        "| engine | model | WER | RTF (short clips) | CPU s per audio s |",
        "|---|---|---|---|---|",
    ]
    for row in r["wer"]:
        lines.append(
            f"| {row['engine']} | {row['model']} | {row['wer']:.3f} | {row['rtf_short_clips']:.2f} "
            f"| {row['cpu_per_audio_s']:.3f} |"
        )
    lf = r["long_file"]
    lines += [
        "",
        f"A {lf['minutes']:.1f}-minute file (the clips looped; WER over all its windows), one process each:",
        "",
        "| engine | model | WER | RTF | CPU s per audio s | load before/after | peak RSS (MB) |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in lf["runs"]:
        if "error" in row:
            lines.append(f"| {row['engine']} | {row['model']} | failed: {row['error']} | | | | |")
            continue
        lines.append(
            f"| {row['engine']} | {row['model']} | {row['wer']:.3f} | {row['rtf']:.3f} "
            f"| {row['cpu_per_audio_s']:.3f} | {row['load_before']:.1f}/{row['load_after']:.1f} "
            f"| {row['peak_rss_mb']:.0f} |"
        )
    hf = r["hour_file"]
    lines += [
        "",
        f"Peak RSS on a {hf['minutes']:.0f}-minute FLAC ({hf['flac_mb']:.0f} MB; {hf['speech_minutes']:g} "
        "minutes of speech split between its two ends, quiet room tone between), VAD on in both:",
        "",
        "| engine | model | peak RSS (MB) | wall (s) |",
        "|---|---|---|---|",
    ]
    for row in hf["runs"]:
        if "error" in row:
            lines.append(f"| {row['engine']} | {row['model']} | failed: {row['error']} | |")
            continue
        lines.append(f"| {row['engine']} | {row['model']} | {row['peak_rss_mb']:.0f} | {row['wall_s']:.1f} |")
    lines.append(END)
    replace_block(path, "\n".join(lines), BEGIN, END, heading="## Transcription (`make bench-asr`)")


if __name__ == "__main__":
    main()
