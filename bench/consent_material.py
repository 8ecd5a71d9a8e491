"""Material for the consent attack benchmark (issue 25): victims, the project's own clones, espeak-ng.

- victims: the six real speakers in ../shared/testdata/speakers (one 4-7 s clip each, 16 kHz);
- instant clone: a victim's clip turned into a voice the way enrollment builds one (GE2E embedding,
  ``derive_style``, the instant decoder step at the speaker's pitch), outside any consent flow, speaking
  through the same pipeline *without* the watermark (an attacker strips it or a patched server skips it);
- espeak-ng: the formant synthesiser reading the text (another synthetic class);
- presets: the engine's own voices reading unmarked (stand-ins for live speakers: genuine readings).
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from voxvault.audio.io import decode, resample
from voxvault.cloning.pitch import median_f0
from voxvault.engines.base import AdaptedWeights
from voxvault.engines.speaker import unit
from voxvault.synthesis import VoiceStyle

ROOT = Path(__file__).resolve().parents[1]
SPEAKERS = ROOT.parent / "shared" / "testdata" / "speakers"
RATE = 16_000
SENTENCES = (
    "The quick brown fox jumps over the lazy dog near the river bank.",
    "Every morning I walk to the market and buy fresh bread for breakfast.",
    "She said the weather would be cold and windy for the rest of the week.",
)


def victims() -> dict[str, np.ndarray]:
    return {
        p.stem[3:]: decode(p, max_bytes=10**8, max_seconds=60, target_sr=RATE).samples
        for p in sorted(SPEAKERS.glob("en_*.wav"))
    }


class Voices:
    """Speaks text as a preset, an instant clone of a clip, or espeak-ng: 16 kHz float32, never marked."""

    def __init__(self, vv: Any) -> None:
        self.vv = vv
        self._clones: dict[str, VoiceStyle] = {}

    def speak(self, text: str, style: VoiceStyle) -> np.ndarray:
        rendered = self.vv.pipeline.render(self.vv.pipeline.prepare(text, style, fmt="pcm"))
        return resample(rendered.samples, rendered.sample_rate, RATE)

    def preset(self, text: str, name: str) -> np.ndarray:
        return self.speak(text, self.vv.catalog.resolve(name))

    def clone_of(self, name: str, clip: np.ndarray) -> VoiceStyle:
        """The instant clone enrollment would make from ``clip`` (with the decoder step where it applies)."""
        if name not in self._clones:
            vv = self.vv
            embedding = unit(vv.engines.speaker().embed(clip, RATE))
            style = vv.conditioner.derive_style(embedding, clip).style
            adapted = None
            decoder = vv.instant_decoder
            if decoder is not None:
                deltas = decoder.deltas(style, embedding, median_f0(clip, RATE))
                adapted = AdaptedWeights(name=f"clone-{name}", deltas=deltas)
            self._clones[name] = VoiceStyle(voice_id=f"clone-{name}", style=style, adapted=adapted)
        return self._clones[name]

    def clone(self, text: str, name: str, clip: np.ndarray) -> np.ndarray:
        return self.speak(text, self.clone_of(name, clip))


def espeak(text: str, voice: str = "en-us") -> np.ndarray:
    """espeak-ng (the Debian package) reading ``text``; raises when it is not installed."""
    exe = shutil.which("espeak-ng")
    if exe is None:
        raise RuntimeError("espeak-ng is not installed (apt-get install espeak-ng)")
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "out.wav"
        subprocess.run([exe, "-v", voice, "-s", "160", "-w", str(out), text], check=True, timeout=60)
        return decode(out, max_bytes=10**8, max_seconds=120, target_sr=RATE).samples
