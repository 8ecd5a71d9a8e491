"""Instant clone: a learned mapping from a speaker's embedding and pitch statistics to a Kokoro style pack.

Kokoro speaks with a 256-d style chosen per token count from a (510, 256) pack. A clone's pack is written
as ``mean preset pack + offset``, where the offset (one 256-d row added to every row) lives in a small
basis: the principal directions of the shipped presets' rows around the mean pack, in units of their
standard deviation. So a clone is a point ``z`` (``BASIS_SIZE`` numbers) and ``z = 0`` is the average
preset. The mapping ``features -> z`` is a ridge regression learned offline (``bench/train_style_map.py``)
from speech the engine itself produced for sampled ``z``: synthesise, embed, learn the inverse. Its
weights ship in ``cloning/data/style_map.npz``; applying it is a matrix product (well under a second).
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import soxr
from numpy.typing import NDArray

from voxvault.engines.base import FloatArray

BASIS_SIZE = 24
NATURAL_RADIUS = 2.5  # |z_k| beyond this many standard deviations is outside the presets' region
FEATURE_CLIP = 4.0  # standardised features beyond this are outside what the map was trained on
MAP_FILE = "style_map.npz"
F0_RATE = 16_000
F0_MIN, F0_MAX = 60.0, 420.0


@dataclass(frozen=True)
class StyleBasis:
    """Mean preset pack plus principal directions of the presets' rows (scaled to unit variance)."""

    mean_pack: NDArray[np.float32]  # (510, 256)
    directions: NDArray[np.float32]  # (k, 256), each row = component * its standard deviation

    @classmethod
    def from_presets(cls, presets: dict[str, FloatArray], size: int = BASIS_SIZE) -> StyleBasis:
        packs = np.stack([_as_pack(p) for _, p in sorted(presets.items())]).astype(np.float64)
        mean_pack = packs.mean(axis=0)
        offsets = (packs - mean_pack).reshape(-1, packs.shape[-1])
        _, sing, vt = np.linalg.svd(offsets, full_matrices=False)
        std = sing / np.sqrt(max(offsets.shape[0] - 1, 1))
        k = min(size, vt.shape[0])
        return cls(mean_pack.astype(np.float32), (vt[:k] * std[:k, None]).astype(np.float32))

    @property
    def size(self) -> int:
        return int(self.directions.shape[0])

    def pack(self, z: NDArray[Any]) -> NDArray[np.float32]:
        """The style pack for basis coordinates ``z`` (clipped to the natural region)."""
        coords = np.clip(
            np.asarray(z, dtype=np.float32).reshape(-1)[: self.size], -NATURAL_RADIUS, NATURAL_RADIUS
        )
        return (self.mean_pack + coords @ self.directions).astype(np.float32)

    def coords(self, pack: FloatArray) -> NDArray[np.float32]:
        """Least-squares basis coordinates of a pack's mean offset (e.g. a preset's own position)."""
        offset = (_as_pack(pack) - self.mean_pack).mean(axis=0)
        sol, *_ = np.linalg.lstsq(self.directions.T.astype(np.float64), offset.astype(np.float64), rcond=None)
        return sol.astype(np.float32)


def _as_pack(style: FloatArray) -> NDArray[np.float32]:
    arr = np.asarray(style, dtype=np.float32)
    if arr.ndim == 3 and arr.shape[1] == 1:
        arr = arr[:, 0, :]
    return arr


def naturalness_penalty(z: NDArray[Any]) -> float:
    """Mean squared distance from the presets' centre, in standard deviations (0 at the average preset)."""
    coords = np.asarray(z, dtype=np.float64)
    return float(np.mean(coords**2))


def f0_track(audio: FloatArray, sample_rate: int) -> NDArray[np.float64]:
    """Voiced-frame F0 in Hz (normalised autocorrelation, 40 ms frames, 10 ms hop); unvoiced dropped."""
    wav = np.asarray(audio, dtype=np.float32).reshape(-1)
    if sample_rate != F0_RATE:
        wav = soxr.resample(wav, sample_rate, F0_RATE)
    frame, hop = int(0.04 * F0_RATE), int(0.01 * F0_RATE)
    if wav.size < frame:
        return np.zeros(0)
    n = 1 + (wav.size - frame) // hop
    idx = np.arange(frame)[None, :] + hop * np.arange(n)[:, None]
    frames = wav[idx].astype(np.float64)
    frames -= frames.mean(axis=1, keepdims=True)
    energy = (frames**2).sum(axis=1)
    loud = energy > 1e-3 * max(float(energy.max()), 1e-12)
    spec = np.fft.rfft(frames * np.hanning(frame), n=2 * frame, axis=1)
    ac = np.fft.irfft(np.abs(spec) ** 2, axis=1)[:, :frame]
    ac /= np.maximum(ac[:, :1], 1e-12)
    lo, hi = int(F0_RATE / F0_MAX), int(F0_RATE / F0_MIN)
    lag = lo + np.argmax(ac[:, lo:hi], axis=1)
    peak = ac[np.arange(n), lag]
    voiced = loud & (peak > 0.45)
    return np.asarray(F0_RATE / lag[voiced], dtype=np.float64)


def prosody_features(audio: FloatArray | None, sample_rate: int = F0_RATE) -> NDArray[np.float32]:
    """[log F0 median, log F0 range (p90/p10), voiced share]; zeros-ish defaults without audio."""
    if audio is None or np.asarray(audio).size == 0:
        return np.array([np.log(160.0), 0.5, 0.5], dtype=np.float32)
    f0 = f0_track(audio, sample_rate)
    total = max(1, (np.asarray(audio).size - int(0.04 * sample_rate)) // int(0.01 * sample_rate) + 1)
    if f0.size < 5:
        return np.array([np.log(160.0), 0.5, f0.size / total], dtype=np.float32)
    p10, p50, p90 = np.percentile(f0, [10, 50, 90])
    return np.array([np.log(p50), np.log(p90 / p10), min(1.0, f0.size / total)], dtype=np.float32)


@dataclass(frozen=True)
class StyleMap:
    """Ridge regression ``[embedding, prosody] -> z`` with standardised inputs."""

    x_mean: NDArray[np.float32]
    x_std: NDArray[np.float32]
    weights: NDArray[np.float32]  # (d_in + 1, k)
    meta: dict[str, float]

    @staticmethod
    def features(
        embedding: FloatArray, audio: FloatArray | None, sample_rate: int = F0_RATE
    ) -> NDArray[np.float32]:
        emb = np.asarray(embedding, dtype=np.float32).reshape(-1)
        emb = emb / max(float(np.linalg.norm(emb)), 1e-12)
        return np.concatenate([emb, prosody_features(audio, sample_rate)]).astype(np.float32)

    @classmethod
    def fit(cls, x: NDArray[Any], z: NDArray[Any], ridge: float = 1.0) -> StyleMap:
        xs = np.asarray(x, dtype=np.float64)
        mean, std = xs.mean(axis=0), xs.std(axis=0)
        # Features nearly constant on synthetic speech (GE2E has many near-zero dims) must not blow up on
        # real speech: floor every scale at a quarter of the median one.
        std = np.maximum(std, 0.25 * float(np.median(std)) + 1e-6)
        design = np.hstack([(xs - mean) / std, np.ones((xs.shape[0], 1))])
        reg = ridge * np.eye(design.shape[1])
        reg[-1, -1] = 0.0
        w = np.linalg.solve(design.T @ design + reg, design.T @ np.asarray(z, dtype=np.float64))
        return cls(mean.astype(np.float32), std.astype(np.float32), w.astype(np.float32), {"ridge": ridge})

    @classmethod
    def fit_cv(
        cls,
        x: NDArray[Any],
        z: NDArray[Any],
        ridges: tuple[float, ...] = (10, 30, 100, 300, 1000, 3000),
        folds: int = 5,
    ) -> StyleMap:
        """Ridge per output coordinate, chosen by k-fold cross-validation; coordinates the features cannot
        predict (best held-out R^2 <= 0) get only their mean (the map leaves them at the presets' centre)."""
        xs, zs = np.asarray(x, dtype=np.float64), np.asarray(z, dtype=np.float64)
        fold_of = np.arange(len(xs)) % folds
        errors = np.zeros((len(ridges), zs.shape[1]))
        for r, ridge in enumerate(ridges):
            for f in range(folds):
                train, test = fold_of != f, fold_of == f
                pred = cls.fit(xs[train], zs[train], ridge).predict(xs[test])
                errors[r] += ((pred - zs[test]) ** 2).sum(axis=0)
        baseline = ((zs - zs.mean(axis=0)) ** 2).sum(axis=0)
        best = errors.argmin(axis=0)
        r2 = 1 - errors[best, np.arange(zs.shape[1])] / np.maximum(baseline, 1e-12)
        weights = np.zeros((xs.shape[1] + 1, zs.shape[1]), dtype=np.float32)
        fitted = {ridge: cls.fit(xs, zs, ridge) for ridge in set(ridges[b] for b in best)}
        for k in range(zs.shape[1]):
            if r2[k] > 0:
                weights[:, k] = fitted[ridges[best[k]]].weights[:, k]
            else:
                weights[-1, k] = zs[:, k].mean()
        any_fit = next(iter(fitted.values()))
        meta = {"cv_r2_mean": float(np.clip(r2, 0, None).mean()), "predictable_dims": float((r2 > 0).sum())}
        return cls(any_fit.x_mean, any_fit.x_std, weights, meta)

    def predict(self, x: NDArray[Any]) -> NDArray[np.float32]:
        xs = np.clip(
            (np.atleast_2d(np.asarray(x, dtype=np.float32)) - self.x_mean) / self.x_std,
            -FEATURE_CLIP,
            FEATURE_CLIP,
        )
        design = np.hstack([xs, np.ones((xs.shape[0], 1), dtype=np.float32)])
        out = design @ self.weights
        return np.asarray(out[0] if np.asarray(x).ndim == 1 else out, dtype=np.float32)

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        meta_keys = sorted(self.meta)
        np.savez_compressed(
            path,
            x_mean=self.x_mean,
            x_std=self.x_std,
            weights=self.weights,
            meta_keys=np.array(meta_keys),
            meta_values=np.array([self.meta[k] for k in meta_keys], dtype=np.float64),
        )

    @classmethod
    def load(cls, path: Path | None = None) -> StyleMap:
        """The trained map (the shipped one by default); FileNotFoundError when none is there."""
        if path is None:
            ref = resources.files("voxvault.cloning") / "data" / MAP_FILE
            if not ref.is_file():
                raise FileNotFoundError(MAP_FILE)
            with resources.as_file(ref) as real:
                return cls.load(Path(real))
        with np.load(path, allow_pickle=False) as npz:
            meta = {str(k): float(v) for k, v in zip(npz["meta_keys"], npz["meta_values"], strict=True)}
            return cls(npz["x_mean"], npz["x_std"], npz["weights"], meta)


def instant_style(
    basis: StyleBasis, style_map: StyleMap, embedding: FloatArray, audio: FloatArray | None, sample_rate: int
) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
    """(style pack, basis coordinates) for a speaker: the instant clone."""
    z = style_map.predict(StyleMap.features(embedding, audio, sample_rate))
    z = np.clip(z[: basis.size], -NATURAL_RADIUS, NATURAL_RADIUS).astype(np.float32)
    return basis.pack(z), z
