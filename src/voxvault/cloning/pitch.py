"""Pitch matching: a cloned voice speaks at the enrolled speaker's pitch, not its style's.

Kokoro predicts the F0 contour from the style, and every instant style lies near the five shipped
(Japanese, female) presets: measured on 21 English speakers, instant clones spoke 4-6 semitones above
the men they cloned (andrew 126 Hz -> 163 Hz, james 98 Hz -> 141 Hz). Neither the style map nor decoder
adaptation fixes that (the decoder never sees the predictor). So the graphs the engines run scale the
predicted F0 contour by a per-call factor (``engines/onnx_float.py``, ``PITCH_SCALE``), and a voice's
factor is the ratio of the speaker's median F0 to its clone's. The clone's median is predicted, not
spoken: :class:`PitchMap` is a ridge regression from the instant style's basis coordinates to the log
median F0 of the clone's speech, trained offline by ``bench/train_pitch_map.py`` on speech the engine
itself produced, and measured with the same pitch tracker as the speaker (``instant.f0_track``), so the
two medians are comparable. The factor travels with the voice's decoder deltas (one more per-call input),
so storage, sealing, rollback, erasure and serving are those of the deltas.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from voxvault.cloning.clone_embedding import (
    basis_point,
    held_out_scores,
    judged_rows,
    quadratic_features,
    ridge_solve,
)
from voxvault.cloning.instant import StyleBasis, f0_track
from voxvault.engines.base import FloatArray

PITCH_MAP_FILE = "pitch_map.npz"
#: the factor stays within an octave either way (a tracker's octave error must not make a voice absurd)
MAX_SEMITONES = 12.0
#: fewer voiced frames than this (10 ms each) and a recording's pitch is not trusted
MIN_VOICED_FRAMES = 50


def median_f0(audio: FloatArray, sample_rate: int) -> float | None:
    """Median F0 (Hz) of the voiced frames; None when too little is voiced to say."""
    f0 = f0_track(audio, sample_rate)
    if f0.size < MIN_VOICED_FRAMES:
        return None
    return float(np.median(f0))


@dataclass(frozen=True)
class PitchMap:
    weights: NDArray[np.float64]  # (features,): quadratic features of z -> log median F0 (Hz)
    size: int
    ridge: float
    basis_fingerprint: str = ""

    @classmethod
    def fit(cls, z: NDArray[Any], log_f0: NDArray[Any], ridge: float) -> PitchMap:
        w = ridge_solve(quadratic_features(z), log_f0, ridge)
        return cls(w, int(np.atleast_2d(z).shape[1]), float(ridge))

    @classmethod
    def fit_cv(
        cls,
        z: NDArray[Any],
        log_f0: NDArray[Any],
        ridges: tuple[float, ...] = (0.1, 0.3, 1, 3, 10, 30, 100),
        folds: int = 5,
        judged: NDArray[np.bool_] | None = None,
    ) -> tuple[PitchMap, dict[str, float]]:
        """The penalty with the smallest held-out error (semitones) over the ``judged`` rows."""

        def semitones(ridge: float, train: NDArray[np.bool_], test: NDArray[np.bool_]) -> NDArray[np.float64]:
            pred = cls.fit(z[train], log_f0[train], ridge).predict_log(z[test])
            return np.asarray(np.abs(pred - log_f0[test]) * 12 / np.log(2), dtype=np.float64)

        held_out = held_out_scores(len(z), ridges, semitones, folds, judged)
        scores = {r: (float(np.mean(e)), float(np.percentile(e, 95))) for r, e in held_out.items()}
        best = min(scores, key=lambda r: scores[r][0])
        spread = float(np.std(log_f0[judged_rows(len(z), judged)]) * 12 / np.log(2))
        report = {
            "ridge": best,
            "cv_error_semitones_mean": round(scores[best][0], 3),
            "cv_error_semitones_p95": round(scores[best][1], 3),
            "clone_f0_sd_semitones": round(spread, 3),
        }
        return cls.fit(z, log_f0, best), report

    def predict_log(self, z: NDArray[Any]) -> NDArray[np.float64]:
        zs = np.atleast_2d(np.asarray(z, dtype=np.float64))[:, : self.size]
        return np.asarray(quadratic_features(zs) @ self.weights, dtype=np.float64)

    def clone_f0(self, basis: StyleBasis, pack: FloatArray) -> float | None:
        """Predicted median F0 (Hz) of ``pack``'s speech; None when ``pack`` is not a point of ``basis``."""
        z = basis_point(basis, pack)
        return None if z is None else float(np.exp(self.predict_log(z)[0]))

    def scale(self, basis: StyleBasis, pack: FloatArray, speaker_f0: float | None) -> float | None:
        """The F0 factor that moves ``pack``'s clone to the speaker's median (within an octave)."""
        clone = self.clone_f0(basis, pack)
        if clone is None or speaker_f0 is None or not np.isfinite(speaker_f0) or speaker_f0 <= 0:
            return None
        semitones = float(np.clip(12 * np.log2(speaker_f0 / clone), -MAX_SEMITONES, MAX_SEMITONES))
        return float(2 ** (semitones / 12))

    def with_fingerprint(self, basis: str) -> PitchMap:
        return replace(self, basis_fingerprint=basis)

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(
            path,
            weights=self.weights.astype(np.float64),
            size=np.int64(self.size),
            ridge=np.float64(self.ridge),
            basis_fingerprint=np.array(self.basis_fingerprint),
        )

    @classmethod
    def load(cls, path: Path | None = None) -> PitchMap:
        source = path or Path(str(resources.files("voxvault.cloning").joinpath("data", PITCH_MAP_FILE)))
        with np.load(source, allow_pickle=False) as f:
            return cls(
                weights=np.asarray(f["weights"], dtype=np.float64),
                size=int(f["size"]),
                ridge=float(f["ridge"]),
                basis_fingerprint=str(f["basis_fingerprint"]),
            )
