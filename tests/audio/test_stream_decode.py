"""Streamed audio decoders: real Opus made by PyAV's libopus encoder from the shared test speech."""

from __future__ import annotations

import io

import av
import numpy as np
import pytest
from tests.conftest import SPEAKERS, needs_testdata

from voxvault.audio.io import decode
from voxvault.audio.stream_decode import OggOpusDecoder, OpusDecoder, PcmDecoder, stream_decoder
from voxvault.errors import VoxError

pytestmark = needs_testdata


def speech(rate: int = 48_000, name: str = "en_james") -> np.ndarray:
    return decode(SPEAKERS / f"{name}.wav", max_bytes=10_000_000, max_seconds=60, target_sr=rate).samples


def opus_packets(samples: np.ndarray, channels: int = 1) -> list[bytes]:
    """Raw Opus packets (20 ms each) as an encoder hands them out."""
    enc = av.CodecContext.create("libopus", "w")
    enc.sample_rate, enc.layout, enc.format, enc.bit_rate = (
        48_000,
        "mono" if channels == 1 else "stereo",
        "s16",
        32_000,
    )
    enc.open()
    pcm = (np.clip(samples, -1, 1) * 32767).astype(np.int16)
    packets: list[bytes] = []
    n = enc.frame_size
    for i in range(0, len(pcm) - n + 1, n):
        block = np.repeat(pcm[i : i + n][None, :], channels, axis=0).T.reshape(1, -1)
        frame = av.AudioFrame.from_ndarray(block, format="s16", layout=enc.layout.name)
        frame.sample_rate, frame.pts = 48_000, i
        packets += [bytes(p) for p in enc.encode(frame)]
    return packets + [bytes(p) for p in enc.encode(None)]


def ogg_opus(samples: np.ndarray) -> bytes:
    """An Ogg/Opus file as ffmpeg writes one."""
    return opus_file(samples, "ogg")


def opus_file(samples: np.ndarray, fmt: str, options: dict[str, str] | None = None) -> bytes:
    """``samples`` (48 kHz mono) as Opus in the container ``fmt`` (``ogg``, ``webm``), 100 ms frames."""
    out = io.BytesIO()
    with av.open(out, "w", format=fmt, options=options or {}) as container:
        stream = container.add_stream("libopus", rate=48_000, layout="mono")
        pcm = (np.clip(samples, -1, 1) * 32767).astype(np.int16)
        for i in range(0, len(pcm), 4800):
            frame = av.AudioFrame.from_ndarray(pcm[None, i : i + 4800], format="s16", layout="mono")
            frame.sample_rate, frame.pts = 48_000, i
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return out.getvalue()


def similar(a: np.ndarray, b: np.ndarray) -> float:
    """Correlation of two signals' 10 ms energy envelopes (codec-proof, alignment-tolerant)."""
    n = min(len(a), len(b)) // 480 * 480
    ea = np.sqrt((a[:n].reshape(-1, 480) ** 2).mean(axis=1))
    eb = np.sqrt((b[:n].reshape(-1, 480) ** 2).mean(axis=1))
    return float(np.corrcoef(ea, eb)[0, 1])


def test_raw_opus_packets_decode_to_the_speech() -> None:
    original = speech()
    decoder = OpusDecoder()
    out = np.concatenate([decoder.decode(p) for p in opus_packets(original)])
    assert decoder.rate == 48_000 and out.dtype == np.float32
    assert abs(len(out) - len(original)) < 48_000 * 0.05
    assert similar(out[312:], original) > 0.95  # the encoder's 6.5 ms delay aside


def test_stereo_opus_is_mixed_down() -> None:
    original = speech()[: 48_000 * 2]
    decoder = OpusDecoder()
    out = np.concatenate([decoder.decode(p) for p in opus_packets(original, channels=2)])
    assert out.ndim == 1 and similar(out[312:], original) > 0.95


@pytest.mark.parametrize("piece", [1, 517, 70_000])
def test_an_ogg_stream_cut_anywhere_decodes_whole(piece: int) -> None:
    original = speech()
    data = ogg_opus(original)
    decoder = stream_decoder("ogg_opus", 16_000)
    out = np.concatenate([decoder.decode(data[i : i + piece]) for i in range(0, len(data), piece)])
    assert abs(len(out) - len(original)) < 48_000 * 0.03  # pre-skip dropped, nothing lost
    assert similar(out, original) > 0.95


def test_what_is_not_that_encoding_is_refused() -> None:
    with pytest.raises(VoxError) as err:
        OpusDecoder().decode(b"\xff" * 3 + b"not opus")
    assert err.value.code == "invalid_audio"
    with pytest.raises(VoxError, match="not Ogg"):
        OggOpusDecoder().decode(b"RIFF" + b"\0" * 40)
    vorbis_like = ogg_opus(speech()[:4800]).replace(b"OpusHead", b"VorbHead")
    with pytest.raises(VoxError, match="not Opus"):
        OggOpusDecoder().decode(vorbis_like)
    with pytest.raises(VoxError, match="whole 16-bit"):
        PcmDecoder(16_000).decode(b"\0\0\0")
    with pytest.raises(VoxError) as err:
        stream_decoder("mp3", 16_000)
    assert err.value.code == "unsupported_encoding"
