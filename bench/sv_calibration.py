"""Equal-error-rate thresholds of the clone evaluation's judges (GE2E, CAM++) on real speech only.

``python bench/sv_calibration.py --data ../shared/testdata/speakers --data DIR_OF_UNSEEN``: every clip is cut
into its halves and into the eval's 60 % enrolment and 40 % held-out parts; same-speaker pairs are a clip's
two halves and its enrolment and held-out part, different-speaker pairs the same parts of two clips (both
orders). Writes ``bench/results/sv_calibration.json``; ``eval/verification.THRESHOLDS`` is copied from it.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np

from voxvault.audio.io import decode
from voxvault.cloning.evaluation import speaker_clips
from voxvault.cloning.verification import equal_error_rate
from voxvault.engines.base import SpeakerEncoder

ROOT = Path(__file__).resolve().parents[1]
#: (first piece, second piece) as shares of the clip: a clip's halves, and the eval's enrolment vs held-out
SPLITS = (((0.0, 0.5), (0.5, 1.0)), ((0.0, 0.6), (0.6, 1.0)))


def calibrate(encoder: SpeakerEncoder, clips: dict[str, tuple[np.ndarray, int]]) -> dict[str, object]:
    t0 = time.perf_counter()
    pieces: dict[tuple[str, int, int], np.ndarray] = {}
    for name, (samples, rate) in clips.items():
        for s, split in enumerate(SPLITS):
            for p, (lo, hi) in enumerate(split):
                part = samples[int(lo * len(samples)) : int(hi * len(samples))]
                pieces[(name, s, p)] = encoder.embed(part, rate)
    names = sorted(clips)
    same: list[float] = []
    different: list[float] = []
    for s in range(len(SPLITS)):
        for a in names:
            for b in names:
                score = float(pieces[(a, s, 0)] @ pieces[(b, s, 1)])
                (same if a == b else different).append(score)
    result = equal_error_rate(same, different)
    return {
        **asdict(result),
        "same_mean": round(float(np.mean(same)), 4),
        "same_range": [round(min(same), 4), round(max(same), 4)],
        "different_mean": round(float(np.mean(different)), 4),
        "different_range": [round(min(different), 4), round(max(different), 4)],
        "seconds": round(time.perf_counter() - t0, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", type=Path, action="append", help="folder of real clips, one speaker each")
    parser.add_argument("--out", type=Path, default=ROOT / "bench/results/sv_calibration.json")
    args = parser.parse_args()
    folders = args.data or [ROOT.parent / "shared/testdata/speakers"]
    clips: dict[str, tuple[np.ndarray, int]] = {}
    for folder in folders:
        for path in speaker_clips(folder):
            audio = decode(path, max_bytes=50_000_000, max_seconds=120.0)
            clips[path.stem] = (audio.samples, audio.sample_rate)
    from voxvault.engines.campp import CamppEncoder
    from voxvault.engines.ge2e import GE2EEncoder

    judges: list[SpeakerEncoder] = [CamppEncoder(), GE2EEncoder()]
    report = {
        "speakers": sorted(clips),
        "splits": [list(map(list, s)) for s in SPLITS],
        "judges": {judge.name: calibrate(judge, clips) for judge in judges},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report["judges"], indent=2))


if __name__ == "__main__":
    main()
