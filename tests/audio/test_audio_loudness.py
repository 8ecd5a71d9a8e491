"""Loudness normalisation reaches its target and never clips, offline and streamed."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from scipy.signal import resample_poly

from voxvault.audio import (
    StreamNormalizer,
    decode,
    integrated_loudness,
    limit_peaks,
    loudness_gain_db,
    normalize_loudness,
)

SR = 24_000
CEILING = 10 ** (-1.0 / 20)  # -1 dBFS


def _true_peak(x: np.ndarray) -> float:
    return float(np.abs(resample_poly(x.astype(np.float64), 4, 1)).max())


@pytest.fixture
def speech(speaker_clips) -> list[np.ndarray]:
    return [decode(p, max_bytes=10_000_000, max_seconds=60.0).samples for p in speaker_clips[:3]]


@pytest.mark.parametrize("target", [-23.0, -18.0, -14.0])
def test_real_speech_reaches_the_target_without_clipping(target, speech):
    for clip in speech:
        out = normalize_loudness(clip, SR, target_lufs=target, peak_dbfs=-1.0)
        assert out.dtype == np.float32 and out.shape == clip.shape
        assert integrated_loudness(out, SR) == pytest.approx(target, abs=0.5)
        assert np.abs(out).max() <= CEILING + 1e-6


def test_quiet_speech_is_raised_and_loud_speech_lowered(speech):
    clip = speech[0]
    for gain in (0.05, 3.0):  # -26 dB and +9.5 dB (the loud one clips as float, > 1.0)
        out = normalize_loudness(clip * gain, SR, target_lufs=-18.0)
        assert integrated_loudness(out, SR) == pytest.approx(-18.0, abs=0.5)
        assert np.abs(out).max() <= CEILING + 1e-6


def test_peaky_signal_is_limited_yet_reaches_the_target(tone):
    x = tone(220.0, 2.0, SR, amplitude=0.05)
    x[::2400] = 0.95  # sharp clicks ten times a second: gain alone would push them far past 0 dBFS
    out = normalize_loudness(x, SR, target_lufs=-16.0, peak_dbfs=-1.0)
    assert integrated_loudness(out, SR) == pytest.approx(-16.0, abs=0.5)
    assert np.abs(out).max() <= CEILING + 1e-6
    assert _true_peak(out) <= CEILING * 1.05  # inter-sample peaks are tamed too (4x oversampled)


def test_limiter_leaves_quiet_audio_untouched(tone):
    x = tone(440.0, 0.5, SR, amplitude=0.3)
    assert np.allclose(limit_peaks(x, SR), x, atol=1e-7)


def test_limiter_catches_full_scale_square_wave():
    x = np.sign(np.sin(2 * np.pi * 100 * np.arange(SR) / SR)).astype(np.float32)
    out = limit_peaks(x, SR, peak_dbfs=-3.0)
    assert np.abs(out).max() <= 10 ** (-3 / 20) + 1e-6
    assert np.abs(out).max() > 0.5  # limited, not muted


def test_limiter_turns_down_instead_of_clipping(tone, dominant_frequency):
    x = tone(440.0, 1.0, SR, amplitude=1.0)
    out = limit_peaks(x, SR, peak_dbfs=-6.0)
    steady = out[SR // 4 : 3 * SR // 4].astype(np.float64)
    spectrum = np.abs(np.fft.rfft(steady * np.hanning(steady.size)))

    def bin_of(freq: float) -> int:
        return round(freq * steady.size / SR)

    assert np.abs(out).max() <= 10 ** (-6 / 20) + 1e-6
    assert np.abs(out).max() > 0.45
    # A hard clipper would put the third harmonic ~-20 dB under the fundamental; a gain change does not.
    assert spectrum[bin_of(1320.0)] < 0.01 * spectrum[bin_of(440.0)]


def test_limiter_only_touches_audio_near_the_peak(tone):
    x = tone(440.0, 1.0, SR, amplitude=0.2)
    burst = slice(SR // 2, SR // 2 + SR // 10)
    x[burst] *= 4.5  # 0.9 peak
    out = limit_peaks(x, SR, peak_dbfs=-6.0)
    margin = SR * 30 // 1000  # look-ahead and release are well under 30 ms
    assert np.array_equal(out[: burst.start - margin], x[: burst.start - margin])
    assert np.array_equal(out[burst.stop + margin :], x[burst.stop + margin :])
    assert np.abs(out[burst]).max() <= 10 ** (-6 / 20) + 1e-6


def test_short_clip_under_one_gating_block(speech):
    clip = speech[0][SR : SR + SR // 5]  # 200 ms of speech, shorter than the 400 ms block
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = normalize_loudness(clip, SR, target_lufs=-20.0)
        assert integrated_loudness(out, SR) == pytest.approx(-20.0, abs=0.5)
    assert np.abs(out).max() <= CEILING + 1e-6


@pytest.mark.parametrize("n", [0, 1, 5, 100, SR])
def test_silence_and_tiny_inputs_pass_through_quietly(n):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no RuntimeWarning spam from log10(0)
        out = normalize_loudness(np.zeros(n, np.float32), SR)
        assert integrated_loudness(np.zeros(n), SR) == -math.inf
    assert out.shape == (n,) and not np.any(out)


def test_noise_floor_is_not_blown_up_to_speech_level():
    rng = np.random.default_rng(0)
    hiss = (rng.standard_normal(SR) * 10 ** (-60 / 20)).astype(np.float32)  # about -57 LUFS
    out = normalize_loudness(hiss, SR, target_lufs=-18.0, max_gain_db=30.0)
    assert integrated_loudness(out, SR) == pytest.approx(integrated_loudness(hiss, SR) + 30.0, abs=0.1)


def test_stream_with_fixed_gain_matches_offline_limiter(speech):
    clip = speech[0]
    gain_db = loudness_gain_db(clip, SR, target_lufs=-12.0)  # loud enough that the limiter works
    normalizer = StreamNormalizer(SR, gain_db=gain_db)
    sizes = [1000, 4321, 240, 9000]
    parts, start, i = [], 0, 0
    while start < clip.size:
        parts.append(normalizer.push(clip[start : start + sizes[i % 4]]))
        start += sizes[i % 4]
        i += 1
    parts.append(normalizer.flush())
    streamed = np.concatenate(parts)

    offline = limit_peaks(clip * 10 ** (gain_db / 20), SR)
    assert streamed.shape == clip.shape
    assert np.max(np.abs(streamed - offline)) < 1e-5
    assert np.abs(streamed).max() <= CEILING + 1e-6
    assert normalizer.latency_samples < 0.03 * SR


def test_stream_measures_its_gain_on_the_first_second(tone):
    rng = np.random.default_rng(3)
    steady = (tone(300.0, 3.0, SR, amplitude=0.02) + rng.standard_normal(3 * SR) * 0.005).astype(np.float32)
    normalizer = StreamNormalizer(SR, target_lufs=-18.0)
    first = normalizer.push(steady[: SR // 2])
    assert first.size == 0 and normalizer.gain_db is None  # still measuring
    rest = [normalizer.push(steady[i : i + SR // 2]) for i in range(SR // 2, steady.size, SR // 2)]
    out = np.concatenate([first, *rest, normalizer.flush()])
    assert normalizer.gain_db is not None
    assert out.size == steady.size
    assert integrated_loudness(out, SR) == pytest.approx(-18.0, abs=0.5)
    assert np.abs(out).max() <= CEILING + 1e-6


def test_silent_stream_flushes_with_unity_gain():
    normalizer = StreamNormalizer(SR)
    assert normalizer.push(np.zeros(SR // 10, np.float32)).size == 0
    out = normalizer.flush()
    assert normalizer.gain_db == 0.0
    assert out.size == SR // 10 and not np.any(out)
