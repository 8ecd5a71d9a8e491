"""Encoding whole files: every output format round-trips through decode with its rate and pitch."""

from __future__ import annotations

import struct

import numpy as np
import pytest

from voxvault.audio import CONTENT_TYPES, FILE_EXTENSIONS, FORMATS, decode, encode, resample
from voxvault.errors import VoxError

LIMITS = {"max_bytes": 10_000_000, "max_seconds": 60.0}
SR = 24_000


def _opus_head_rate(data: bytes) -> int:
    """The input sample rate recorded in the OpusHead packet (Opus itself always decodes at 48 kHz)."""
    at = data.index(b"OpusHead")
    return int(struct.unpack_from("<I", data, at + 12)[0])


def test_format_tables_agree():
    assert (
        set(FORMATS)
        == set(CONTENT_TYPES)
        == set(FILE_EXTENSIONS)
        == {
            "mp3",
            "opus",
            "aac",
            "flac",
            "wav",
            "pcm",
            "ulaw",
            "alaw",
        }
    )
    assert CONTENT_TYPES["mp3"] == "audio/mpeg"
    assert CONTENT_TYPES["opus"] == "audio/ogg"


@pytest.mark.parametrize("fmt", ["mp3", "opus", "aac", "flac", "wav"])
@pytest.mark.parametrize("out_rate", [None, 16_000])
def test_round_trip_keeps_duration_rate_and_pitch(fmt, out_rate, tone, dominant_frequency):
    data = encode(tone(440.0, 1.0, SR), SR, fmt, out_sample_rate=out_rate)
    expected_rate = out_rate or SR

    audio = decode(data, **LIMITS)

    if fmt == "opus":
        assert audio.source_sample_rate == 48_000  # the Opus decoder always runs at 48 kHz
        assert _opus_head_rate(data) == expected_rate
    else:
        assert audio.source_sample_rate == expected_rate
    tolerance = 2048 / expected_rate + 0.01 if fmt in ("mp3", "aac") else 0.01  # codec priming/padding
    assert audio.duration == pytest.approx(1.0, abs=tolerance)
    assert dominant_frequency(audio.samples, audio.sample_rate) == pytest.approx(440.0, abs=2.0)


def test_pcm_is_headerless_s16le_at_the_requested_rate(tone, dominant_frequency):
    x = tone(440.0, 1.0, SR)
    data = encode(x, SR, "pcm", out_sample_rate=16_000)
    samples = np.frombuffer(data, dtype="<i2").astype(np.float32) / 32768.0
    assert samples.size == 16_000
    assert dominant_frequency(samples, 16_000) == pytest.approx(440.0, abs=2.0)
    assert np.abs(samples).max() == pytest.approx(0.5, abs=0.01)


def test_wav_header_carries_exact_sizes(tone):
    data = encode(tone(440.0, 0.25, SR), SR, "wav")
    assert data[:4] == b"RIFF" and data[8:12] == b"WAVE"
    assert struct.unpack_from("<I", data, 4)[0] == len(data) - 8
    assert struct.unpack_from("<I", data, 40)[0] == len(data) - 44 == 0.25 * SR * 2
    assert struct.unpack_from("<HHI", data, 20) == (1, 1, SR)


def test_lossless_formats_are_bit_exact_at_16_bit(tone):
    x = np.round(tone(440.0, 0.5, SR) * 32767) / 32767
    for fmt in ("wav", "flac"):
        audio = decode(encode(x, SR, fmt), **LIMITS)
        assert np.max(np.abs(audio.samples - x)) < 1.5 / 32768


def test_out_of_range_samples_are_clipped_not_wrapped():
    x = np.array([1.7, -3.0, np.nan, np.inf, 0.25] * 100, dtype=np.float32)
    pcm = np.frombuffer(encode(x, SR, "pcm"), dtype="<i2")
    assert list(pcm[:5]) == [32767, -32767, 0, 32767, round(0.25 * 32767)]


@pytest.mark.parametrize(
    ("fmt", "requested", "legal"),
    [("opus", 22_050, 24_000), ("opus", 44_100, 48_000), ("opus", 11_025, 12_000), ("mp3", 96_000, 48_000)],
)
def test_rates_a_codec_cannot_carry_go_to_the_nearest_legal_one(fmt, requested, legal, tone):
    data = encode(tone(440.0, 0.3, SR), SR, fmt, out_sample_rate=requested)
    if fmt == "opus":
        assert _opus_head_rate(data) == legal
    else:
        assert decode(data, **LIMITS).source_sample_rate == legal


def test_bitrate_changes_the_size(tone):
    rng = np.random.default_rng(0)
    noise = (rng.standard_normal(SR) * 0.1).astype(np.float32)
    for fmt in ("mp3", "opus", "aac"):
        small = encode(noise, SR, fmt, bitrate=16_000)
        large = encode(noise, SR, fmt, bitrate=96_000)
        assert len(large) > 2 * len(small), fmt


def test_unknown_format_and_bad_parameters_are_refused(tone):
    x = tone()
    cases = [
        ({"fmt": "ogg"}, "unsupported_format"),
        ({"fmt": "MP3"}, "unsupported_format"),
        ({"fmt": "mp3", "out_sample_rate": 1_000}, "invalid_sample_rate"),
        ({"fmt": "mp3", "bitrate": 10}, "invalid_bitrate"),
    ]
    for kwargs, code in cases:
        with pytest.raises(VoxError) as info:
            encode(x, SR, **kwargs)
        assert info.value.code == code
        assert info.value.status == 400


def test_empty_audio_still_makes_a_valid_header():
    empty = np.zeros(0, np.float32)
    assert encode(empty, SR, "pcm") == b""
    assert len(encode(empty, SR, "wav")) == 44
    for fmt in ("mp3", "opus", "aac", "flac"):
        assert isinstance(encode(empty, SR, fmt), bytes)


def test_resample_keeps_pitch_and_length(tone, dominant_frequency):
    x = tone(1000.0, 1.0, 24_000)
    y = resample(x, 24_000, 16_000)
    assert y.dtype == np.float32 and y.size == 16_000
    assert dominant_frequency(y, 16_000) == pytest.approx(1000.0, abs=2.0)
    assert resample(x, 24_000, 24_000) is not x
