"""Where the watermark lives: the time-frequency grid, the frame of quads and its keyed layout.

Grid. Audio is cut into 16 ms hops on an absolute grid that starts at sample 0 of the output. Two hops
make a 32 ms slot; 48 slots make a 1.536 s frame. 16 bands of ~194 Hz cover 312-3406 Hz, inside the
telephone band, so 8 kHz mu-law copies keep the whole mark.

Quads. A frame holds 8 x 24 quads: two adjacent bands x two adjacent slots. A quad carries one +-1 symbol
as the double difference of its four tiles' log energies (first band minus second band, first slot minus
second slot), which is blind to loudness, gain, fixed equalisation and slow spectral tilt. 24 quads per
frame carry a keyed sync pattern and 168 the 124 coded payload bits (44 of them twice); the frame
repeats for the whole output.

Why this size: a quad of 2 x 194 Hz x 2 x 32 ms keeps the harmonics of a voice from dominating it. With
narrower bands or longer slots, a high voice's harmonics (resolved, and moving as the pitch moves) make
the host's own quad values so large that the embedder cannot outweigh them audibly; Kokoro's clean
voices suffered most.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

import voxvault.engines.watermark.coding as coding

F64 = NDArray[np.float64]

HOP_S = 0.016
BIN_HZ = 31.25  # the STFT window is two hops long, so bins are 1 / 32 ms apart at any sample rate
N_BANDS = 16
SLOT_HOPS = 2
BAND_BINS = np.round(np.linspace(10, 109, N_BANDS + 1)).astype(np.int64)  # 16 bands of ~194 Hz, 312-3406 Hz
FRAME_HOPS = 96
FRAME_SLOTS = FRAME_HOPS // SLOT_HOPS
QUAD_ROWS = N_BANDS // 2
QUAD_COLS = FRAME_SLOTS // 2
QUAD_HOPS = 2 * SLOT_HOPS
N_QUADS = QUAD_ROWS * QUAD_COLS
N_SYNC = QUAD_COLS  # one sync quad per column on average (at least one in each)
N_DATA = N_QUADS - N_SYNC
assert N_DATA >= coding.CODED_BITS, "the frame must hold every coded bit at least once"
FRAME_SECONDS = FRAME_HOPS * HOP_S
EPS = 1e-10

# Strength per band pair, low to high. The low bands are where a level change is most audible (one
# band is about one critical band there) and the upper ones where it is least, so the mark leans upward.
_ROW_CENTRES = (BAND_BINS[0:-1:2] + BAND_BINS[2::2]) / 2 * BIN_HZ
ROW_SCALE = np.interp(_ROW_CENTRES, [400.0, 3000.0], [0.5, 1.5])


@dataclass(frozen=True)
class Layout:
    """The keyed frame layout: which quad carries sync and which carries which coded bit."""

    sync_rows: NDArray[np.int64]
    sync_cols: NDArray[np.int64]
    sync_chips: F64
    data_rows: NDArray[np.int64]
    data_cols: NDArray[np.int64]
    data_bit: NDArray[np.int64]  # which coded bit each data quad carries
    scrambler: coding.Bits

    @classmethod
    def from_key(cls, key: bytes) -> Layout:
        seed = int.from_bytes(hashlib.sha256(b"voxvault-layout:" + key).digest()[:8], "big")
        rng = np.random.default_rng(seed)
        # Sync quads: at least one in every column (any stretch of audio sees some), rows balanced.
        cols = np.concatenate(
            [np.arange(QUAD_COLS), rng.choice(QUAD_COLS, N_SYNC - QUAD_COLS, replace=False)]
        )
        rows = rng.permutation(np.resize(rng.permutation(QUAD_ROWS), N_SYNC))
        taken: set[tuple[int, int]] = set()
        for r, c in zip(rows.tolist(), cols.tolist(), strict=True):
            while (r, c) in taken:  # a clash moves to the next free row of the same column
                r = (r + 1) % QUAD_ROWS
            taken.add((r, c))
        sync = sorted(taken)
        free = [(r, c) for r in range(QUAD_ROWS) for c in range(QUAD_COLS) if (r, c) not in taken]
        data = [
            free[i] for i in rng.permutation(len(free))
        ]  # interleaver: coded bits scattered over the frame
        # Every coded bit gets one quad; spare quads repeat some bits (chosen at random, each at most once).
        extra = rng.permutation(coding.CODED_BITS)[: len(data) - coding.CODED_BITS]
        bit_of = np.concatenate([np.arange(coding.CODED_BITS), extra])[rng.permutation(len(data))]
        return cls(
            sync_rows=np.array([r for r, _ in sync]),
            sync_cols=np.array([c for _, c in sync]),
            sync_chips=rng.choice([-1.0, 1.0], size=len(sync)),
            data_rows=np.array([r for r, _ in data]),
            data_cols=np.array([c for _, c in data]),
            data_bit=bit_of.astype(np.int64),
            scrambler=rng.integers(0, 2, coding.MESSAGE_BITS).astype(np.uint8),
        )

    def symbols(self, payload: int) -> F64:
        """The +-1 symbol of every quad of a frame, shape (QUAD_ROWS, QUAD_COLS)."""
        return self.frame_pattern(coding.conv_encode(coding.message_bits(payload, self.scrambler)))

    def frame_pattern(self, coded: coding.Bits) -> F64:
        grid = np.zeros((QUAD_ROWS, QUAD_COLS))
        grid[self.sync_rows, self.sync_cols] = self.sync_chips
        grid[self.data_rows, self.data_cols] = 1.0 - 2.0 * coded[self.data_bit]
        return grid

    def coded_soft(self, folded_cols: F64) -> F64:
        """Soft value of every coded bit from a (rows, cols) fold: the sum over the quads that carry it."""
        units = folded_cols[self.data_rows, self.data_cols]
        return np.asarray(np.bincount(self.data_bit, units, coding.CODED_BITS), dtype=np.float64)


def sqrt_hann(n: int) -> NDArray[np.float32]:
    """Analysis and synthesis window: its square sums to one at 50% overlap."""
    return np.sqrt(0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n) / n)).astype(np.float32)


def band_edges(n_fft: int, sample_rate: float, scale: float = 1.0) -> F64:
    """Band edges as fractional FFT-bin positions (bin k spans k-0.5 .. k+0.5), frequencies x ``scale``."""
    return np.asarray((BAND_BINS - 0.5) * BIN_HZ * scale / (sample_rate / n_fft) + 0.5, dtype=np.float64)


def band_energy(power: NDArray[np.float32], edges: F64) -> F64:
    """Energy per band from a power spectrogram (frames, bins), fractional edges interpolated.

    Cumulative sums instead of a matrix product on purpose: the product is tiny, and a threaded BLAS on a
    busy machine spends longer waking threads than doing the arithmetic.
    """
    cum = np.concatenate([np.zeros((power.shape[0], 1)), np.cumsum(power, axis=1, dtype=np.float64)], axis=1)
    i = np.floor(edges).astype(np.int64)
    frac = edges - i
    at = cum[:, i] + frac[None, :] * power[:, np.minimum(i, power.shape[1] - 1)]
    return np.diff(at, axis=1)
