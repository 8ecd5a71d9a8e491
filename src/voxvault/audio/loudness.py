"""Loudness normalisation (ITU-R BS.1770 via pyloudnorm) with a look-ahead true-peak limiter.

Offline, :func:`normalize_loudness` measures the integrated loudness of the whole clip, applies one gain
to reach the target and lets the limiter hold every (4x oversampled) peak under the ceiling.

A stream cannot know its integrated loudness in advance, so :class:`StreamNormalizer` uses one fixed
gain for the whole stream: either given by the caller (preferred: measured once per voice on a
reference rendering with :func:`loudness_gain_db`, since TTS output of one voice is consistent) or
measured on the first second pushed. A gain that kept re-adapting would audibly pump between sentences;
a fixed gain keeps the speaker's natural dynamics and the limiter still catches a louder passage later.
The first-second estimate is rough: on the six test speakers the first second of speech measures up to
4 LU off the whole clip (mostly louder), so such streams can land a few LU under the target. The
limiter is the same one as offline and delays the stream by its look-ahead (about 21 ms).
"""

from __future__ import annotations

import math
import warnings

import numpy as np

# pyloudnorm and SciPy's signal module (0.3-2 s to import) load at the first measurement, not when a
# module that may stream audio is imported (the CLI, `voxvault voices`, the service facade).

_BLOCK_S = 0.400  # BS.1770 gating block
_MIN_MEASURE_S = 0.010  # shorter than this has no meaningful loudness
_SILENCE_LUFS = -70.0  # BS.1770 absolute gate: quieter than this counts as silence
_OVERSAMPLE = 4  # true-peak estimate as in BS.1770 Annex 2
_FIR_MARGIN = 16  # input samples affected by resample_poly's edges (its half-length is 10)
_HOLD_S = 0.010  # hold the reduced gain across a pitch period so low voices do not get ripple
_SMOOTH_S = 0.0025  # each of two cascaded box smoothers: 5 ms attack and release ramps


def _as_float(x: np.ndarray) -> np.ndarray:
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim != 1:
        raise ValueError(f"expected mono samples (1-D), got shape {arr.shape}")
    return np.nan_to_num(arr, nan=0.0, posinf=1.0, neginf=-1.0)


def integrated_loudness(x: np.ndarray, sr: int) -> float:
    """Integrated loudness in LUFS; ``-inf`` for silence or clips under 10 ms.

    Clips shorter than the 400 ms gating block are measured as a single block of their own length.
    """
    arr = _as_float(x)
    n = arr.size
    if n < _MIN_MEASURE_S * sr or not np.any(np.abs(arr) > 1e-7):
        return -math.inf
    block = min(_BLOCK_S, (n - 0.5) / sr)  # just under n samples: pyloudnorm needs len > block
    import pyloudnorm

    meter = pyloudnorm.Meter(sr, block_size=block)
    with warnings.catch_warnings(), np.errstate(divide="ignore", invalid="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        lufs = float(meter.integrated_loudness(arr))
    return lufs if math.isfinite(lufs) and lufs >= _SILENCE_LUFS else -math.inf


def loudness_gain_db(
    reference: np.ndarray, sr: int, target_lufs: float = -18.0, max_gain_db: float = 30.0
) -> float:
    """Gain (dB) that brings ``reference`` to ``target_lufs``; 0 dB when it is silent or too short.

    The boost is capped at ``max_gain_db`` so near-silent noise is never blown up to speech level.
    """
    lufs = integrated_loudness(reference, sr)
    if not math.isfinite(lufs):
        return 0.0
    return min(target_lufs - lufs, max_gain_db)


# ---------------------------------------------------------------------------------------------------
# Limiter
# ---------------------------------------------------------------------------------------------------


class _LimiterShape:
    """Sample counts of the limiter at one rate; ``reach`` is how far any output gain looks either way."""

    def __init__(self, sr: int) -> None:
        self.smooth = max(1, round(_SMOOTH_S * sr))  # radius of each box smoother
        self.minimum = round(_HOLD_S * sr) + 2 * self.smooth  # must cover both smoothers' radius
        self.reach = self.minimum + 2 * self.smooth + _FIR_MARGIN


def _peak_envelope(y: np.ndarray) -> np.ndarray:
    """Per-sample peak including inter-sample peaks (4x oversampled), as a true-peak meter sees it."""
    peaks = np.abs(y)
    if y.size >= 2:
        from scipy.signal import resample_poly

        over = np.abs(resample_poly(y, _OVERSAMPLE, 1))[: y.size * _OVERSAMPLE]
        peaks = np.maximum(peaks, over.reshape(y.size, _OVERSAMPLE).max(axis=1))
    return peaks


def _limiter_gain(y: np.ndarray, shape: _LimiterShape, ceiling: float) -> np.ndarray:
    """Smooth per-sample gain <= 1 with |y * gain| <= ceiling at every sample (and oversampled peak).

    Minimum filter over +-``minimum`` then two box smoothers of total radius <= ``minimum``: each output
    gain is an average of values that are all <= the required gain at that very sample.
    """
    required = np.minimum(1.0, ceiling / np.maximum(_peak_envelope(y), 1e-12))
    if required.size == 0 or required.min() >= 1.0:
        return np.ones_like(y)
    from scipy.ndimage import minimum_filter1d, uniform_filter1d

    gain = minimum_filter1d(required, size=2 * shape.minimum + 1, mode="nearest")
    for _ in range(2):
        gain = uniform_filter1d(gain, size=2 * shape.smooth + 1, mode="nearest")
    return np.minimum(gain, required)  # rounding in the averages must not let a sample through


def limit_peaks(x: np.ndarray, sr: int, peak_dbfs: float = -1.0) -> np.ndarray:
    """Keep (true-ish) peaks at or under ``peak_dbfs`` with a smooth look-ahead gain; float32 out."""
    ceiling = 10.0 ** (min(peak_dbfs, 0.0) / 20.0)
    y = _as_float(x)
    out = y * _limiter_gain(y, _LimiterShape(sr), ceiling)
    return np.clip(out, -ceiling, ceiling).astype(np.float32)


def normalize_loudness(
    x: np.ndarray,
    sr: int,
    target_lufs: float = -18.0,
    peak_dbfs: float = -1.0,
    max_gain_db: float = 30.0,
) -> np.ndarray:
    """Bring a clip to ``target_lufs`` integrated loudness without letting any peak pass ``peak_dbfs``.

    Silence and clips under 10 ms are only peak-limited. If the limiter had to take off enough to miss
    the target, the gain is nudged up (four times at most) to win the loudness back; a target far above
    what the ceiling allows for the material (e.g. -9 LUFS speech under -1 dBFS) still ends up short.
    """
    y = _as_float(x)
    lufs = integrated_loudness(y, sr)
    if not math.isfinite(lufs):
        return limit_peaks(y, sr, peak_dbfs)
    gain_db = min(target_lufs - lufs, max_gain_db)
    out = limit_peaks(y * 10.0 ** (gain_db / 20.0), sr, peak_dbfs)
    for _ in range(4):
        missing = target_lufs - integrated_loudness(out, sr)
        if not math.isfinite(missing) or abs(missing) < 0.1 or gain_db + missing > max_gain_db:
            break
        gain_db += missing
        out = limit_peaks(y * 10.0 ** (gain_db / 20.0), sr, peak_dbfs)
    return out


class StreamNormalizer:
    """Fixed-gain loudness normalisation plus the look-ahead limiter, chunk by chunk.

    ``gain_db=None`` measures the gain on the first ``reference_s`` seconds pushed (audio is held until
    then; a silent opening waits up to ``max_wait_s`` and then uses 0 dB). Output lags input by the
    limiter's look-ahead; ``flush`` returns the rest. With the same gain, the concatenated output equals
    ``limit_peaks(x * gain)`` on the whole signal.
    """

    def __init__(
        self,
        sample_rate: int,
        *,
        gain_db: float | None = None,
        target_lufs: float = -18.0,
        peak_dbfs: float = -1.0,
        max_gain_db: float = 30.0,
        reference_s: float = 1.0,
        max_wait_s: float = 3.0,
    ) -> None:
        if sample_rate <= 0:
            raise ValueError(f"sample_rate must be positive, got {sample_rate}")
        self.sample_rate = sample_rate
        self.target_lufs = target_lufs
        self.max_gain_db = max_gain_db
        self._ceiling = 10.0 ** (min(peak_dbfs, 0.0) / 20.0)
        self._shape = _LimiterShape(sample_rate)
        self._reference_n = max(1, round(reference_s * sample_rate))
        self._max_wait_n = max(self._reference_n, round(max_wait_s * sample_rate))
        self._gain_db = gain_db
        self._raw: list[np.ndarray] = []  # input held before the gain is known
        self._raw_n = 0
        self._buffer = np.zeros(0)  # gained input: history, then samples not yet emitted
        self._next = 0  # index in _buffer of the first sample not yet emitted
        self._closed = False

    @property
    def gain_db(self) -> float | None:
        """The fixed gain in use, or None while it is still being measured."""
        return self._gain_db

    @property
    def latency_samples(self) -> int:
        """How many samples the limiter holds back (its look-ahead)."""
        return self._shape.reach

    def push(self, chunk: np.ndarray) -> np.ndarray:
        """Feed mono samples; returns the normalised samples that are final (possibly none)."""
        if self._closed:
            raise RuntimeError("StreamNormalizer is closed")
        x = _as_float(chunk)
        if self._gain_db is None:
            self._raw.append(x)
            self._raw_n += x.size
            if self._raw_n < self._reference_n:
                return np.zeros(0, dtype=np.float32)
            held = np.concatenate(self._raw)
            lufs = integrated_loudness(held, self.sample_rate)
            if not math.isfinite(lufs) and self._raw_n < self._max_wait_n:
                return np.zeros(0, dtype=np.float32)
            self._gain_db = 0.0 if not math.isfinite(lufs) else min(self.target_lufs - lufs, self.max_gain_db)
            self._raw, self._raw_n = [], 0
            x = held
        return self._process(x, final=False)

    def flush(self) -> np.ndarray:
        """Emit everything still held (the stream has ended)."""
        if self._closed:
            return np.zeros(0, dtype=np.float32)
        self._closed = True
        if self._gain_db is None:
            held = np.concatenate(self._raw) if self._raw else np.zeros(0)
            self._gain_db = loudness_gain_db(held, self.sample_rate, self.target_lufs, self.max_gain_db)
            self._raw = []
            return self._process(held, final=True)
        return self._process(np.zeros(0), final=True)

    def _process(self, x: np.ndarray, *, final: bool) -> np.ndarray:
        assert self._gain_db is not None
        reach = self._shape.reach
        self._buffer = np.concatenate([self._buffer, x * 10.0 ** (self._gain_db / 20.0)])
        end = self._buffer.size if final else self._buffer.size - reach
        if end <= self._next:
            return np.zeros(0, dtype=np.float32)
        gain = _limiter_gain(self._buffer, self._shape, self._ceiling)
        out = self._buffer[self._next : end] * gain[self._next : end]
        keep_from = max(0, end - reach)  # history the next call needs on its left
        self._buffer = self._buffer[keep_from:]
        self._next = end - keep_from
        return np.clip(out, -self._ceiling, self._ceiling).astype(np.float32)
