"""TTS conditioning for a cloned voice: a style for the embedded engine, derived from the speaker.

The embedded engine (Kokoro) is conditioned by a style pack, not by audio. This first version places the
new speaker among the shipped presets: each preset speaks a fixed reference text once (the embeddings are
cached in the model cache folder, keyed by text, encoder and styles) and GE2E embeds it; the speaker's
style is the presets' styles blended with softmax weights over the cosine similarity between the
speaker's embedding and each preset's (temperature ``BLEND_TEMPERATURE``). So the clone speaks with the
preset timbres closest to the speaker. The fidelity issue replaces the body of ``derive_style``; its
inputs (the speaker's embedding and speech) and output (a style array shaped like a preset's) stay.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from voxvault.engines.base import FloatArray, SpeakerEncoder

log = logging.getLogger(__name__)

REFERENCE_TEXT = "The rainbow is a division of white light into many beautiful colors."
BLEND_TEMPERATURE = 0.02
MIN_WEIGHT = 0.02  # weights below this are dropped (and the rest renormalised)

Synthesize = Callable[[str, str], tuple[FloatArray, int]]  # (text, preset id) -> (samples, rate)


@dataclass(frozen=True)
class StyleResult:
    style: FloatArray
    weights: dict[str, float]  # preset id -> blend weight (what the voice is made of; numbers only)


def blend_weights(
    similarities: Mapping[str, float], temperature: float = BLEND_TEMPERATURE
) -> dict[str, float]:
    """Softmax over similarities; tiny weights dropped so a clone is a blend of its few nearest presets."""
    if not similarities:
        raise ValueError("no presets to blend")
    names = list(similarities)
    sims = np.array([similarities[n] for n in names], dtype=np.float64)
    raw = np.exp((sims - sims.max()) / temperature)
    raw /= raw.sum()
    raw[raw < MIN_WEIGHT] = 0.0
    raw /= raw.sum()
    return {n: float(w) for n, w in zip(names, raw, strict=True) if w > 0}


class StyleConditioner:
    """Derives a clone's style; the presets' reference embeddings are computed once and cached."""

    def __init__(
        self,
        preset_styles: Mapping[str, FloatArray],
        encoder: SpeakerEncoder,
        synthesize: Synthesize,
        reference_text: str = REFERENCE_TEXT,
        cache_dir: Path | None = None,
        engine_id: str = "",
    ) -> None:
        self.preset_styles = dict(preset_styles)
        self.encoder = encoder
        self.synthesize = synthesize
        self.reference_text = reference_text
        self.cache_dir = cache_dir
        self.engine_id = engine_id
        self._embeddings: dict[str, FloatArray] | None = None
        self._lock = threading.Lock()

    def _cache_path(self) -> Path | None:
        """A file named by everything the embeddings depend on, so a stale cache is never read."""
        if self.cache_dir is None:
            return None
        h = hashlib.sha256(self.reference_text.encode())
        h.update(f"|{self.engine_id}|{getattr(self.encoder, 'name', '?')}|".encode())
        for name in sorted(self.preset_styles):
            h.update(name.encode())
            h.update(np.ascontiguousarray(self.preset_styles[name], dtype=np.float32).tobytes())
        return self.cache_dir / f"preset-embeddings-{h.hexdigest()[:16]}.npz"

    def _read_cache(self, path: Path | None) -> dict[str, FloatArray] | None:
        if path is None or not path.is_file():
            return None
        try:
            with np.load(path, allow_pickle=False) as npz:
                found = {k: np.asarray(npz[k], dtype=np.float32) for k in npz.files}
        except (OSError, ValueError):
            return None
        return found if set(found) == set(self.preset_styles) else None

    @staticmethod
    def _write_cache(path: Path | None, embeddings: dict[str, FloatArray]) -> None:
        if path is None:
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as handle:
                np.savez(handle, **embeddings)  # type: ignore[arg-type]
            os.replace(tmp, path)
        except OSError:
            Path(tmp).unlink(missing_ok=True)

    def preset_embeddings(self) -> dict[str, FloatArray]:
        if self._embeddings is None:
            with self._lock:
                if self._embeddings is None:
                    path = self._cache_path()
                    cached = self._read_cache(path)
                    if cached is not None:
                        self._embeddings = cached
                        return cached
                    t0 = time.perf_counter()
                    out: dict[str, FloatArray] = {}
                    for preset in self.preset_styles:
                        samples, rate = self.synthesize(self.reference_text, preset)
                        out[preset] = np.asarray(self.encoder.embed(samples, rate), dtype=np.float32)
                    self._write_cache(path, out)
                    self._embeddings = out
                    log.info("preset reference embeddings: %d in %.2fs", len(out), time.perf_counter() - t0)
        return self._embeddings

    def weights_for(self, embedding: FloatArray) -> dict[str, float]:
        emb = np.asarray(embedding, dtype=np.float32)
        emb = emb / max(float(np.linalg.norm(emb)), 1e-12)
        sims = {
            name: float(np.dot(emb, ref / max(float(np.linalg.norm(ref)), 1e-12)))
            for name, ref in self.preset_embeddings().items()
        }
        return blend_weights(sims)

    def derive_style(self, embedding: FloatArray, audio: FloatArray | None = None) -> StyleResult:
        """The clone's style pack: the learned instant mapping (``cloning/instant.py``) when its trained
        model ships, else the preset blend below. ``audio`` is the speaker's 16 kHz speech (pitch stats)."""
        instant = self.instant_style(embedding, audio)
        if instant is not None:
            return instant
        return self.blend_style(embedding)

    def instant_style(self, embedding: FloatArray, audio: FloatArray | None = None) -> StyleResult | None:
        """The learned mapping's style, or None when no trained map is available (then blend)."""
        from voxvault.cloning.instant import StyleBasis, StyleMap, instant_style

        try:
            style_map = StyleMap.load()
        except (FileNotFoundError, OSError, ValueError, KeyError):
            return None
        basis = StyleBasis.from_presets(self.preset_styles)
        if style_map.weights.shape[1] < basis.size:
            return None
        pack, z = instant_style(basis, style_map, embedding, audio, 16_000)
        weights = {"instant_map": 1.0, "style_norm": round(float(np.sqrt(np.mean(z**2))), 4)}
        return StyleResult(style=pack, weights=weights)

    def blend_style(self, embedding: FloatArray) -> StyleResult:
        """The first method: a softmax blend of the presets nearest to the speaker (the fallback)."""
        weights = self.weights_for(embedding)
        first = next(iter(self.preset_styles.values()))
        style = np.zeros_like(np.asarray(first, dtype=np.float32))
        for name, weight in weights.items():
            style += np.float32(weight) * np.asarray(self.preset_styles[name], dtype=np.float32)
        return StyleResult(
            style=style.astype(np.float32), weights={k: round(v, 4) for k, v in weights.items()}
        )
