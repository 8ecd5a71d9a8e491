"""The synthetic-speech detector (voices/spoof.py): shipped weights, pinned; real speech is not refused.

The detector's rates on speakers it never saw are measured by bench/train_spoof_detector.py and written in
docs/consent.md; these tests hold what a user would notice: the shipped file is the one trained and
checked, real people (the six clips of ../shared/testdata, which were among its training speakers) and
their MP3/Opus copies are not called synthetic, and a file with too little speech is not judged. The
engine's own speech being refused is tested through enrollment in tests/api/test_consent_attacks.py.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from voxvault.audio.io import decode, encode
from voxvault.voices.spoof import RATE, WEIGHTS, WEIGHTS_SHA256, SpoofDetector, shipped_detector

SPEAKERS = Path(__file__).resolve().parents[2].parent / "shared" / "testdata" / "speakers"
needs_speakers = pytest.mark.skipif(
    not SPEAKERS.is_dir(), reason=f"real speech clips not found at {SPEAKERS}"
)


def test_the_shipped_weights_are_small_and_pinned() -> None:
    assert WEIGHTS.stat().st_size < 64 * 1024
    assert len(WEIGHTS_SHA256) == 64
    detector = shipped_detector()
    assert 0.0 < detector.threshold < 1.0


def test_weights_that_are_not_the_pinned_ones_are_refused_on_load(tmp_path: Path) -> None:
    changed = tmp_path / "spoof_detector.npz"
    changed.write_bytes(WEIGHTS.read_bytes() + b"\0")
    with pytest.raises(RuntimeError, match="is not the pinned"):
        SpoofDetector.load(changed)


@needs_speakers
@pytest.mark.parametrize("fmt", ["wav", "mp3", "opus"])
def test_real_speech_is_not_called_synthetic_even_re_encoded(fmt: str) -> None:
    detector = shipped_detector()
    for path in sorted(SPEAKERS.glob("en_*.wav")):
        clip = decode(path, max_bytes=10**8, max_seconds=60, target_sr=RATE).samples
        copy = decode(encode(clip, RATE, fmt), max_bytes=10**8, max_seconds=60, target_sr=RATE).samples
        judged = detector.judge("recording", copy)
        assert judged.score is not None and not judged.synthetic, (path.name, fmt, judged)


def test_too_little_speech_is_not_judged() -> None:
    rng = np.random.default_rng(0)
    blip = (0.1 * rng.standard_normal(RATE // 4)).astype(np.float32)  # a quarter second
    judged = shipped_detector().judge("recording", blip)
    assert judged.score is None and not judged.synthetic
    assert shipped_detector().judge("recording", np.zeros(RATE * 3, dtype=np.float32)).score is None
