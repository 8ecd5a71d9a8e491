"""The public face of the watermark: one object that embeds (files and streams) and detects.

Every synthesized output carries the id of its generation record (32 bits) protected by a CRC-24 and a
rate-1/2 convolutional code, repeated every 1.536 s in the 312-3406 Hz band; see docs/watermark.md for
the scheme, its measured robustness and its limits.
"""

from __future__ import annotations

import logging
import time

import numpy as np
import soxr
from numpy.typing import NDArray

import voxvault.engines.watermark.coding as coding
from voxvault.engines.watermark.detect import ANALYSIS_RATE, Detection, Detector
from voxvault.engines.watermark.embed import StreamEmbedder, Strength
from voxvault.engines.watermark.layout import Layout
from voxvault.errors import VoxError

log = logging.getLogger(__name__)

FloatArray = NDArray[np.float32]

DEFAULT_KEY = b"voxvault-watermark-v1"
MIN_SECONDS = 1.5
MAX_SECONDS_DEFAULT = 600.0
_MIN_RATE, _MAX_RATE = 4000, 384000


class Watermarker:
    """Embeds and detects the voxvault watermark. Construct once and share: it holds no mutable state.

    ``key`` selects the layout (sync pattern, interleaver, scrambler); marks made with one key are
    invisible to a detector with another. ``max_seconds`` bounds the audio one detection will analyse.
    """

    def __init__(
        self,
        key: bytes = DEFAULT_KEY,
        *,
        strength: Strength | None = None,
        max_seconds: float = MAX_SECONDS_DEFAULT,
    ) -> None:
        self.layout = Layout.from_key(key)
        self.strength = strength or Strength()
        self.max_seconds = max_seconds

    # -- embedding --------------------------------------------------------------------------------------
    def embedder(self, payload: int, sample_rate: int) -> StreamEmbedder:
        """A marker for one output; call ``process(chunk, offset)`` for each chunk as it is produced."""
        _check_payload(payload)
        return StreamEmbedder(self.layout.symbols(int(payload)), sample_rate, self.strength)

    def embed(self, audio: FloatArray, sample_rate: int, payload: int) -> FloatArray:
        """The whole signal marked at once (the same as streaming it as one chunk)."""
        return self.embedder(payload, sample_rate).process(_as_mono(audio), 0)

    # -- detection --------------------------------------------------------------------------------------
    def detect(self, audio: FloatArray, sample_rate: int) -> Detection:
        """Look for the mark in ``audio`` (mono or multi-channel, any rate, 1.5 s to ``max_seconds``)."""
        return self.detect_with_guess(audio, sample_rate)[0]

    def detect_with_guess(self, audio: FloatArray, sample_rate: int) -> tuple[Detection, int | None]:
        """``detect`` plus the payload bits read at the best alignment even when they fail the CRC.

        The guess is unverified and meaningless on unmarked audio; it exists to measure bit accuracy.
        """
        x = _validated(audio, sample_rate, self.max_seconds)
        t0 = time.perf_counter()
        if sample_rate != ANALYSIS_RATE:
            x = soxr.resample(x, int(sample_rate), ANALYSIS_RATE).astype(np.float32)
        detector = Detector(self.layout)
        det = detector.run(x)
        log.info(
            "watermark detect audio_s=%.2f present=%s crc_checks=%d took_s=%.3f",
            len(x) / ANALYSIS_RATE, det.present, det.crc_checks, time.perf_counter() - t0,
        )  # fmt: skip
        return det, det.payload if det.present else detector.guess


def _check_payload(payload: int) -> None:
    if not isinstance(payload, int | np.integer) or isinstance(payload, bool):
        raise VoxError("invalid_payload", "watermark payload must be an integer")
    if not 0 <= int(payload) < 1 << coding.PAYLOAD_BITS:
        raise VoxError("invalid_payload", f"watermark payload must be in [0, 2^{coding.PAYLOAD_BITS})")


def _as_mono(audio: FloatArray) -> FloatArray:
    a = np.asarray(audio)
    if a.dtype.kind not in "fiu":
        raise VoxError("invalid_audio", "audio must be an array of numeric samples")
    if a.ndim == 2:  # (channels, samples) or (samples, channels): the short axis is channels
        a = a.mean(axis=0 if a.shape[0] <= a.shape[1] else 1)
    if a.ndim != 1:
        raise VoxError("invalid_audio", "audio must be a 1-D (mono) or 2-D (multi-channel) array")
    if a.dtype.kind in "iu":  # integer PCM: scale to [-1, 1]
        a = a / float(np.iinfo(a.dtype.type).max)  # type: ignore[type-var]
    return a.astype(np.float32, copy=False)


def _validated(audio: FloatArray, sample_rate: int, max_seconds: float) -> FloatArray:
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, int | np.integer):
        raise VoxError("invalid_sample_rate", "sample rate must be an integer number of Hz")
    if not _MIN_RATE <= int(sample_rate) <= _MAX_RATE:
        raise VoxError("invalid_sample_rate", f"sample rate must be between {_MIN_RATE} and {_MAX_RATE} Hz")
    x = _as_mono(audio)
    seconds = len(x) / int(sample_rate)
    if seconds < MIN_SECONDS:
        raise VoxError(
            "audio_too_short",
            f"watermark detection needs at least {MIN_SECONDS:.1f} s of audio, got {seconds:.2f} s",
            min_seconds=MIN_SECONDS,
        )
    if seconds > max_seconds:
        raise VoxError(
            "audio_too_long",
            f"watermark detection takes at most {max_seconds:.0f} s of audio, got {seconds:.0f} s",
            413,
            max_seconds=max_seconds,
        )
    if not np.all(np.isfinite(x)):
        raise VoxError("invalid_audio", "audio contains NaN or infinite samples")
    peak = float(np.max(np.abs(x)))
    return x / peak if peak > 1.0 else x  # hot input: the mark is scale-invariant, so just rescale
