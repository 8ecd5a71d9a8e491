"""Judge saved clone audio again: ``python bench/clone_rejudge.py --audio DIR --data SPEAKERS [--data ...]``.

``DIR`` is what ``voxvault eval clone --audio-dir DIR`` wrote (``DIR/<speaker>/<method>.wav``). Every
speaker clip in the ``--data`` folders is split as the eval splits it (60 % enrolment, 40 % held out); each
saved clone is scored by GE2E and CAM++ against its speaker's held-out audio, accepted or not at the
judges' thresholds, and compared with every speaker of the ``--data`` folders. So clones made in a run over
a few speakers (fine-tuning is slow) are still compared with the whole set.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from voxvault.audio.io import decode
from voxvault.cloning.evaluation import METHODS, Target, speaker_clips, summarise_judges, verdict
from voxvault.cloning.verification import THRESHOLDS
from voxvault.engines.base import SpeakerEncoder
from voxvault.engines.speaker import unit

ENROL_SHARE = 0.6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--audio", type=Path, required=True)
    parser.add_argument("--data", type=Path, action="append", required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    from voxvault.engines.campp import CamppEncoder
    from voxvault.engines.ge2e import GE2EEncoder

    judges: dict[str, SpeakerEncoder] = {j.name: j for j in (CamppEncoder(), GE2EEncoder())}
    enrolments: dict[str, dict[str, Any]] = {name: {} for name in judges}
    speaker_set: dict[str, dict[str, Any]] = {name: {} for name in judges}
    for folder in args.data:
        for path in speaker_clips(folder):
            clip = decode(path, max_bytes=50_000_000, max_seconds=120.0)
            cut = int(len(clip.samples) * ENROL_SHARE)
            for name, judge in judges.items():
                enrolments[name][path.stem] = unit(judge.embed(clip.samples[:cut], clip.sample_rate))
                speaker_set[name][path.stem] = unit(judge.embed(clip.samples[cut:], clip.sample_rate))
    rows = []
    for folder in sorted(p for p in args.audio.iterdir() if p.is_dir()):
        speaker = folder.name
        target = Target(speaker, {j: speaker_set[j][speaker] for j in judges}, speaker_set)
        row: dict[str, Any] = {
            "speaker": speaker,
            "own": {j: verdict(j, enrolments[j][speaker], target, THRESHOLDS.get(j)) for j in judges},
        }
        for method in METHODS:
            wav = folder / f"{method}.wav"
            if wav.is_file():
                audio = decode(wav, max_bytes=50_000_000, max_seconds=120.0)
                row[method] = {
                    "judges": {
                        j: verdict(
                            j, unit(e.embed(audio.samples, audio.sample_rate)), target, THRESHOLDS.get(j)
                        )
                        for j, e in judges.items()
                    }
                }
        rows.append(row)
    summary = {m: summarise_judges([r for r in rows if m in r], m) for m in (*METHODS, "own")}
    report = {
        "speakers": rows,
        "summary": summary,
        "speaker_set": sorted(speaker_set["ge2e"]),
        "thresholds": {j: THRESHOLDS.get(j) for j in judges},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
