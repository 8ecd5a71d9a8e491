"""Streaming encoder: chunks concatenate into a valid file, and audio starts flowing at once."""

from __future__ import annotations

import struct

import numpy as np
import pytest

from voxvault.audio import FORMATS, StreamEncoder, decode
from voxvault.errors import VoxError

LIMITS = {"max_bytes": 10_000_000, "max_seconds": 60.0}
SR = 24_000
CHUNK_SIZES = [2400, 7000, 333, 12000, 4800, 1]  # uneven on purpose


def _stream(encoder: StreamEncoder, x: np.ndarray) -> list[bytes]:
    parts, start, i = [], 0, 0
    while start < x.size:
        size = CHUNK_SIZES[i % len(CHUNK_SIZES)]
        parts.append(encoder.push(x[start : start + size]))
        start += size
        i += 1
    parts.append(encoder.close())
    return parts


def _decode_pcm(data: bytes) -> np.ndarray:
    return np.frombuffer(data, dtype="<i2").astype(np.float32) / 32768.0


def _decode_g711(data: bytes, fmt: str) -> np.ndarray:
    """Headerless mu-law / A-law at 8 kHz, decoded by FFmpeg's own G.711 decoder."""
    import io

    import av

    with av.open(
        io.BytesIO(data), format="mulaw" if fmt == "ulaw" else "alaw", options={"sample_rate": "8000"}
    ) as c:
        frames = [f.to_ndarray().reshape(-1) for f in c.decode(audio=0)]
    return np.concatenate(frames).astype(np.float32) / 32768.0


@pytest.mark.parametrize("fmt", FORMATS)
def test_chunks_concatenate_to_a_decodable_file_of_the_right_length(fmt, tone, dominant_frequency):
    x = tone(440.0, 1.5, SR)
    data = b"".join(_stream(StreamEncoder(fmt, SR), x))

    if fmt == "pcm":
        samples, rate = _decode_pcm(data), SR
        assert samples.size == x.size
    elif fmt in ("ulaw", "alaw"):
        samples, rate = _decode_g711(data, fmt), 8000  # raw telephony bytes, always 8 kHz
        assert samples.size == pytest.approx(1.5 * 8000, abs=80)
    else:
        audio = decode(data, **LIMITS)
        samples, rate = audio.samples, audio.sample_rate
        # mp3/aac streams keep the encoder's priming and padding (no gapless header in a stream)
        tolerance = 0.1 if fmt in ("mp3", "aac") else 0.005
        assert audio.duration == pytest.approx(1.5, abs=tolerance)
    assert dominant_frequency(samples, rate) == pytest.approx(440.0, abs=2.0)


@pytest.mark.parametrize("fmt", ["mp3", "opus", "aac", "flac", "wav"])
def test_stream_resamples_to_the_requested_rate(fmt, tone):
    data = b"".join(_stream(StreamEncoder(fmt, SR, out_sample_rate=16_000), tone(440.0, 1.0, SR)))
    audio = decode(data, **LIMITS)
    assert audio.source_sample_rate == (48_000 if fmt == "opus" else 16_000)
    assert audio.duration == pytest.approx(1.0, abs=0.1)


@pytest.mark.parametrize("fmt", ["pcm", "wav", "mp3"])
def test_first_small_push_already_returns_playable_audio(fmt, tone):
    encoder = StreamEncoder(fmt, SR)
    first = encoder.push(tone(440.0, 0.2, SR))  # one short TTS chunk
    assert first
    if fmt == "pcm":
        assert len(first) == 0.2 * SR * 2
    else:
        assert decode(first, **LIMITS).duration > 0.1
    encoder.close()


@pytest.mark.parametrize("fmt", ["opus", "aac", "flac"])
def test_every_format_emits_audio_before_close(fmt, tone):
    encoder = StreamEncoder(fmt, SR)
    so_far = b"".join(encoder.push(tone(440.0, 0.5, SR)) for _ in range(2))
    assert decode(so_far, **LIMITS).duration > 0.8  # at most ~0.2 s held back
    encoder.close()


def test_wav_stream_header_has_unknown_length():
    data = StreamEncoder("wav", SR).push(np.zeros(100, np.float32))
    assert data[:4] == b"RIFF"
    assert struct.unpack_from("<I", data, 4)[0] == 0xFFFFFFFF
    assert struct.unpack_from("<I", data, 40)[0] == 0xFFFFFFFF
    assert len(data) == 44 + 200


def test_close_is_final_and_idempotent(tone):
    encoder = StreamEncoder("mp3", SR)
    encoder.push(tone(440.0, 0.1, SR))
    assert encoder.close()
    assert encoder.close() == b""
    with pytest.raises(RuntimeError):
        encoder.push(tone(440.0, 0.1, SR))


def test_stream_with_no_audio_is_still_a_valid_header():
    data = StreamEncoder("flac", SR).close()
    assert data.startswith(b"fLaC")


def test_unknown_stream_format_is_refused():
    with pytest.raises(VoxError) as info:
        StreamEncoder("webm", SR)
    assert info.value.code == "unsupported_format"
