"""The style optimisers' loop: score basis coordinates, step by (1+λ) search or by the gradient.

The search runs in the instant clone's basis (``cloning/instant.py``): a (1+λ) evolution strategy with
step-size adaptation, so each step only needs the engine to speak (no gradients; the CPU path). The
objective rewards GE2E similarity to the enrolled embedding, rewards the ASR recognising the words (so
the voice keeps saying them) and penalises leaving the region of natural styles. ``method="gradient"``
replaces the search by Adam steps through differentiable copies of Kokoro and GE2E in PyTorch
(``cloning/adapt/gradient.py``); ``method="decoder"`` keeps the style and adapts the decoder's style
projections instead (``cloning/adapt/decoder.py``). ``jobs/adapt.py`` runs all three as resumable jobs.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict
from typing import TYPE_CHECKING

import numpy as np

from voxvault.cloning.adapt.state import AdaptOptions, Checkpoint, Score
from voxvault.cloning.instant import StyleBasis, naturalness_penalty
from voxvault.engines.asr import mean_recall
from voxvault.engines.base import FloatArray, SpeakerEncoder, SpeechRecognizer, TTSEngine
from voxvault.engines.speaker import embed_sentences, unit
from voxvault.errors import VoxError
from voxvault.text import TextFrontend

if TYPE_CHECKING:  # the gradient method needs PyTorch; the search alone does not
    from voxvault.cloning.adapt.gradient import StyleGradient


class StyleObjective:
    """Scores basis coordinates: speak the sentences, embed, recognise, penalise the unnatural."""

    def __init__(
        self,
        tts: TTSEngine,
        encoder: SpeakerEncoder,
        asr: SpeechRecognizer | None,
        basis: StyleBasis,
        target: FloatArray,
        options: AdaptOptions,
    ) -> None:
        self.tts, self.encoder, self.asr, self.basis, self.options = tts, encoder, asr, basis, options
        self.target = unit(target)
        frontend = TextFrontend(max_phonemes=tts.max_phonemes)
        self.phonemes = [frontend.phonemes(s) for s in options.sentences]

    def speak(self, z: FloatArray) -> list[FloatArray]:
        pack = self.basis.pack(np.asarray(z))
        return [self.tts.synthesize(ph, pack) for ph in self.phonemes]

    def __call__(self, z: FloatArray) -> Score:
        clips = self.speak(z)
        rate = self.tts.sample_rate
        similarity = float(np.dot(embed_sentences(self.encoder, clips, rate), self.target))
        recall = 1.0
        if self.asr is not None and self.options.intelligibility_weight > 0:
            recall = mean_recall(self.asr, clips, self.options.sentences, rate)
        penalty = naturalness_penalty(np.asarray(z))
        o = self.options
        objective = (
            o.similarity_weight * similarity
            + o.intelligibility_weight * recall
            - o.naturalness_weight * penalty
        )
        return Score(objective, similarity, recall, penalty)


def start_checkpoint(objective: StyleObjective, z0: FloatArray, options: AdaptOptions) -> Checkpoint:
    score = objective(z0)
    best = asdict(score)
    rng = np.random.default_rng(options.seed)
    return Checkpoint(
        iteration=0,
        best_z=[float(v) for v in np.asarray(z0).reshape(-1)],
        best=best,
        start=dict(best),
        sigma=options.sigma,
        stall=0,
        seconds=0.0,
        history=[round(score.objective, 5)],
        rng_state=dict(rng.bit_generator.state),
    )


def search_step(objective: StyleObjective, ck: Checkpoint, options: AdaptOptions) -> Checkpoint:
    """One (1+λ) iteration with the 1/5th success rule for the step size."""
    t0 = time.perf_counter()
    rng = np.random.default_rng()
    rng.bit_generator.state = ck.rng_state
    parent = np.asarray(ck.best_z, dtype=np.float32)
    best_z, best = parent, ck.best
    improved = False
    for _ in range(options.population):
        child = (parent + ck.sigma * rng.standard_normal(parent.size)).astype(np.float32)
        score = objective(child)
        if score.objective > best["objective"]:
            best_z, best, improved = child, asdict(score), True
    sigma = ck.sigma * (1.5 if improved else 0.85)
    return Checkpoint(
        iteration=ck.iteration + 1,
        best_z=[float(v) for v in best_z],
        best=best,
        start=ck.start,
        sigma=float(np.clip(sigma, 0.05, 1.5)),
        stall=0 if improved else ck.stall + 1,
        seconds=ck.seconds + time.perf_counter() - t0,
        history=[*ck.history, round(float(best["objective"]), 5)],
        rng_state=dict(rng.bit_generator.state),
    )


def finished(ck: Checkpoint, options: AdaptOptions) -> str | None:
    """Why the search stops now (None: go on)."""
    if ck.iteration >= options.max_iterations:
        return "max_iterations"
    if ck.seconds >= options.max_seconds:
        return "time_cap"
    if ck.stall >= options.patience:
        return "early_stop"
    return None


Step = Callable[[Checkpoint], Checkpoint]


def stepper(objective: StyleObjective, options: AdaptOptions, gradient: StyleGradient | None = None) -> Step:
    """The iteration for ``options.method``: a search step, or a gradient step (needs ``gradient``)."""
    if options.method == "gradient":
        if gradient is None:
            raise VoxError("gradient_unavailable", "the gradient method needs a differentiable model", 422)
        from voxvault.cloning.adapt.gradient import gradient_step

        return lambda ck: gradient_step(objective, gradient, ck, options)
    return lambda ck: search_step(objective, ck, options)


def optimise(
    objective: StyleObjective,
    z0: FloatArray,
    options: AdaptOptions,
    on_step: Callable[[Checkpoint], None] | None = None,
    gradient: StyleGradient | None = None,
) -> Checkpoint:
    """Run the whole search in-process (evaluation, scripts); the job service checkpoints instead."""
    step = stepper(objective, options, gradient)
    ck = start_checkpoint(objective, z0, options)
    while finished(ck, options) is None:
        ck = step(ck)
        if on_step is not None:
            on_step(ck)
    return ck
