"""Quality gates on real speech and on what is not speech: each refusal names the file and the measure."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from voxvault.audio.io import decode, resample
from voxvault.errors import VoxError
from voxvault.voices.quality import (
    AudioMeasures,
    QualityPolicy,
    check_file,
    check_total_speech,
    estimate_snr_db,
    measure,
)

SPEAKERS = Path(__file__).resolve().parents[2].parent / "shared" / "testdata" / "speakers"
needs_clips = pytest.mark.skipif(not SPEAKERS.is_dir(), reason=f"real speech clips not found at {SPEAKERS}")
POLICY = QualityPolicy()


def clip16k(name: str) -> np.ndarray:
    return decode(SPEAKERS / f"en_{name}.wav", max_bytes=10**8, max_seconds=60, target_sr=16_000).samples


@pytest.fixture(scope="module")
def vad(vv: Any) -> Any:
    return vv.engines.vad()


def refusal(m: AudioMeasures, **kw: Any) -> VoxError:
    with pytest.raises(VoxError) as info:
        check_file(m, POLICY, **kw)
    return info.value


@needs_clips
@pytest.mark.parametrize("name", ["andrew", "ashley", "brandon", "elizabeth", "james", "karen"])
def test_real_clips_pass_and_measure_plausibly(vad: Any, name: str) -> None:
    m = measure("clip.wav", clip16k(name), 24_000, vad)
    check_file(m, POLICY)
    assert 4.0 < m.speech_s <= m.duration_s
    assert m.snr_db >= 20
    assert m.clipped_fraction < 0.002


@needs_clips
def test_added_noise_lowers_the_estimate_by_about_its_level(vad: Any) -> None:
    clean = clip16k("ashley")
    rms = float(np.sqrt(np.mean(clean**2)))
    rng = np.random.default_rng(0)
    estimates = {}
    for snr in (20, 10, 0):
        noisy = clean + rng.normal(0, rms / 10 ** (snr / 20), clean.size).astype(np.float32)
        estimates[snr] = measure("x", noisy, 24_000, vad).snr_db
    assert abs(estimates[20] - 20) < 3 and abs(estimates[10] - 10) < 3 and estimates[0] < 3
    error = refusal(
        measure("noisy.wav", clean + rng.normal(0, rms / 10**0.5, clean.size).astype(np.float32), 24_000, vad)
    )
    assert (error.code, error.details["measure"], error.details["file"]) == ("low_snr", "snr_db", "noisy.wav")


@pytest.mark.parametrize(
    "audio",
    [
        np.zeros(16_000 * 12, dtype=np.float32),
        np.random.default_rng(3).normal(0, 0.1, 16_000 * 12).astype(np.float32),
        (0.3 * np.sin(2 * np.pi * 50 * np.arange(16_000 * 12) / 16_000)).astype(np.float32),
    ],
    ids=["silence", "white-noise", "mains-hum"],
)
def test_silence_and_noise_hold_no_speech(vad: Any, audio: np.ndarray) -> None:
    m = measure("samples[0] (x.wav)", audio, 48_000, vad)
    error = refusal(m)
    assert error.code == "no_speech" and error.details["measure"] == "speech_s"
    assert error.details["file"] == "samples[0] (x.wav)"


@needs_clips
def test_clipping_and_low_sample_rate_are_named(vad: Any) -> None:
    clean = clip16k("karen")
    error = refusal(measure("loud.wav", np.clip(clean * 10, -1, 1), 24_000, vad))
    assert (error.code, error.details["measure"]) == ("clipping", "clipped_fraction")
    assert error.details["value"] > error.details["threshold"]
    narrow = resample(resample(clean, 16_000, 8_000), 8_000, 16_000)
    error = refusal(measure("phone.wav", narrow, 8_000, vad))
    assert (error.code, error.details["measure"], error.details["value"]) == (
        "low_sample_rate",
        "sample_rate",
        8000,
    )


@needs_clips
def test_total_speech_is_summed_across_files(vad: Any) -> None:
    a = measure("samples[0] (a.wav)", clip16k("andrew"), 24_000, vad)
    b = measure("samples[1] (b.wav)", clip16k("brandon"), 24_000, vad)
    assert check_total_speech([a, b], POLICY) == pytest.approx(a.speech_s + b.speech_s)
    with pytest.raises(VoxError) as info:
        check_total_speech([a], POLICY)
    assert info.value.code == "too_little_speech" and "samples[0] (a.wav)" in info.value.details["file"]
    error = refusal(a, min_speech_s=10.0)
    assert error.code == "too_little_speech"


def test_snr_over_digital_silence_is_finite() -> None:
    from voxvault.engines.base import SpeechSegment

    tone = np.zeros(16_000 * 2, dtype=np.float32)
    tone[8_000:24_000] = 0.3 * np.sin(np.arange(16_000) / 5)
    assert estimate_snr_db(tone, [SpeechSegment(0.5, 1.5)]) > 80  # floor: -100 dBFS, not -inf
    assert estimate_snr_db(tone, []) == 0.0
