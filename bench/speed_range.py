"""Is speech at OpenAI's speeds (0.25x-4x) intelligible? Whisper's word error rate per speed.

"voxvault speed" is what the pipeline renders for ``speed`` (ENGINE_SPEED_RANGE decides how much of it
the model speaks itself and how much FFmpeg's ``atempo`` stretches, ``audio/tempo.py``); "model at 1x,
then atempo" stretches the model's 1x speech by the whole factor. With the model's own range (0.5, 2.0)
the two differ between 0.5 and 2; that comparison is what set ENGINE_SPEED_RANGE to (1.0, 1.0).
bench/results/speed_range.json holds the runs; docs/clients.md the table.

    python bench/speed_range.py --out bench/results/speed_range.json [--speeds ...] [--stretch ...]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from voxvault.audio.tempo import change_tempo  # noqa: E402
from voxvault.config import Settings  # noqa: E402
from voxvault.engines.asr import word_error_rate  # noqa: E402
from voxvault.service import VoxVault  # noqa: E402
from voxvault.synthesis.pipeline import VoiceStyle  # noqa: E402

SENTENCES = [
    "The committee will meet again on Thursday to review the budget.",
    "Please leave the parcel with the neighbour if nobody answers the door.",
    "Rain is expected in the north later this afternoon, clearing by evening.",
]
VOICES = ["kumo", "alpha"]
Make = Callable[[str, VoiceStyle], np.ndarray]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=Path, default=ROOT / "bench/results/speed_range.json")
    parser.add_argument("--speeds", type=float, nargs="*", default=[0.25, 0.5, 1.0, 2.0, 3.0, 4.0])
    parser.add_argument("--stretch", type=float, nargs="*", default=[2.0], help="speeds made by atempo alone")
    args = parser.parse_args()
    vv = VoxVault(Settings())
    pipeline = vv.pipeline
    asr = vv.engines.transcriber()
    sr = pipeline.tts.sample_rate
    rows = []

    def measure(label: str, speed: float, make: Make) -> None:
        wers, secs = [], []
        for voice in VOICES:
            style = vv.catalog.resolve(voice)
            for text in SENTENCES:
                audio = make(text, style)
                wers.append(word_error_rate(text, asr.transcribe(audio, sr)))
                secs.append(len(audio) / sr)
        rows.append(
            {
                "case": label,
                "speed": speed,
                "wer": round(float(np.mean(wers)), 4),
                "audio_s": round(sum(secs), 2),
            }
        )
        print(rows[-1], flush=True)

    def via_pipeline(speed: float) -> Make:
        def make(text: str, style: VoiceStyle) -> np.ndarray:
            prepared = pipeline.prepare(text, style, fmt="pcm", speed=speed)
            return np.concatenate(list(pipeline.raw_chunks(prepared)))

        return make

    def stretched_after(speed: float) -> Make:
        def make(text: str, style: VoiceStyle) -> np.ndarray:
            prepared = pipeline.prepare(text, style, fmt="pcm", speed=1.0)
            return change_tempo(np.concatenate(list(pipeline.raw_chunks(prepared))), sr, speed)

        return make

    t0 = time.perf_counter()
    for speed in args.speeds:
        measure("voxvault speed", speed, via_pipeline(speed))
    for speed in args.stretch:
        measure("model at 1x, then atempo", speed, stretched_after(speed))
    result = {
        "machine": f"{platform.machine()} {os.cpu_count()} CPUs",
        "load_1min": os.getloadavg()[0],
        "asr": vv.settings.asr_model,
        "voices": VOICES,
        "sentences": len(SENTENCES),
        "rows": rows,
        "seconds": round(time.perf_counter() - t0, 1),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
