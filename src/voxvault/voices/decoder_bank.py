"""The instant clone's decoder: bias deltas predicted from the speaker embedding by a bank of real speakers.

Adapting the decoder to a speaker takes minutes (``voices/decoder_adaptation.py``); an instant clone has
under a second. The bank holds, for real speakers never used in evaluation, their GE2E embedding and the
decoder-bias deltas an adaptation found for them (``bench/train_decoder_bank.py``). A new speaker gets the
similarity-weighted mean of its nearest bank speakers' deltas: a matrix product.
"""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from voxvault.engines.base import AdaptedWeights, FloatArray

BANK_FILE = "decoder_bank.npz"


@dataclass(frozen=True)
class DecoderBank:
    speakers: tuple[str, ...]
    embeddings: NDArray[np.float32]  # (n, 256), unit length
    deltas: NDArray[np.float16]  # (n, d): each speaker's bias deltas, flattened in ``names`` order
    names: tuple[str, ...]
    shapes: tuple[tuple[int, ...], ...]
    meta: dict[str, Any] = field(default_factory=dict)
    neighbours: int = 8
    sharpness: float = 20.0  # softmax over cosine similarity

    @classmethod
    def build(
        cls,
        speakers: Sequence[str],
        embeddings: NDArray[Any],
        deltas: NDArray[Any],
        names: Sequence[str],
        shapes: Sequence[tuple[int, ...]],
        meta: dict[str, Any],
    ) -> DecoderBank:
        emb = np.asarray(embeddings, dtype=np.float32)
        emb = emb / np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12)
        return cls(
            tuple(speakers),
            emb,
            np.asarray(deltas, dtype=np.float16),
            tuple(names),
            tuple(tuple(int(x) for x in s) for s in shapes),
            dict(meta),
            int(meta.get("neighbours", 8)),
            float(meta.get("sharpness", 20.0)),
        )

    def save(self, path: Path) -> None:
        meta = {**self.meta, "neighbours": self.neighbours, "sharpness": self.sharpness}
        buf = io.BytesIO()
        np.savez_compressed(
            buf,
            speakers=np.asarray(self.speakers),
            embeddings=self.embeddings,
            deltas=self.deltas,
            names=np.asarray(self.names),
            shapes=np.asarray(json.dumps([list(s) for s in self.shapes])),
            meta=np.asarray(json.dumps(meta)),
        )
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(buf.getvalue())
        tmp.replace(path)

    @classmethod
    def load(cls, path: Path | None = None) -> DecoderBank | None:
        """The bank at ``path`` (default: the one shipped in the package); None when there is none."""
        if path is None:
            shipped = resources.files("voxvault.voices") / "data" / BANK_FILE
            if not shipped.is_file():
                return None
            data = shipped.read_bytes()
        elif path.is_file():
            data = path.read_bytes()
        else:
            return None
        with np.load(io.BytesIO(data), allow_pickle=False) as z:
            meta = json.loads(str(z["meta"]))
            return cls.build(
                [str(s) for s in z["speakers"]],
                z["embeddings"],
                z["deltas"],
                [str(n) for n in z["names"]],
                [tuple(s) for s in json.loads(str(z["shapes"]))],
                meta,
            )

    def weights_for(self, embedding: FloatArray, exclude: str | None = None) -> NDArray[np.float64]:
        """Each bank speaker's weight for ``embedding``: softmax of cosine over the nearest few."""
        e = np.asarray(embedding, dtype=np.float32).reshape(-1)
        e = e / max(float(np.linalg.norm(e)), 1e-12)
        sims = (self.embeddings @ e).astype(np.float64)
        if exclude is not None:
            sims[[i for i, s in enumerate(self.speakers) if s == exclude]] = -np.inf
        k = min(self.neighbours, int(np.isfinite(sims).sum()))
        top = np.argsort(sims)[::-1][:k]
        w = np.exp(self.sharpness * (sims[top] - sims[top].max()))
        out = np.zeros(len(sims))
        out[top] = w / w.sum()
        return out

    def predict_flat(self, embedding: FloatArray, exclude: str | None = None) -> NDArray[np.float32]:
        w = self.weights_for(embedding, exclude)
        return (w @ self.deltas.astype(np.float32)).astype(np.float32)

    def predict(self, embedding: FloatArray) -> AdaptedWeights:
        """The deltas for a new speaker, split into the decoder's bias tensors."""
        flat = self.predict_flat(embedding)
        out: dict[str, NDArray[np.float32]] = {}
        at = 0
        for name, shape in zip(self.names, self.shapes, strict=True):
            size = int(np.prod(shape))
            out[name] = flat[at : at + size].reshape(shape)
            at += size
        digest = hashlib.sha256(flat.tobytes()).hexdigest()[:16]
        return AdaptedWeights(name=f"bank:{digest}", deltas=out)
