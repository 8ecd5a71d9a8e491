"""Issue 22 research round 1, measured and not kept: a per-voice spectral match after the vocoder (no
speaker encoder is in it, so both judges can grade it). Used by ``clone_research.py`` (docs/cloning.md).

Kokoro's clones keep the presets' long-term spectrum (their studio's microphone and room, the presets' vocal
tracts) whatever the style says. Two signal-level corrections, each fitted at enrollment from the speaker's
speech and the clone's own speech of a fixed sentence:

- ``Equalizer``: the smoothed long-term-average spectrum (LTAS) difference, speaker minus clone, in dB on a
  log-frequency grid, applied to the clone's output as a linear-phase FIR (research round 1,
  docs/cloning.md).
- ``formant_ratio``: the frequency scale that best aligns the clone's LTAS with the speaker's (a vocal-tract
  length difference), applied by ``voxvault.cloning.formant.speak``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy import signal

from voxvault.engines.base import FloatArray

#: the gain grid: log-spaced centre frequencies (Hz); below and above it the end values hold
GRID_HZ = np.geomspace(80.0, 7600.0, 64)
#: frames quieter than this many dB below the loud frames' level are left out of the LTAS (pauses)
FLOOR_DB = 35.0


def ltas_db(
    audio: FloatArray, rate: int, n_fft: int = 1024
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """(bin frequencies in Hz, long-term average power spectrum in dB) over the clip's louder frames."""
    x = np.asarray(audio, dtype=np.float64).reshape(-1)
    if x.size < n_fft:
        x = np.pad(x, (0, n_fft - x.size))
    freqs, _, spec = signal.stft(x, rate, nperseg=n_fft, noverlap=3 * n_fft // 4, boundary=None)
    power = np.abs(spec) ** 2
    energy = 10 * np.log10(power.sum(axis=0) + 1e-20)
    loud = energy >= np.percentile(energy, 95) - FLOOR_DB
    return freqs, 10 * np.log10(power[:, loud].mean(axis=1) + 1e-20)


def on_grid(freqs: NDArray[np.float64], db: NDArray[np.float64], octaves: float) -> NDArray[np.float64]:
    """``db`` smoothed on a log-frequency axis (Gaussian of ``octaves`` standard deviation), read at
    ``GRID_HZ``: power averaged in each band, so a formant counts, a harmonic does not."""
    keep = freqs > 0
    logf = np.log2(freqs[keep])
    power = 10 ** (db[keep] / 10)
    out = np.empty(GRID_HZ.size)
    for i, centre in enumerate(np.log2(GRID_HZ)):
        w = np.exp(-0.5 * ((logf - centre) / octaves) ** 2)
        out[i] = 10 * np.log10(float(w @ power) / float(w.sum()) + 1e-20)
    return out


@dataclass(frozen=True)
class Equalizer:
    """Gains (dB) at ``GRID_HZ``: what the clone's output is multiplied by, per frequency."""

    gains_db: NDArray[np.float64]

    @classmethod
    def fit(
        cls,
        speaker: FloatArray,
        speaker_rate: int,
        clone: FloatArray,
        clone_rate: int,
        *,
        octaves: float = 1 / 6,
        strength: float = 1.0,
        max_db: float = 12.0,
    ) -> Equalizer:
        """Speaker LTAS minus clone LTAS, each smoothed over ``octaves``, times ``strength``, its mean removed
        (level is not identity), clipped to +-``max_db``."""
        target = on_grid(*ltas_db(speaker, speaker_rate), octaves)
        current = on_grid(*ltas_db(clone, clone_rate), octaves)
        gains = strength * (target - current)
        gains -= gains.mean()
        return cls(np.clip(gains, -max_db, max_db))

    def fir(self, rate: int, taps: int = 511) -> NDArray[np.float64]:
        """A linear-phase FIR with these gains at ``rate`` (odd ``taps``: delay (taps - 1) / 2 samples)."""
        nyquist = rate / 2
        points = np.concatenate([[0.0], GRID_HZ[nyquist > GRID_HZ], [nyquist]])
        gains = np.interp(points, GRID_HZ, self.gains_db)
        return signal.firwin2(taps, points / nyquist, 10 ** (gains / 20), window="hann")

    def apply(self, audio: FloatArray, rate: int) -> NDArray[np.float32]:
        """``audio`` through the filter, at its own RMS (same length, no delay)."""
        x = np.asarray(audio, dtype=np.float64).reshape(-1)
        y = signal.oaconvolve(x, self.fir(rate), mode="same")
        rms_in, rms_out = float(np.sqrt(np.mean(x**2))), float(np.sqrt(np.mean(y**2)))
        if rms_out > 0:
            y *= rms_in / rms_out
        return y.astype(np.float32)


def formant_ratio(
    speaker: FloatArray,
    speaker_rate: int,
    clone: FloatArray,
    clone_rate: int,
    *,
    low: float = 0.85,
    high: float = 1.18,
    band: tuple[float, float] = (250.0, 5000.0),
) -> float:
    """The factor r that best aligns the clone's LTAS, scaled in frequency by r, with the speaker's (Pearson
    correlation over ``band`` on a log-frequency axis): > 1, the speaker's formants are higher."""
    grid = np.geomspace(band[0], band[1], 96)
    fs, ds = ltas_db(speaker, speaker_rate)
    fc, dc = ltas_db(clone, clone_rate)
    ts = _smooth_log(fs, ds, grid)
    best, best_r = -np.inf, 1.0
    for r in np.arange(low, high + 1e-9, 0.01):
        cc = _smooth_log(fc * r, dc, grid)
        corr = float(np.corrcoef(ts, cc)[0, 1])
        if corr > best:
            best, best_r = corr, float(r)
    return best_r


def _smooth_log(
    freqs: NDArray[np.float64], db: NDArray[np.float64], grid: NDArray[np.float64]
) -> NDArray[np.float64]:
    keep = freqs > 0
    logf = np.log2(freqs[keep])
    power = 10 ** (db[keep] / 10)
    out = np.empty(grid.size)
    for i, centre in enumerate(np.log2(grid)):
        w = np.exp(-0.5 * ((logf - centre) / (1 / 8)) ** 2)
        out[i] = 10 * np.log10(float(w @ power) / float(w.sum()) + 1e-20)
    return out
