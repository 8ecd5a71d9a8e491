"""Fine-tuning a clone's style by gradient: Kokoro and GE2E both differentiable, in PyTorch.

The blind search in ``cloning/adapt/search.py`` needs only the engine to speak. This path asks more: the
Kokoro graph run by PyTorch (``engines/kokoro_torch.py``, weights from the shipped ONNX) and GE2E's
differentiable front end (``GE2EEncoder.embed_differentiable``), so ``d similarity / d z`` is exact and one
Adam step replaces a population of guesses. Each step speaks the job's sentences with the style of the
current ``z``, embeds them as one utterance (like the search's objective), and moves ``z`` uphill on
``similarity - naturalness``. The move is then scored by the same full objective as the search (the
configured engine speaks, the ASR listens), so the best ``z`` kept is chosen by the same rule either way
and intelligibility still guards the result. Runs on ``cpu`` or ``cuda`` (``VOXVAULT_DEVICE``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import asdict
from typing import Any, Protocol

import numpy as np
import torch

from voxvault.cloning.adapt.state import AdaptOptions, Checkpoint, Score
from voxvault.cloning.instant import NATURAL_RADIUS, StyleBasis
from voxvault.engines.base import FloatArray
from voxvault.engines.kokoro import TRIM_KEEP_SECONDS, TRIM_THRESHOLD
from voxvault.engines.speaker import SENTENCE_GAP_S
from voxvault.errors import VoxError

BETA1, BETA2, EPS = 0.9, 0.999, 1e-8


class DifferentiableTTS(Protocol):
    sample_rate: int
    max_phonemes: int

    def tokenize(self, phonemes: str) -> list[int]: ...

    def forward(
        self,
        tokens: list[int],
        style: torch.Tensor,
        speed: float = 1.0,
        weights: Mapping[str, torch.Tensor] | None = None,
    ) -> torch.Tensor: ...


class DifferentiableEncoder(Protocol):
    def embed_differentiable(self, audio: torch.Tensor, sample_rate: int) -> torch.Tensor: ...


def token_lists(tts: DifferentiableTTS, phonemes: list[str]) -> list[list[int]]:
    tokens = [tts.tokenize(p) for p in phonemes]
    if not all(tokens):
        raise VoxError("invalid_options", "a fine-tuning sentence has no speakable phonemes", 422)
    return tokens


def unit_tensor(target: FloatArray) -> torch.Tensor:
    t = np.asarray(target, dtype=np.float32).reshape(-1)
    return torch.from_numpy(t / max(float(np.linalg.norm(t)), 1e-12))


def _trimmed(audio: torch.Tensor, keep: int) -> torch.Tensor:
    """``audio`` without its near-silent ends (the engine's threshold), ``keep`` samples of margin."""
    loud = torch.nonzero(audio.detach().abs() > TRIM_THRESHOLD).reshape(-1)
    if loud.numel() == 0:
        return audio
    return audio[max(0, int(loud[0]) - keep) : int(loud[-1]) + keep + 1]


def spoken(
    tts: DifferentiableTTS,
    encoder: DifferentiableEncoder,
    tokens: list[list[int]],
    row_for: Callable[[int], torch.Tensor],
    *,
    keep_seconds: float,
    weights: Mapping[str, torch.Tensor] | None = None,
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """GE2E embedding (with autograd) of the sentences spoken as one utterance, pauses between them, and
    each sentence's trimmed audio (for the ASR).

    ``row_for(n)`` is the style row for a sentence of ``n`` tokens; ``weights`` replaces model weights.
    """
    rate = tts.sample_rate
    clips: list[torch.Tensor] = []
    pieces: list[torch.Tensor] = []
    for tok in tokens:
        audio = tts.forward(tok, row_for(len(tok)), weights=weights).float().cpu().clamp(-1.0, 1.0)
        clips.append(_trimmed(audio, int(keep_seconds * rate)))
        pieces += [clips[-1], torch.zeros(int(SENTENCE_GAP_S * rate))]  # as identity.join_sentences
    return encoder.embed_differentiable(torch.cat(pieces), rate).cpu(), clips


class StyleGradient:
    """Similarity to a target speaker and its gradient with respect to basis coordinates ``z``."""

    def __init__(
        self,
        tts: DifferentiableTTS,
        encoder: DifferentiableEncoder,
        basis: StyleBasis,
        target: FloatArray,
        phonemes: list[str],
    ) -> None:
        if not hasattr(tts, "forward") or not hasattr(encoder, "embed_differentiable"):
            raise VoxError("gradient_unavailable", "the gradient method needs PyTorch Kokoro and GE2E", 422)
        self.tts, self.encoder = tts, encoder
        self.tokens = token_lists(tts, phonemes)
        self.mean_pack = torch.from_numpy(np.ascontiguousarray(basis.mean_pack))
        self.directions = torch.from_numpy(np.ascontiguousarray(basis.directions))
        self.target = unit_tensor(target)

    def similarity_and_grad(self, z: FloatArray, naturalness_weight: float) -> tuple[float, FloatArray]:
        """(GE2E cosine of the spoken sentences to the target, d(similarity - w * mean(z^2)) / dz)."""
        zt = torch.tensor(np.asarray(z, dtype=np.float32), requires_grad=True)
        offset = torch.clamp(zt, -NATURAL_RADIUS, NATURAL_RADIUS) @ self.directions
        with torch.enable_grad():
            emb, _ = spoken(
                self.tts,
                self.encoder,
                self.tokens,
                lambda n: self.mean_pack[min(n, self.mean_pack.shape[0]) - 1] + offset,
                keep_seconds=TRIM_KEEP_SECONDS,
            )
            similarity = emb @ self.target
            objective = similarity - naturalness_weight * torch.mean(zt**2)
            objective.backward()
        grad = zt.grad
        if grad is None or not bool(torch.isfinite(grad).all()):
            raise VoxError("gradient_failed", "the style gradient is not finite", 500)
        return float(similarity.detach()), grad.numpy().astype(np.float32)


def adam_ascent(
    z: FloatArray, grad: FloatArray, state: dict[str, Any], lr: float
) -> tuple[FloatArray, dict[str, Any]]:
    """One Adam step *up* the objective; the state is JSON-friendly (it lives in the job's checkpoint)."""
    step = int(state.get("t", 0)) + 1
    m = BETA1 * np.asarray(state.get("m", np.zeros_like(z)), np.float64) + (1 - BETA1) * grad
    v = BETA2 * np.asarray(state.get("v", np.zeros_like(z)), np.float64) + (1 - BETA2) * grad**2
    m_hat, v_hat = m / (1 - BETA1**step), v / (1 - BETA2**step)
    new = np.clip(z + lr * m_hat / (np.sqrt(v_hat) + EPS), -NATURAL_RADIUS, NATURAL_RADIUS).astype(np.float32)
    return new, {
        "t": step,
        "m": [float(x) for x in m],
        "v": [float(x) for x in v],
        "z": [float(x) for x in new],
    }


def gradient_step(
    objective: Callable[[FloatArray], Score], gradient: StyleGradient, ck: Checkpoint, options: AdaptOptions
) -> Checkpoint:
    """One Adam step from the optimiser's own ``z``, then the full objective decides whether it is the best.

    ``objective`` is ``search.StyleObjective`` (any scorer of coordinates will do, so this module does not
    import the search that imports it).
    """

    t0 = time.perf_counter()
    z = np.asarray(ck.adam.get("z", ck.best_z), dtype=np.float32)
    _, grad = gradient.similarity_and_grad(
        z, options.naturalness_weight / max(options.similarity_weight, 1e-9)
    )
    z_new, adam = adam_ascent(z, grad, ck.adam, options.step_size)
    score = objective(z_new)
    best_z, best, improved = np.asarray(ck.best_z, np.float32), ck.best, False
    if score.objective > best["objective"]:
        best_z, best, improved = z_new, asdict(score), True
    return Checkpoint(
        iteration=ck.iteration + 1,
        best_z=[float(v) for v in best_z],
        best=best,
        start=ck.start,
        sigma=ck.sigma,
        stall=0 if improved else ck.stall + 1,
        seconds=ck.seconds + time.perf_counter() - t0,
        history=[*ck.history, round(float(best["objective"]), 5)],
        rng_state=ck.rng_state,
        adam=adam,
    )
