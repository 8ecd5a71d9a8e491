"""Embedding: scale tile energies so that every quad reads its symbol with a margin.

Informed embedding. The host's own reading of each quad is measured first; the quad is then moved only
as far as needed to read ``symbol * target`` (nothing where speech already leans the right way, up to
``max_depth`` where it leans hard the wrong way). The change is multiplicative per tile, so the mark
follows the speech, scales with it and vanishes in silence. A second pass measures what was realised
(the STFT smears a gain step over neighbouring frames and bins), tops up quads that fell short, and hands
what capped quads still lack to the other repetitions of the same quad in view.

Streaming. Only STFT frames wholly inside a chunk are touched, and a quad is fitted to the host only when
all its frames are in the chunk (otherwise it gets the fixed ``target`` depth), so nothing carries over
between chunks and chunk lengths are kept exactly. Whole-file marking is the one-chunk case.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.fft as sfft
from numpy.typing import NDArray

from voxvault.engines.watermark.layout import (
    EPS,
    F64,
    HOP_S,
    N_BANDS,
    N_QUADS,
    QUAD_COLS,
    QUAD_HOPS,
    QUAD_ROWS,
    ROW_SCALE,
    SLOT_HOPS,
    band_edges,
    sqrt_hann,
)
from voxvault.errors import VoxError

FloatArray = NDArray[np.float32]
Int = NDArray[np.int64]

# Gains are smoothed across frequency (two passes of a 1-2-1 kernel): a gain that jumps at a band edge
# is a long filter, which the short STFT frame wraps around into audible pre-echo; PESQ rises ~0.2.
_SMOOTH_PASSES = 2


@dataclass(frozen=True)
class Strength:
    """How hard to mark, in the detector's units (nepers of a quad's log-energy double difference)."""

    target: float = 3.4
    max_depth: float = 4.6
    refine_passes: int = 1


class StreamEmbedder:
    """Marks one output, chunk by chunk: ``process(chunk, offset)`` with ``offset`` the absolute sample
    index of the chunk's first sample. Output length always equals input length."""

    def __init__(self, symbols: F64, sample_rate: int, strength: Strength) -> None:
        if not isinstance(sample_rate, int | np.integer) or not 8000 <= int(sample_rate) <= 384000:
            raise VoxError("invalid_sample_rate", "the watermark embeds into audio sampled at 8-384 kHz")
        self.symbols = symbols
        self.sample_rate = int(sample_rate)
        self.strength = strength
        self.hop = int(round(HOP_S * sample_rate))
        self.n_fft = 2 * self.hop
        self.window = sqrt_hann(self.n_fft)
        edges = np.round(band_edges(self.n_fft, sample_rate)).astype(np.int64)  # whole bins per band
        self.lo, self.hi = int(edges[0]), int(edges[-1])
        self.band_starts = edges[:-1] - self.lo
        self.band_of_bin = np.repeat(np.arange(N_BANDS), np.diff(edges))
        self.band_sign = np.where(np.arange(N_BANDS) % 2 == 0, 1.0, -1.0)

    def process(self, chunk: FloatArray, offset: int) -> FloatArray:
        x = np.asarray(chunk, dtype=np.float32)
        if x.ndim != 1:
            raise VoxError("invalid_audio", "the watermark embeds into mono audio")
        if offset < 0:
            raise ValueError("offset must be a sample index >= 0")
        if not np.all(np.isfinite(x)):
            raise VoxError("invalid_audio", "audio contains NaN or infinite samples")
        hop, n_fft = self.hop, self.n_fft
        first = -(-offset // hop)
        last = (offset + len(x) - n_fft) // hop  # frames wholly inside this chunk, inclusive
        if last < first:
            return x.copy()
        frames = np.arange(first, last + 1)
        starts = frames * hop - offset
        idx = starts[:, None] + np.arange(n_fft)[None, :]
        spec = sfft.rfft(x[idx] * self.window, axis=1)[:, self.lo : self.hi]
        cols, col_of_frame, half, informed, symbol = self._plan(frames)
        s = self.strength
        target = s.target * ROW_SCALE[None, :]
        cap = s.max_depth * ROW_SCALE[None, :]
        host = self._readings(spec, col_of_frame, half)
        depth = np.where(informed, np.clip(target - symbol * host, 0.0, cap), target)
        y = self._apply(x, spec, starts, col_of_frame, half, symbol * depth)
        for _ in range(s.refine_passes if informed.any() else 0):
            got = self._readings(
                sfft.rfft(y[idx] * self.window, axis=1)[:, self.lo : self.hi], col_of_frame, half
            )
            short = np.maximum(target - symbol * got, 0.0) * informed
            # What capped quads still lack is asked of the other repetitions of the same quad in view:
            # the detector adds repetitions up, so their sum is what has to clear the margin.
            capped = informed & (depth >= cap - 1e-9)
            free = informed & ~capped
            pos = (cols % QUAD_COLS)[:, None] * QUAD_ROWS + np.arange(QUAD_ROWS)[None, :]
            lack = np.bincount(pos[capped], short[capped], N_QUADS)
            n_free = np.bincount(pos[free], minlength=N_QUADS)
            short = short + np.where(free, lack[pos] / np.maximum(n_free[pos], 1), 0.0)
            depth = np.where(informed, np.clip(depth + short, 0.0, cap), depth)
            y = self._apply(x, spec, starts, col_of_frame, half, symbol * depth)
        return y

    def _plan(self, frames: Int) -> tuple[Int, Int, Int, NDArray[np.bool_], F64]:
        """Quad columns in view (absolute), each frame's column (local index) and slot half, which quads
        are informed (all their frames in view), and every quad's symbol, both (cols, rows)."""
        slot = frames // SLOT_HOPS
        cols, col_of_frame = np.unique(slot // 2, return_inverse=True)
        first_frame = cols * QUAD_HOPS
        whole = (first_frame >= frames[0]) & (first_frame + QUAD_HOPS - 1 <= frames[-1])
        informed = np.repeat(whole[:, None], QUAD_ROWS, axis=1)
        symbol = self.symbols[:, cols % QUAD_COLS].T
        return cols, col_of_frame.reshape(-1), slot % 2, informed, symbol

    def _readings(self, spec: NDArray[np.complex64], col_of_frame: Int, half: Int) -> F64:
        """What the detector reads from every quad in view, (cols, rows)."""
        power = np.add.reduceat(spec.real**2 + spec.imag**2, self.band_starts, axis=1)  # (frames, bands)
        n_cols = int(col_of_frame[-1]) + 1
        energy = np.zeros((n_cols * 2, N_BANDS))
        np.add.at(energy, col_of_frame * 2 + half, power)
        logs = np.log(energy.reshape(n_cols, 2, N_BANDS) + EPS)
        return (logs[:, 0, 0::2] - logs[:, 0, 1::2]) - (logs[:, 1, 0::2] - logs[:, 1, 1::2])

    def _apply(
        self,
        x: FloatArray,
        spec: NDArray[np.complex64],
        starts: Int,
        col_of_frame: Int,
        half: Int,
        signed: F64,
    ) -> FloatArray:
        """x plus the overlap-added change of every frame. A quad moves by ``depth`` when each of its four
        tiles' log energy moves by depth/4 (amplitude by depth/8) in the direction of its sign."""
        per_band = np.repeat(signed, 2, axis=1)[col_of_frame]  # (frames, bands)
        time_sign = 1.0 - 2.0 * half
        log_amp = per_band * self.band_sign[None, :] * time_sign[:, None] / 8.0
        per_bin = log_amp[:, self.band_of_bin]
        for _ in range(_SMOOTH_PASSES):
            padded = np.concatenate([per_bin[:, :1], per_bin, per_bin[:, -1:]], axis=1)
            per_bin = 0.25 * (padded[:, :-2] + padded[:, 2:]) + 0.5 * padded[:, 1:-1]
        full = np.zeros((len(starts), self.n_fft // 2 + 1), dtype=np.complex64)
        full[:, self.lo : self.hi] = spec * np.expm1(per_bin).astype(np.float32)
        delta = sfft.irfft(full, n=self.n_fft, axis=1) * self.window
        y = x.copy()
        for parity in (0, 1):  # frames of one parity are n_fft apart: they tile without overlapping
            sel = delta[parity::2]
            if len(sel):
                s0 = int(starts[parity])
                y[s0 : s0 + sel.size] += sel.reshape(-1)
        np.clip(y, -1.0, 1.0, out=y)
        return y
