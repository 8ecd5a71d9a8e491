"""Signal helpers for the audio tests: tones, frequency estimates and tiny files made with PyAV."""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path

import av
import numpy as np
import pytest

SPEAKERS_DIR = Path(__file__).resolve().parents[2] / ".." / "shared" / "testdata" / "speakers"


@pytest.fixture
def tone() -> Callable[..., np.ndarray]:
    def make(
        freq: float = 440.0, seconds: float = 1.0, sr: int = 24_000, amplitude: float = 0.5
    ) -> np.ndarray:
        t = np.arange(round(seconds * sr)) / sr
        return (amplitude * np.sin(2 * np.pi * freq * t)).astype(np.float32)

    return make


@pytest.fixture
def dominant_frequency() -> Callable[[np.ndarray, int], float]:
    def estimate(x: np.ndarray, sr: int) -> float:
        spectrum = np.abs(np.fft.rfft(x * np.hanning(x.size)))
        return float(np.argmax(spectrum) * sr / x.size)

    return estimate


@pytest.fixture
def speaker_clips() -> list[Path]:
    clips = sorted(SPEAKERS_DIR.glob("en_*.wav"))
    if not clips:
        pytest.skip(f"real speech clips not found under {SPEAKERS_DIR} (../shared/testdata/speakers)")
    return clips


@pytest.fixture
def make_container() -> Callable[..., bytes]:
    """Write ``left``/``right`` (stereo) or one channel into any container/codec PyAV can produce."""

    def make(container: str, codec: str, channels: list[np.ndarray], sr: int) -> bytes:
        buffer = io.BytesIO()
        with av.open(buffer, mode="w", format=container) as out:
            stream = out.add_stream(codec, rate=sr)
            assert isinstance(stream, av.audio.stream.AudioStream)
            stream.layout = "stereo" if len(channels) == 2 else "mono"
            planar = np.ascontiguousarray(np.stack(channels).astype(np.float32))
            frame = av.AudioFrame.from_ndarray(planar, format="fltp", layout=stream.layout.name)
            frame.sample_rate = sr
            frame.pts = 0
            out.mux(stream.encode(frame))
            out.mux(stream.encode(None))
        return buffer.getvalue()

    return make
