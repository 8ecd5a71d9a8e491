"""Decoding in blocks (long uploads for transcription): same samples as a whole decode, same refusals."""

from __future__ import annotations

import io
import time
import wave

import numpy as np
import pytest

from voxvault.audio.io import decode, iter_decode
from voxvault.errors import VoxError

LIMITS = {"max_bytes": 50_000_000, "max_seconds": 600.0}


def _wav(channels: int, seconds: float, sr: int = 8_000) -> bytes:
    t = np.arange(int(seconds * sr)) / sr
    mono = (0.3 * np.sin(2 * np.pi * 300 * t) * 32767).astype("<i2")
    frames = np.repeat(mono[:, None], channels, axis=1)
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(2)
        w.setframerate(sr)
        w.writeframes(frames.tobytes())
    return buffer.getvalue()


def test_blocks_join_to_the_whole_decode(make_container, tone) -> None:
    data = make_container("flac", "flac", [tone(440.0, 7.3, 44_100)], 44_100)

    blocks = list(iter_decode(data, target_sr=16_000, block_seconds=2.0, **LIMITS))
    whole = decode(data, target_sr=16_000, **LIMITS)

    assert [b.size for b in blocks[:-1]] == [32_000] * (len(blocks) - 1)  # 2 s each, the rest last
    assert 0 < blocks[-1].size <= 32_000
    assert np.array_equal(np.concatenate(blocks), whole.samples)


def test_never_decodes_past_the_limit_and_refuses_too_long() -> None:
    data = _wav(1, 12.0)
    gen = iter_decode(data, max_bytes=10_000_000, max_seconds=5.0, target_sr=16_000, block_seconds=2.0)
    got = [next(gen), next(gen)]  # the first blocks arrive before the limit is reached
    assert all(b.size == 32_000 for b in got)
    with pytest.raises(VoxError) as info:
        list(gen)
    assert (info.value.code, info.value.status) == ("audio_too_long", 413)


def test_refuses_many_channels_before_decoding() -> None:
    data = _wav(12, 1.0)
    with pytest.raises(VoxError) as info:
        next(iter_decode(data, target_sr=16_000, max_channels=8, **LIMITS))
    assert (info.value.code, info.value.status) == ("too_many_channels", 422)
    assert info.value.details["channels"] == 12
    assert sum(b.size for b in iter_decode(data, target_sr=16_000, **LIMITS)) == 16_000  # no limit: downmixed


@pytest.mark.parametrize(
    ("data", "code", "status"),
    [
        (b"", "invalid_audio", 422),
        (b"this is plain text, not audio at all" * 10, "invalid_audio", 415),
        (b"\x00" * 60_000_000, "upload_too_large", 413),
    ],
)
def test_refuses_what_decode_refuses(data: bytes, code: str, status: int) -> None:
    with pytest.raises(VoxError) as info:
        next(iter_decode(data, target_sr=16_000, **LIMITS))
    assert (info.value.code, info.value.status) == (code, status)


def test_timeout_counts_decoding_not_the_consumer() -> None:
    data = _wav(1, 6.0)
    blocks = 0
    for _ in iter_decode(data, target_sr=16_000, block_seconds=1.0, timeout_s=0.5, **LIMITS):
        blocks += 1
        time.sleep(0.2)  # the consumer (a model) is slow; the decode budget is not spent on it
    assert blocks == 6
    with pytest.raises(VoxError) as info:
        list(iter_decode(data, target_sr=16_000, timeout_s=0.0, **LIMITS))
    assert info.value.code == "decode_timeout"
