"""Clone embedding map: how an instant style sounds to GE2E, predicted instead of spoken.

The instant decoder step (``cloning/instant_decoder.py``) starts from the GE2E embedding of the Jacobian's
two sentences spoken in the voice's instant style. Speaking them is the whole cost of an instant clone
(about 5 s of audio, 0.5-5 s of CPU depending on the machine). An instant style is a point ``z`` of the
style basis (``cloning/instant.py``), so that embedding is a fixed, smooth function of ``z`` for a given
model and sentences: ``bench/train_clone_embedding_map.py`` samples styles, speaks and embeds them, and
fits a ridge regression from ``[z, z_i z_j, 1]`` to the embedding; since pitch matching
(``cloning/pitch.py``) the voice's log pitch factor is a further input, so the step starts from the voice
as it will sound. Predicting it takes well under a millisecond. The map carries fingerprints of the style
basis and the Jacobian it was trained for; the step uses real speech whenever either differs, or the
voice's pack is not a point of the basis.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from voxvault.cloning.instant import StyleBasis
from voxvault.engines.base import FloatArray
from voxvault.engines.speaker import unit

EMBEDDING_MAP_FILE = "clone_embedding_map.npz"
#: a pack this far (relative RMS) from the basis point nearest to it is not an instant style
PACK_TOLERANCE = 1e-3


def quadratic_features(z: NDArray[Any]) -> NDArray[np.float64]:
    """``[z, z_i z_j for i <= j, 1]`` per row."""
    zs = np.atleast_2d(np.asarray(z, dtype=np.float64))
    i, j = np.triu_indices(zs.shape[1])
    return np.hstack([zs, zs[:, i] * zs[:, j], np.ones((len(zs), 1))])


def ridge_solve(x: NDArray[Any], y: NDArray[Any], ridge: float) -> NDArray[np.float64]:
    """Ridge regression weights for features ``x`` whose last column is the constant (not penalised)."""
    reg = ridge * np.eye(x.shape[1])
    reg[-1, -1] = 0.0
    return np.asarray(np.linalg.solve(x.T @ x + reg, x.T @ np.asarray(y, dtype=np.float64)), dtype=np.float64)


def judged_rows(rows: int, judged: NDArray[np.bool_] | None) -> NDArray[np.bool_]:
    """The rows a fit is judged on: ``judged``, or all ``rows`` of them."""
    return np.ones(rows, dtype=bool) if judged is None else np.asarray(judged, dtype=bool)


def held_out_scores(
    rows: int,
    ridges: tuple[float, ...],
    score_fold: Callable[[float, NDArray[np.bool_], NDArray[np.bool_]], Iterable[float]],
    folds: int = 5,
    judged: NDArray[np.bool_] | None = None,
) -> dict[float, list[float]]:
    """Per ridge penalty, the held-out scores of k-fold cross-validation over ``rows`` samples: every fold
    is fitted on the other folds and ``score_fold(ridge, train, test)`` scores its ``judged`` rows (default
    all: the rows whose error matters). The shared loop of the small maps' ``fit_cv``."""
    fold_of = np.arange(rows) % folds
    judge = judged_rows(rows, judged)
    return {
        ridge: [
            float(v) for f in range(folds) for v in score_fold(ridge, fold_of != f, (fold_of == f) & judge)
        ]
        for ridge in ridges
    }


def jacobian_key(fingerprint: str, sentences: tuple[str, ...]) -> str:
    """What a map's embeddings depend on besides the style: the model (the Jacobian's bias fingerprint)
    and the sentences spoken."""
    return hashlib.sha256("\n".join((fingerprint, *sentences)).encode()).hexdigest()


def basis_fingerprint(basis: StyleBasis) -> str:
    """sha256 of the basis (mean pack and directions, float32): the styles a map was trained on."""
    digest = hashlib.sha256(np.ascontiguousarray(basis.mean_pack, np.float32).tobytes())
    digest.update(np.ascontiguousarray(basis.directions, np.float32).tobytes())
    return digest.hexdigest()


def basis_point(basis: StyleBasis, pack: FloatArray) -> NDArray[np.float32] | None:
    """``pack``'s coordinates in ``basis``; None when it is not a point of it (a preset blend, say)."""
    z = basis.coords(pack)
    rebuilt = basis.pack(z)
    arr = np.asarray(pack, dtype=np.float32).reshape(rebuilt.shape)
    if float(np.sqrt(np.mean((arr - rebuilt) ** 2))) > PACK_TOLERANCE * float(np.sqrt(np.mean(arr**2))):
        return None
    return np.asarray(z, dtype=np.float32)


@dataclass(frozen=True)
class CloneEmbeddingMap:
    """Ridge regression from ``[x, x_i x_j, 1]`` to the clone's GE2E embedding, where ``x`` is ``z`` or, for
    a map trained with pitch factors (``pitched``), ``z`` followed by the log of the voice's pitch factor
    (``cloning/pitch.py``): pitch moves the embedding, and the step must start from the voice as it sounds."""

    weights: NDArray[np.float32]  # (features, 256)
    size: int  # basis coordinates the map takes
    ridge: float
    basis_fingerprint: str = ""
    jacobian_fingerprint: str = ""  # the Jacobian's (its model's biases and sentences) it serves
    pitched: bool = False

    @staticmethod
    def inputs(z: NDArray[Any], pitch: NDArray[Any] | float | None) -> NDArray[np.float64]:
        """``z`` rows, with the log pitch factor appended when ``pitch`` is given (one per row or one)."""
        zs = np.atleast_2d(np.asarray(z, dtype=np.float64))
        if pitch is None:
            return zs
        factors = np.broadcast_to(np.asarray(pitch, dtype=np.float64).reshape(-1), (len(zs),))
        return np.hstack([zs, np.log(factors)[:, None]])

    @classmethod
    def fit(
        cls, z: NDArray[Any], e: NDArray[Any], ridge: float, pitch: NDArray[Any] | None = None
    ) -> CloneEmbeddingMap:
        w = ridge_solve(quadratic_features(cls.inputs(z, pitch)), e, ridge)
        return cls(
            w.astype(np.float32), int(np.atleast_2d(z).shape[1]), float(ridge), pitched=pitch is not None
        )

    @classmethod
    def fit_cv(
        cls,
        z: NDArray[Any],
        e: NDArray[Any],
        ridges: tuple[float, ...] = (0.1, 0.3, 1, 3, 10, 30, 100),
        folds: int = 5,
        judged: NDArray[np.bool_] | None = None,
        pitch: NDArray[Any] | None = None,
    ) -> tuple[CloneEmbeddingMap, dict[str, float]]:
        """The penalty with the best mean held-out cosine over the ``judged`` rows (default all: the styles
        that matter, such as those real speakers get); the report says how good it was."""

        def cosines(ridge: float, train: NDArray[np.bool_], test: NDArray[np.bool_]) -> list[float]:
            fitted = cls.fit(z[train], e[train], ridge, None if pitch is None else pitch[train])
            pred = fitted.predict(z[test], None if pitch is None else pitch[test])
            return [float(p @ unit(t)) for p, t in zip(pred, e[test], strict=True)]

        held_out = held_out_scores(len(z), ridges, cosines, folds, judged)
        scores = {r: (float(np.mean(c)), float(np.percentile(c, 5))) for r, c in held_out.items()}
        best = max(scores, key=lambda r: scores[r][0])
        # How far apart the sampled clones themselves are: the scale the prediction's error is read on
        units = np.stack([unit(v) for v in e[judged_rows(len(z), judged)]])
        spread = float(np.mean(units @ units.mean(axis=0) / np.linalg.norm(units.mean(axis=0))))
        report = {
            "ridge": best,
            "cv_cosine_mean": round(scores[best][0], 4),
            "cv_cosine_p5": round(scores[best][1], 4),
            "cosine_to_mean_clone": round(spread, 4),
        }
        return cls.fit(z, e, best, pitch), report

    def predict(self, z: NDArray[Any], pitch: NDArray[Any] | float | None = None) -> NDArray[np.float32]:
        """Unit embeddings (one row per row of ``z``), at pitch factor ``pitch`` (default 1) where the map
        was trained with pitch factors (ignored where it was not)."""
        zs = np.atleast_2d(np.asarray(z, dtype=np.float64))[:, : self.size]
        x = self.inputs(zs, (1.0 if pitch is None else pitch) if self.pitched else None)
        out = quadratic_features(x) @ self.weights.astype(np.float64)
        return np.stack([unit(row) for row in out])

    def embedding(
        self, basis: StyleBasis, pack: FloatArray, pitch: float | None = None
    ) -> NDArray[np.float32] | None:
        """The predicted embedding of ``pack`` (at pitch factor ``pitch``); None when ``pack`` is not a point
        of ``basis``, or a pitch other than 1 is asked of a map trained without pitch factors."""
        z = basis_point(basis, pack)
        if z is None or (not self.pitched and pitch is not None and abs(pitch - 1.0) > 1e-6):
            return None
        return self.predict(z, pitch)[0]

    def with_fingerprints(self, basis: str, jacobian: str) -> CloneEmbeddingMap:
        return replace(self, basis_fingerprint=basis, jacobian_fingerprint=jacobian)

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(
            path,
            weights=self.weights.astype(np.float32),
            size=np.int64(self.size),
            ridge=np.float64(self.ridge),
            basis_fingerprint=np.array(self.basis_fingerprint),
            jacobian_fingerprint=np.array(self.jacobian_fingerprint),
            pitched=np.bool_(self.pitched),
        )

    @classmethod
    def load(cls, path: Path | None = None) -> CloneEmbeddingMap:
        source = path or Path(str(resources.files("voxvault.cloning").joinpath("data", EMBEDDING_MAP_FILE)))
        with np.load(source, allow_pickle=False) as f:
            return cls(
                weights=np.asarray(f["weights"], dtype=np.float32),
                size=int(f["size"]),
                ridge=float(f["ridge"]),
                basis_fingerprint=str(f["basis_fingerprint"]),
                jacobian_fingerprint=str(f["jacobian_fingerprint"]),
                pitched=bool(f["pitched"]) if "pitched" in f else False,
            )
