"""Speaker-embedding arithmetic shared by the consent checks, the cloners and their evaluation."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from voxvault.engines.base import FloatArray, SpeakerEncoder

SENTENCE_GAP_S = 0.2  # silence after each sentence when several are embedded as one utterance


def unit(v: FloatArray) -> NDArray[np.float32]:
    """``v`` as a flat float32 vector of length 1 (a zero vector stays zero)."""
    arr = np.asarray(v, dtype=np.float32).reshape(-1)
    return arr / max(float(np.linalg.norm(arr)), 1e-12)


def join_sentences(clips: list[FloatArray], rate: int) -> NDArray[np.float32]:
    """Sentences one after another, each followed by ``SENTENCE_GAP_S`` of silence: how a clone's speech
    is embedded to compare it with its speaker (fine-tuning, the instant decoder step, the evaluation)."""
    gap = np.zeros(int(SENTENCE_GAP_S * rate), dtype=np.float32)
    return np.concatenate([np.asarray(c, dtype=np.float32) for clip in clips for c in (clip, gap)])


def embed_sentences(encoder: SpeakerEncoder, clips: list[FloatArray], rate: int) -> NDArray[np.float32]:
    """The unit GE2E embedding of sentences joined by ``join_sentences``: what a clone is compared by."""
    return unit(encoder.embed(join_sentences(clips, rate), rate))


def cosine(a: FloatArray, b: FloatArray) -> float:
    na = float(np.linalg.norm(a))
    nb = float(np.linalg.norm(b))
    if na == 0.0 or nb == 0.0:
        return 0.0
    return float(np.dot(a, b) / (na * nb))
