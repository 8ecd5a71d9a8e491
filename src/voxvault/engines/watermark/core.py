"""The voxvault audio watermark: keyed time-frequency energy patterns in the 300-3400 Hz telephone band.

Scheme (details and measurements in docs/watermark.md):

* Grid. Audio is cut into 16 ms hops on an absolute grid that starts at sample 0 of the output. Four hops
  make a 64 ms slot; 24 slots make a 1.536 s frame. 24 bands of ~130 Hz cover 312-3406 Hz.
* Symbols. A frame holds 12 x 12 *quads*: two adjacent bands x two adjacent slots. A quad carries one
  +-1 symbol as the double difference of its tiles' log energies (+ - / - +), which is blind to loudness,
  equalisation, gain and slow spectral tilt. 20 quads per frame are a keyed sync pattern; 124 carry the
  convolutionally coded payload. The same frame repeats for the whole output, so any 2 s stretch holds
  every quad at least once and longer audio adds the repetitions up.
* Embedding. The host's own quad values are measured and each tile's energy is scaled (multiplicatively,
  so the mark follows the speech and vanishes in silence) just enough that the quad reads the symbol with
  a margin ("informed embedding": the host's interference is cancelled, not fought). A second pass
  measures what was realised and tops up quads that fell short.
* Streaming. Marking is a function of absolute position only; STFT frames that straddle a chunk boundary
  are left unmarked and quads cut by a boundary get a fixed (uninformed) strength, so chunked output is
  as detectable as whole-file output and chunk lengths are preserved exactly.
* Detection. Resample to 8 kHz, try a grid of speed factors, measure all quads at every 4 ms offset, fold
  them modulo the frame, find the sync pattern, Viterbi-decode the best few candidates and accept only a
  CRC-24 match. At most ``MAX_DECODE_ATTEMPTS`` candidates are decoded per input, so the probability that
  unmarked audio yields a detection is at most 16 * 2^-24 = 9.5e-7.
"""

from __future__ import annotations

import hashlib
import logging
import math
from collections.abc import Iterator
from dataclasses import dataclass, field, replace

import numpy as np
import scipy.fft as sfft
import soxr
from numpy.typing import NDArray

from voxvault.engines.watermark import coding
from voxvault.errors import VoxError

log = logging.getLogger(__name__)

FloatArray = NDArray[np.float32]
F64 = NDArray[np.float64]

DEFAULT_KEY = b"voxvault-watermark-v1"
HOP_S = 0.016
ANALYSIS_RATE = 8000
BIN_HZ = 31.25  # 1 / (2 * HOP_S): the STFT window is two hops long
BAND_BINS = np.round(np.linspace(10, 109, 25)).astype(int)  # 24 bands, 312.5-3406 Hz
N_BANDS = len(BAND_BINS) - 1
SLOT_HOPS = 4
FRAME_SLOTS = 24
FRAME_HOPS = SLOT_HOPS * FRAME_SLOTS
QUAD_ROWS = N_BANDS // 2
QUAD_COLS = FRAME_SLOTS // 2
QUAD_HOPS = 2 * SLOT_HOPS
N_QUADS = QUAD_ROWS * QUAD_COLS
N_SYNC = N_QUADS - coding.CODED_BITS
FRAME_SECONDS = FRAME_HOPS * HOP_S

MIN_SECONDS = 1.5
MAX_SECONDS_DEFAULT = 3600.0
MAX_DECODE_ATTEMPTS = 16
LIST_SIZES = (6, 2)  # list-Viterbi entries CRC-checked for the best and second-best hypothesis of a stage
FALSE_ALARM_BOUND = MAX_DECODE_ATTEMPTS * 2.0**-coding.CRC_BITS
SPEED_GRID = np.round(np.concatenate([[1.0], np.arange(0.937, 1.0635, 0.003)]), 4)
_EPS = 1e-10


@dataclass(frozen=True)
class Detection:
    """What a detector run found. ``payload`` is set only when ``present`` (sync found and CRC valid)."""

    present: bool
    confidence: float
    payload: int | None
    bit_errors: int | None
    coded_bits: int = coding.CODED_BITS
    sync_score: float = 0.0
    speed: float | None = None
    offset_s: float | None = None
    attempts: int = 0
    false_alarm_bound: float = FALSE_ALARM_BOUND
    details: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, object]:
        return {
            "present": self.present,
            "confidence": round(self.confidence, 4),
            "payload": self.payload,
            "bit_errors": self.bit_errors,
            "coded_bits": self.coded_bits,
            "sync_score": round(self.sync_score, 3),
            "speed": self.speed,
            "offset_s": None if self.offset_s is None else round(self.offset_s, 4),
            "attempts": self.attempts,
            "false_alarm_bound": self.false_alarm_bound,
        }


@dataclass(frozen=True)
class Layout:
    """The keyed frame layout: which quad carries sync and which carries which coded bit."""

    sync_rows: NDArray[np.int64]
    sync_cols: NDArray[np.int64]
    sync_chips: F64
    data_rows: NDArray[np.int64]  # in coded-bit order
    data_cols: NDArray[np.int64]
    scrambler: coding.Bits

    @classmethod
    def from_key(cls, key: bytes) -> Layout:
        seed = int.from_bytes(hashlib.sha256(b"layout:" + key).digest()[:8], "big")
        rng = np.random.default_rng(seed)
        # Sync quads: spread over every column and as many rows as possible.
        cols = np.concatenate([np.arange(QUAD_COLS), rng.choice(QUAD_COLS, N_SYNC - QUAD_COLS, replace=False)])
        rows = np.concatenate(
            [rng.permutation(QUAD_ROWS), rng.choice(QUAD_ROWS, N_SYNC - QUAD_ROWS, replace=False)]
        )[: len(cols)]
        taken = set(zip(rows.tolist(), cols.tolist(), strict=True))
        while len(taken) < N_SYNC:  # resolve accidental duplicates
            taken.add((int(rng.integers(QUAD_ROWS)), int(rng.integers(QUAD_COLS))))
        sync = sorted(taken)[:N_SYNC]
        sync_rows = np.array([r for r, _ in sync])
        sync_cols = np.array([c for _, c in sync])
        chips = rng.choice([-1.0, 1.0], size=N_SYNC)
        free = [(r, c) for r in range(QUAD_ROWS) for c in range(QUAD_COLS) if (r, c) not in taken]
        order = rng.permutation(len(free))
        data = [free[i] for i in order]
        scrambler = rng.integers(0, 2, coding.MESSAGE_BITS).astype(np.uint8)
        return cls(
            sync_rows=sync_rows,
            sync_cols=sync_cols,
            sync_chips=chips,
            data_rows=np.array([r for r, _ in data]),
            data_cols=np.array([c for _, c in data]),
            scrambler=scrambler,
        )

    def symbols(self, payload: int) -> F64:
        """The +-1 symbol of every quad of a frame, shape (QUAD_ROWS, QUAD_COLS)."""
        coded = coding.conv_encode(coding.message_bits(payload, self.scrambler))
        grid = np.zeros((QUAD_ROWS, QUAD_COLS))
        grid[self.sync_rows, self.sync_cols] = self.sync_chips
        grid[self.data_rows, self.data_cols] = 1.0 - 2.0 * coded
        return grid


PATTERN = __import__("os").environ.get("WM_PATTERN", "pair")
ROW_SCALE = np.array([0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.1, 1.2, 1.3, 1.4, 1.5, 1.5])
SMOOTH_T = float(__import__("os").environ.get("WM_ST", "0"))
SMOOTH_F = float(__import__("os").environ.get("WM_SF", "0"))
SMOOTH_F_PASSES = int(__import__("os").environ.get("WM_SFP", "1"))
COMPENSATE = bool(int(__import__("os").environ.get("WM_COMP", "0")))
FLOOR_PCT = float(__import__("os").environ.get("WM_FP", "10"))
WEIGHT = __import__("os").environ.get("WM_W", "min")
REL_POW = float(__import__("os").environ.get("WM_RP", "1"))
LOCAL_COLS = 4  # pair readings are taken relative to the mean of +-4 neighbouring columns (~1.2 s)


def _minus_local_mean(values: F64, stride: int) -> F64:
    """values minus the mean of the same row at offsets -LOCAL_COLS..LOCAL_COLS times ``stride`` (axis 0).

    Removes the slowly varying spectral balance of the host and any fixed equalisation, which a plain
    band-pair difference would otherwise carry as a bias.
    """
    n = values.shape[0]
    total = np.zeros_like(values)
    count = np.zeros((n, 1))
    for k in range(-LOCAL_COLS, LOCAL_COLS + 1):
        sh = k * stride
        if abs(sh) >= n:
            continue
        if sh >= 0:
            total[: n - sh] += values[sh:]
            count[: n - sh] += 1
        else:
            total[-sh:] += values[: n + sh]
            count[-sh:] += 1
    return values - total / count


def _window(n: int) -> NDArray[np.float32]:
    """sqrt-Hann: analysis x synthesis sums to one at 50% overlap."""
    return np.sqrt(0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n) / n)).astype(np.float32)


def _band_edges(n_fft: int, sr: float, scale: float = 1.0) -> F64:
    """Band edges as fractional FFT-bin positions (bin k spans k-0.5 .. k+0.5), band edges times ``scale``."""
    return (BAND_BINS - 0.5) * BIN_HZ * scale / (sr / n_fft) + 0.5


def _band_energy(power: NDArray[np.float32], edges: F64) -> F64:
    """Energy per band from a power spectrogram (frames, bins) via interpolated cumulative sums.

    Avoids BLAS on purpose: these products are tiny, and a threaded BLAS on a busy machine is slower
    than the arithmetic itself.
    """
    cum = np.concatenate([np.zeros((power.shape[0], 1)), np.cumsum(power, axis=1, dtype=np.float64)], axis=1)
    i = np.floor(edges).astype(np.int64)
    frac = edges - i
    at = cum[:, i] + frac[None, :] * power[:, np.minimum(i, power.shape[1] - 1)]
    return np.diff(at, axis=1)


class StreamEmbedder:
    """Marks a stream chunk by chunk; output length equals input length and depends only on positions.

    ``process(chunk, offset)`` with ``offset`` the absolute sample index of the chunk's first sample.
    Only STFT frames wholly inside the chunk are marked, so no state crosses chunk boundaries and the
    result is the same whatever the chunking, up to the few frames that straddle a boundary.
    """

    def __init__(self, marker: Watermarker, payload: int, sample_rate: int) -> None:
        if not isinstance(sample_rate, int | np.integer) or not 8000 <= int(sample_rate) <= 384000:
            raise VoxError("invalid_sample_rate", "the watermark embeds into audio sampled at 8-384 kHz")
        self.marker = marker
        self.sample_rate = int(sample_rate)
        self.symbols = marker.layout.symbols(payload)
        self.hop = int(round(HOP_S * sample_rate))
        self.n_fft = 2 * self.hop
        self.window = _window(self.n_fft)
        edges = np.round(_band_edges(self.n_fft, sample_rate)).astype(np.int64)  # whole bins per band
        self.lo, self.hi = int(edges[0]), int(edges[-1])
        self.band_starts = edges[:-1] - self.lo
        self.band_of_bin = np.repeat(np.arange(N_BANDS), np.diff(edges))

    def process(self, chunk: FloatArray, offset: int) -> FloatArray:
        x = np.asarray(chunk, dtype=np.float32)
        if x.ndim != 1:
            raise VoxError("invalid_audio", "the watermark embeds into mono audio")
        n, hop, n_fft = len(x), self.hop, self.n_fft
        first = -(-offset // hop)
        last = (offset + n - n_fft) // hop  # inclusive: frames wholly inside this chunk
        if last < first:
            return x.copy()
        frames = np.arange(first, last + 1)
        starts = frames * hop - offset
        idx = starts[:, None] + np.arange(n_fft)[None, :]
        spec = sfft.rfft(x[idx] * self.window, axis=1)[:, self.lo : self.hi]
        m = self.marker
        cols, quad_of_frame, second_half, informed, symbol = self._plan(frames)
        host = self._quad_values(spec, quad_of_frame, second_half)
        target = m.target * m.row_scale[None, :]
        cap = m.max_depth * m.row_scale[None, :]
        depth = np.where(informed, np.clip(target - symbol * host, 0.0, cap), m.plain_depth * m.row_scale[None, :])
        y = self._apply(x, spec, starts, quad_of_frame, second_half, symbol * depth)
        for _ in range(m.refine_passes if informed.any() else 0):
            spec_y = sfft.rfft(y[idx] * self.window, axis=1)[:, self.lo : self.hi]
            got = self._quad_values(spec_y, quad_of_frame, second_half)
            short = np.maximum(target - symbol * got, 0.0) * informed
            if COMPENSATE:
                # What capped quads still lack is asked of the other repetitions of the same quad in this
                # chunk: the detector adds repetitions up, so the sum is what has to clear the margin.
                capped = informed & (depth >= cap - 1e-9)
                free = informed & ~capped
                pos = (cols % QUAD_COLS)[:, None] * QUAD_ROWS + np.arange(QUAD_ROWS)[None, :]
                lack = np.bincount(pos[capped], short[capped], N_QUADS)
                n_free = np.bincount(pos[free], minlength=N_QUADS)
                short = short + np.where(free, lack[pos] / np.maximum(n_free[pos], 1), 0.0)
            depth = np.where(informed, np.clip(depth + m.refine_gain * short, 0.0, cap), depth)
            y = self._apply(x, spec, starts, quad_of_frame, second_half, symbol * depth)
        return y

    # -- internals --------------------------------------------------------------------------------------
    def _plan(
        self, frames: NDArray[np.int64]
    ) -> tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.int64], NDArray[np.bool_], F64]:
        """Quad columns in view; per frame its quad column (local index) and slot half; per quad (cols x rows) informed? symbol.

        A quad is informed (strength fitted to the host) only when all its frames are in this chunk.
        """
        slot = frames // SLOT_HOPS
        qcol = slot // 2
        cols, quad_of_frame = np.unique(qcol, return_inverse=True)
        first_frame = cols * QUAD_HOPS
        whole = (first_frame >= frames[0]) & (first_frame + QUAD_HOPS - 1 <= frames[-1])
        informed = np.repeat(whole[:, None], QUAD_ROWS, axis=1)
        symbol = self.symbols[:, cols % QUAD_COLS].T  # (cols, rows)
        return cols, quad_of_frame.reshape(-1), slot % 2, informed, symbol

    def _quad_values(
        self, spec: NDArray[np.complex64], quad_of_frame: NDArray[np.int64], second_half: NDArray[np.int64]
    ) -> F64:
        """The detector's reading of every quad in view, (cols, rows)."""
        power = np.add.reduceat(spec.real**2 + spec.imag**2, self.band_starts, axis=1)  # (frames, bands)
        n_cols = int(quad_of_frame[-1]) + 1
        energy = np.zeros((n_cols * 2, N_BANDS))
        np.add.at(energy, quad_of_frame * 2 + second_half, power)
        energy = energy.reshape(n_cols, 2, N_BANDS)
        if PATTERN == "quad":
            logs = np.log(energy + _EPS)
            return (logs[:, 0, 0::2] - logs[:, 0, 1::2]) - (logs[:, 1, 0::2] - logs[:, 1, 1::2])
        logs = np.log(energy.sum(axis=1) + _EPS)
        return _minus_local_mean(logs[:, 0::2] - logs[:, 1::2], 1)

    def _apply(
        self,
        x: FloatArray,
        spec: NDArray[np.complex64],
        starts: NDArray[np.int64],
        quad_of_frame: NDArray[np.int64],
        second_half: NDArray[np.int64],
        signed_depth: F64,
    ) -> FloatArray:
        """x plus the overlap-added change of every frame: each tile's amplitude times exp(+-depth/8)."""
        per_band = np.repeat(signed_depth, 2, axis=1)[quad_of_frame]  # (frames, bands)
        band_sign = np.where(np.arange(N_BANDS) % 2 == 0, 1.0, -1.0)
        time_sign = 1.0 - 2.0 * second_half if PATTERN == "quad" else np.ones(len(second_half))
        v = per_band * band_sign[None, :] * time_sign[:, None]  # +-depth: this tile's share of the quad
        share = self.marker.boost_share
        tiles = 4.0 if PATTERN == "quad" else 2.0  # tiles sharing a symbol's reading
        # log energy of a tile moves by 2 * share * depth / tiles (boosted) or 2 * (1 - share) * ...; halve for
        # amplitude. Symmetric (share 0.5): each tile's energy moves by depth / tiles in log.
        log_amp = np.where(v > 0, share, 1.0 - share) * v / tiles
        per_bin = log_amp[:, self.band_of_bin]
        ts, fs = SMOOTH_T, SMOOTH_F
        if ts > 0 and len(per_bin) > 2:
            per_bin = np.concatenate([per_bin[:1], per_bin, per_bin[-1:]])
            per_bin = ts * (per_bin[:-2] + per_bin[2:]) + (1 - 2 * ts) * per_bin[1:-1]
        for _ in range(SMOOTH_F_PASSES if fs > 0 else 0):
            pb = np.concatenate([per_bin[:, :1], per_bin, per_bin[:, -1:]], axis=1)
            per_bin = fs * (pb[:, :-2] + pb[:, 2:]) + (1 - 2 * fs) * pb[:, 1:-1]
        gain = np.expm1(per_bin).astype(np.float32)
        full = np.zeros((len(starts), self.n_fft // 2 + 1), dtype=np.complex64)
        full[:, self.lo : self.hi] = spec * gain
        delta = sfft.irfft(full, n=self.n_fft, axis=1) * self.window
        y = x.copy()
        for parity in (0, 1):  # frames of one parity are n_fft apart: they tile without overlapping
            sel = delta[parity::2]
            if len(sel):
                s0 = int(starts[parity])
                y[s0 : s0 + sel.size] += sel.reshape(-1)
        np.clip(y, -1.0, 1.0, out=y)
        return y


class Watermarker:
    """Embeds and detects the voxvault watermark. Construct once; thread-safe (no mutable state)."""

    def __init__(
        self,
        key: bytes = DEFAULT_KEY,
        *,
        target: float = float(__import__("os").environ.get("WM_T", "3.2")),
        max_depth: float = float(__import__("os").environ.get("WM_CAP", "6.4")),
        plain_depth: float = float(__import__("os").environ.get("WM_T", "3.2")),
        refine_passes: int = int(__import__("os").environ.get("WM_RPASS", "1")),
        refine_gain: float = 1.0,
        boost_share: float = 0.5,
        row_scale: tuple[float, ...] | None = None,
        max_seconds: float = MAX_SECONDS_DEFAULT,
    ) -> None:
        self.key = key
        self.layout = Layout.from_key(key)
        self.target = target
        self.max_depth = max_depth
        self.plain_depth = plain_depth
        self.refine_passes = refine_passes
        self.refine_gain = refine_gain
        self.boost_share = boost_share
        self.row_scale = ROW_SCALE if row_scale is None else np.asarray(row_scale, dtype=np.float64)
        self.max_seconds = max_seconds

    # -- embedding --------------------------------------------------------------------------------------
    def embedder(self, payload: int, sample_rate: int) -> StreamEmbedder:
        _check_payload(payload)
        return StreamEmbedder(self, payload, sample_rate)

    def embed(self, audio: FloatArray, sample_rate: int, payload: int) -> FloatArray:
        """The whole signal marked at once (same result as streaming it in one chunk)."""
        return self.embedder(payload, sample_rate).process(_as_mono(audio), 0)

    # -- detection --------------------------------------------------------------------------------------
    def detect(self, audio: FloatArray, sample_rate: int) -> Detection:
        """Look for the mark anywhere in ``audio`` (any rate, any length from 1.5 s to ``max_seconds``)."""
        return self.detect_with_guess(audio, sample_rate)[0]

    def detect_with_guess(self, audio: FloatArray, sample_rate: int) -> tuple[Detection, int | None]:
        """``detect`` plus the payload bits read at the best alignment even when they fail the CRC.

        The guess is unverified and meaningless on unmarked audio; it exists for measuring bit accuracy.
        """
        x = _validated(audio, sample_rate, self.max_seconds)
        if sample_rate != ANALYSIS_RATE:
            x = soxr.resample(x, sample_rate, ANALYSIS_RATE).astype(np.float32)
        detector = _Detector(self.layout)
        det = detector.run(x)
        return det, det.payload if det.present else detector.guess


def _check_payload(payload: int) -> None:
    if not isinstance(payload, int | np.integer) or not 0 <= int(payload) < 1 << coding.PAYLOAD_BITS:
        raise VoxError("invalid_payload", f"watermark payload must be an integer in [0, 2^{coding.PAYLOAD_BITS})")


def _as_mono(audio: FloatArray) -> FloatArray:
    a = np.asarray(audio)
    if a.ndim == 2:
        a = a.mean(axis=0 if a.shape[0] < a.shape[1] else 1)
    if a.ndim != 1:
        raise VoxError("invalid_audio", "audio must be a 1-D (mono) or 2-D (multi-channel) array")
    return a.astype(np.float32, copy=False)


def _validated(audio: FloatArray, sample_rate: int, max_seconds: float) -> FloatArray:
    if not isinstance(sample_rate, int | np.integer) or not 4000 <= int(sample_rate) <= 384000:
        raise VoxError("invalid_sample_rate", "sample rate must be an integer between 4000 and 384000 Hz")
    x = _as_mono(audio)
    if not np.issubdtype(np.asarray(audio).dtype, np.number):
        raise VoxError("invalid_audio", "audio must be numeric samples")
    seconds = len(x) / sample_rate
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
    peak = float(np.max(np.abs(x))) if len(x) else 0.0
    if peak > 1.0:
        x = x / peak  # integer-scaled or hot input: scale invariance makes this harmless
    return x


@dataclass
class _Candidate:
    score: float
    speed: float
    sub: int
    phase: int
    start: int  # first 4 ms analysis frame of the window searched
    folded: F64 = field(repr=False)
    readings: F64 = field(repr=False)  # weighted quad readings at every hop, (hops, rows)


class _Detector:
    """One detection run over 8 kHz audio.

    The spectrogram is computed once (4 ms hop); every speed factor of the grid is tried by scaling the
    band edges and resampling the band-energy envelopes in time, which costs far less than resampling
    the audio and recomputing the spectrogram for each speed.
    """

    HOP = int(HOP_S * ANALYSIS_RATE)  # 128 samples
    SUBS = 4  # offsets searched per hop (4 ms steps)
    SUB = HOP // SUBS
    CLIP = 6.0  # soft limiter on single quad readings (outliers from transients and noise)
    WINDOW_FRAMES = int(12.0 * ANALYSIS_RATE) // SUB  # inputs longer than this are searched in windows
    WINDOW_STEP = WINDOW_FRAMES // 2
    DEREVERB = 0.0
    DEREVERB_LAG = 3

    def __init__(self, layout: Layout) -> None:
        self.layout = layout
        self.n_fft = 2 * self.HOP
        self.window = _window(self.n_fft)
        self._sync_u = (layout.sync_cols * QUAD_HOPS)[None, :] + np.arange(FRAME_HOPS)[:, None]
        self.guess: int | None = None  # payload bits of the best-agreeing hypothesis, CRC or not


    def run(self, x: FloatArray) -> Detection:
        if float(np.max(np.abs(x))) == 0.0:
            return Detection(present=False, confidence=0.0, payload=None, bit_errors=None)
        n_frames = 1 + (len(x) - self.n_fft) // self.SUB
        idx = np.arange(self.n_fft)[None, :] + self.SUB * np.arange(n_frames)[:, None]
        spec = sfft.rfft(x[idx] * self.window, axis=1)
        power = (spec.real**2 + spec.imag**2).astype(np.float32)
        starts = [0]
        if n_frames > self.WINDOW_FRAMES * 1.25:
            starts = list(range(0, n_frames - self.WINDOW_FRAMES + 1, self.WINDOW_STEP))
            if starts[-1] + self.WINDOW_FRAMES < n_frames:
                starts.append(n_frames - self.WINDOW_FRAMES)
        span = self.WINDOW_FRAMES if len(starts) > 1 else n_frames

        # Stage 1 tries the nominal speed only (the common case, and cheap); stage 2 the whole grid. In
        # each, the alignments with the strongest sync are Viterbi-decoded without looking at the CRC and
        # ranked by how well the whole frame (sync + re-encoded data) agrees with the readings; only the
        # best-ranked ones are CRC-checked, and never more than MAX_DECODE_ATTEMPTS in all.
        attempts = 0
        best_score = best_agreement = 0.0
        checked: list[coding.Bits] = []
        stages = ((SPEED_GRID[:1], 6, MAX_DECODE_ATTEMPTS // 2), (SPEED_GRID[1:], 30, MAX_DECODE_ATTEMPTS))
        for speeds, n_decode, budget in stages:
            pool: list[_Candidate] = []
            for start in starts:
                for speed in speeds:
                    pool.extend(self._candidates(power[start : start + span], float(speed), start)[:4])
            pool.sort(key=lambda c: -c.score)
            if pool:
                best_score = max(best_score, pool[0].score)
            picked: list[_Candidate] = []
            for cand in pool:
                if len(picked) >= n_decode:
                    break
                if not any(_near(cand, p) for p in picked):
                    picked.append(cand)
            hyps = [h for cand in picked for h in self._hypotheses(cand)]
            hyps.sort(key=lambda h: -h.agreement)
            if hyps and hyps[0].agreement > best_agreement:
                best_agreement = hyps[0].agreement
                self.guess = coding.bits_to_int((hyps[0].bits ^ self.layout.scrambler)[: coding.PAYLOAD_BITS])
            for rank, hyp in enumerate(hyps[: len(LIST_SIZES)]):
                seen = {m.tobytes() for m in checked}
                for bits in coding.list_viterbi_decode(hyp.soft, coding.MESSAGE_BITS, LIST_SIZES[rank]):
                    if attempts >= budget:
                        break
                    if bits.tobytes() in seen:
                        continue
                    attempts += 1
                    checked.append(bits)
                    payload = coding.check_message(bits, self.layout.scrambler)
                    if payload is not None:
                        coded = 1.0 - 2.0 * coding.conv_encode(bits)
                        return self._result(replace(hyp, bits=bits, coded=coded), payload, attempts)
        return Detection(
            present=False, confidence=0.0, payload=None, bit_errors=None, sync_score=best_score, attempts=attempts
        )

    def _candidates(self, power: NDArray[np.float32], speed: float, start: int) -> list[_Candidate]:
        """The best alignments at one speed in one window, strongest sync first."""
        env = _band_energy(power, _band_edges(self.n_fft, ANALYSIS_RATE, speed))  # (4 ms frames, bands)
        n_hops = int((len(env) - 1) * speed / self.SUBS) - 1
        if n_hops < QUAD_HOPS + SLOT_HOPS:
            return []
        # Noise floor per band from 64 ms sums of the envelope: the 10th percentile over the window.
        csum = np.cumsum(env, axis=0, dtype=np.float64)
        slot_env = (csum[SLOT_HOPS * self.SUBS :] - csum[: -SLOT_HOPS * self.SUBS]) / self.SUBS
        floor = np.percentile(slot_env[:: self.SUBS], FLOOR_PCT, axis=0) + 1e-12 * (float(slot_env.max()) + _EPS)
        out: list[_Candidate] = []
        hops = np.arange(n_hops)
        for sub in range(self.SUBS):
            if speed == 1.0:
                hop_env = env[sub :: self.SUBS][:n_hops]
            else:
                pos = (hops * self.SUBS + sub) / speed
                i0 = pos.astype(np.int64)
                frac = (pos - i0)[:, None].astype(np.float32)
                hop_env = env[i0] * (1 - frac) + env[np.minimum(i0 + 1, len(env) - 1)] * frac
            if self.DEREVERB > 0:
                late = np.zeros_like(hop_env)
                late[self.DEREVERB_LAG :] = hop_env[: -self.DEREVERB_LAG] * self.DEREVERB
                hop_env = np.maximum(hop_env - late, 0.1 * hop_env)
            readings = self._readings(hop_env, floor)
            if readings is None:
                continue
            folded = self._fold(readings)
            scores = self._sync_scores(folded)
            for phase in _peaks(scores, 2):
                out.append(_Candidate(float(scores[phase]), speed, sub, int(phase), start, folded, readings))
        out.sort(key=lambda c: -c.score)
        return out

    def _readings(self, hop_env: NDArray[np.float32], floor: F64) -> F64 | None:
        """Weighted, soft-limited quad readings for a quad starting at every hop: (hops, rows)."""
        n = hop_env.shape[0]
        if n < QUAD_HOPS + 1:
            return None
        csum = np.concatenate([np.zeros((1, N_BANDS)), np.cumsum(hop_env, axis=0, dtype=np.float64)])
        if PATTERN == "quad":
            slot = csum[SLOT_HOPS:] - csum[:-SLOT_HOPS]  # energy of the slot starting at each hop
            logs = np.log(slot + _EPS)
            snr = np.maximum(slot / floor - 1.0, 0.0)
            rel = (snr / (1.0 + snr)) ** REL_POW
            t = slot.shape[0] - SLOT_HOPS
            a, b = logs[:t], logs[SLOT_HOPS:]
            q = (a[:, 0::2] - a[:, 1::2]) - (b[:, 0::2] - b[:, 1::2])
            ra, rb = rel[:t], rel[SLOT_HOPS:]
            if WEIGHT == "min":
                w = np.minimum(np.minimum(ra[:, 0::2], ra[:, 1::2]), np.minimum(rb[:, 0::2], rb[:, 1::2]))
            elif WEIGHT == "mean":
                w = (ra[:, 0::2] + ra[:, 1::2] + rb[:, 0::2] + rb[:, 1::2]) / 4
            elif WEIGHT == "prod":
                w = ra[:, 0::2] * ra[:, 1::2] * rb[:, 0::2] * rb[:, 1::2]
            else:
                w = np.ones_like(ra[:, 0::2])
            return self.CLIP * np.tanh(q / self.CLIP) * w
        col = csum[QUAD_HOPS:] - csum[:-QUAD_HOPS]  # energy of the two-slot column starting at each hop
        logs = np.log(col + _EPS)
        snr = np.maximum(col / (2.0 * floor) - 1.0, 0.0)
        rel = snr / (1.0 + snr)
        q = _minus_local_mean(logs[:, 0::2] - logs[:, 1::2], QUAD_HOPS)
        w = np.minimum(rel[:, 0::2], rel[:, 1::2]) if WEIGHT == "min" else (rel[:, 0::2] + rel[:, 1::2]) / 2
        return self.CLIP * np.tanh(q / self.CLIP) * w

    @staticmethod
    def _fold(readings: F64) -> F64:
        """Readings summed modulo the frame: (rows, FRAME_HOPS)."""
        t = readings.shape[0]
        pad = (-t) % FRAME_HOPS
        q = np.concatenate([readings, np.zeros((pad, QUAD_ROWS))]) if pad else readings
        return q.reshape(-1, FRAME_HOPS, QUAD_ROWS).sum(axis=0).T

    def _sync_scores(self, folded: F64) -> F64:
        """Normalised correlation with the sync pattern for every phase (hop) of the frame."""
        lay = self.layout
        vals = folded[lay.sync_rows[None, :], self._sync_u % FRAME_HOPS]
        norm = math.sqrt(N_SYNC * float(np.mean(folded**2)) + _EPS)
        return (vals @ lay.sync_chips) / norm

    def _quads(self, folded_cols: F64) -> F64:
        return folded_cols[self.layout.data_rows, self.layout.data_cols]

    def _hypothesis(self, cand: _Candidate, folded_cols: F64) -> _Hypothesis:
        """Viterbi-decode one (rows, cols) fold and score the whole frame's agreement with it."""
        lay = self.layout
        soft = self._quads(folded_cols)
        bits = coding.viterbi_decode(soft, coding.MESSAGE_BITS)
        coded = 1.0 - 2.0 * coding.conv_encode(bits)
        sync = folded_cols[lay.sync_rows, lay.sync_cols]
        agree = float(soft @ coded + sync @ lay.sync_chips)
        total = float(np.sum(np.abs(soft)) + np.sum(np.abs(sync))) + _EPS
        return _Hypothesis(cand, bits, soft, coded, agree / total)

    def _hypotheses(self, cand: _Candidate) -> list[_Hypothesis]:
        """The plain fold, then a re-weighted fold guided by the first decode.

        Decision-directed re-weighting: with the first decode as a reference pattern, each band pair
        (row) is scaled by its measured reliability (mean over variance of the agreeing readings, i.e. a
        log-likelihood ratio scale), and for longer inputs each repetition of the frame by how well it
        agrees, so marked audio inside a longer unmarked recording is not drowned out.
        """
        lay = self.layout
        cols = (cand.phase + np.arange(QUAD_COLS) * QUAD_HOPS) % FRAME_HOPS
        first = self._hypothesis(cand, cand.folded[:, cols])
        reference = np.zeros((QUAD_ROWS, QUAD_COLS))
        reference[lay.sync_rows, lay.sync_cols] = lay.sync_chips
        reference[lay.data_rows, lay.data_cols] = first.coded
        m = np.arange(-(cand.phase // QUAD_HOPS), (cand.readings.shape[0] - 1 - cand.phase) // QUAD_HOPS + 1)
        vals = cand.readings[cand.phase + m * QUAD_HOPS]  # (quads in time, rows)
        col, rep = m % QUAD_COLS, m // QUAD_COLS
        agreeing = vals * reference[:, col].T
        rep = rep - rep.min()
        n_rep = int(rep.max()) + 1
        weight = np.ones(n_rep)
        if n_rep >= 3:
            corr = np.bincount(rep, agreeing.sum(axis=1), n_rep) / np.sqrt(
                np.bincount(rep, np.sum(vals**2, axis=1), n_rep) * N_QUADS + _EPS
            )
            weight = np.maximum(corr - 2.0 / math.sqrt(N_QUADS), 0.0)
            if not weight.any():
                return [first]
        w = weight[rep][:, None]
        mean = np.sum(agreeing * w, axis=0) / (np.sum(w) + _EPS)
        var = np.sum((agreeing - mean) ** 2 * w, axis=0) / (np.sum(w) + _EPS)
        scale = np.maximum(mean, 0.0) / (var + 1e-3)
        if not scale.any():
            return [first]
        folded = np.zeros((QUAD_COLS, QUAD_ROWS))
        np.add.at(folded, col, vals * w * scale[None, :])
        return [first, self._hypothesis(cand, folded.T)]

    def _result(self, hyp: _Hypothesis, payload: int, attempts: int) -> Detection:
        cand = hyp.cand
        errors = int(np.sum((hyp.soft < 0) != (hyp.coded < 0)))
        frame0 = cand.start * self.SUB + (cand.phase * self.HOP + cand.sub * self.SUB) / cand.speed
        return Detection(
            present=True,
            confidence=max(0.0, 1.0 - 2.0 * errors / coding.CODED_BITS),
            payload=payload,
            bit_errors=errors,
            sync_score=cand.score,
            speed=cand.speed,
            offset_s=frame0 / ANALYSIS_RATE,
            attempts=attempts,
            details={"agreement": round(hyp.agreement, 4)},
        )


@dataclass
class _Hypothesis:
    """One decoded reading of one alignment, before the CRC is looked at."""

    cand: _Candidate
    bits: coding.Bits
    soft: F64 = field(repr=False)
    coded: F64 = field(repr=False)
    agreement: float = 0.0


def _peaks(scores: F64, k: int) -> list[int]:
    """Indices of the k largest circular local maxima."""
    left, right = np.roll(scores, 1), np.roll(scores, -1)
    peaks = np.nonzero((scores >= left) & (scores >= right))[0]
    return [int(i) for i in peaks[np.argsort(-scores[peaks])][:k]]


def _near(a: _Candidate, b: _Candidate) -> bool:
    """Two candidates that are the same alignment for decoding purposes."""
    if a.start != b.start or abs(a.speed - b.speed) > 0.0035:
        return False
    period = FRAME_HOPS * _Detector.SUBS
    da = (a.phase * _Detector.SUBS + a.sub) - (b.phase * _Detector.SUBS + b.sub)
    da = (da + period // 2) % period - period // 2
    return abs(da) <= 4
