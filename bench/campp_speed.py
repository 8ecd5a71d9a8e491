"""CAM++ load and per-call time, GE2E beside it as the baseline: ``python bench/campp_speed.py``.

Loads each encoder once (cold, in this process), then embeds every test speaker clip (4-7 s, 24 kHz)
``--repeats`` times through ``embed`` and once through CAM++'s ``embed_torch`` with a backward pass (the
cost as an objective). Writes ``bench/results/campp_speed.json`` with the machine's load average.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np

from voxvault.audio.io import decode
from voxvault.cloning.evaluation import speaker_clips

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared/testdata/speakers")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=ROOT / "bench/results/campp_speed.json")
    args = parser.parse_args()
    clips = [decode(p, max_bytes=50_000_000, max_seconds=120.0) for p in speaker_clips(args.data)]
    load_before = os.getloadavg()
    import torch

    from voxvault.engines.campp import CamppEncoder
    from voxvault.engines.ge2e import GE2EEncoder

    report: dict[str, object] = {
        "machine": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
    }
    audio_seconds = float(np.mean([len(c.samples) / c.sample_rate for c in clips]))
    for cls in (CamppEncoder, GE2EEncoder):
        t0 = time.perf_counter()
        encoder = cls()
        load = time.perf_counter() - t0
        encoder.embed(clips[0].samples, clips[0].sample_rate)  # first call: lazy buffers, allocator
        times = []
        for _ in range(args.repeats):
            for clip in clips:
                t0 = time.perf_counter()
                encoder.embed(clip.samples, clip.sample_rate)
                times.append(time.perf_counter() - t0)
        entry: dict[str, object] = {
            "load_s": round(load, 3),
            "embed_s_median": round(float(np.median(times)), 4),
            "embed_s_p90": round(float(np.percentile(times, 90)), 4),
        }
        if isinstance(encoder, CamppEncoder):
            grads = []
            for clip in clips:
                wave = torch.from_numpy(clip.samples.copy()).requires_grad_(True)
                t0 = time.perf_counter()
                encoder.embed_torch(wave, clip.sample_rate).sum().backward()
                grads.append(time.perf_counter() - t0)
            entry["embed_torch_with_backward_s_median"] = round(float(np.median(grads)), 4)
        report[encoder.name] = entry
    report["clip_seconds_mean"] = round(audio_seconds, 2)
    report["torch_threads"] = torch.get_num_threads()
    report["load_average_before_after"] = [round(x, 2) for x in (*load_before, *os.getloadavg())]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
