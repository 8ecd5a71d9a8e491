"""Decoder adaptation: a voice gets its own copy of the decoder's style projections, tuned by gradient.

Kokoro's style vector reaches the vocoder through the decoder's AdaIN projections (style -> per-channel
gain and bias, 116 tensors, 4.8 M numbers). Searching the style alone plateaus near the preset voices
(``docs/cloning.md``); adapting these projections per speaker, with the voice's style kept, brings the
clone close to the speaker's own held-out similarity. The text encoder and the duration/pitch predictors
stay as shipped, so what the model learned about saying words is untouched.

By default only the projections' 58 biases (37 k numbers) move (``scope="bias"``): for a given style that
reaches every gain and bias the style sets, it measured as close to the speaker as moving all 4.8 M
numbers, and a voice's weights are 75 kB instead of 9.6 MB.

Each step speaks the job's sentences with PyTorch Kokoro (``engines/kokoro_torch.py``), embeds them with
GE2E's differentiable front end, and scores the result by the same objective as the style search:
similarity to the enrolled speaker, the ASR finding the words (on the very audio the step produced, so
intelligibility costs no extra synthesis), minus a small penalty for drifting from the shipped weights.
Adam then moves the weights up the similarity (with an L2 pull toward the shipped values). The best
weights by the full objective are what the voice keeps, so a step that garbles the words is never chosen.

Stored per voice as sealed blobs: the optimiser's state while the job runs (resume after a crash
continues the same trajectory) and the chosen weights' deltas in float16 afterwards. Erasing the
voice deletes them with everything else under its prefix.
"""

from __future__ import annotations

import io
import math
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray

from voxvault.cloning.adapt.gradient import DifferentiableEncoder, spoken, token_lists, unit_tensor
from voxvault.cloning.adapt.state import LEARNING_RATES, SCOPES
from voxvault.cloning.bias_layout import DEFAULT_L2
from voxvault.engines.asr import mean_recall
from voxvault.engines.base import (
    STYLE_DIM,
    AdaptedSpeaker,
    AdaptedWeights,
    FloatArray,
    SpeakerEncoder,
    SpeechRecognizer,
)
from voxvault.engines.onnx_float import is_style_bias, is_style_projection
from voxvault.engines.speaker import embed_sentences, unit
from voxvault.errors import VoxError

#: Sentences no adaptation trains on (the job's and the evaluation's are others). Which runtime speaks an
#: adapted voice closer to its speaker is judged on these: the weights fit their own training sentences in
#: the runtime they were trained through, so those would always favour it.
VALIDATION_SENTENCES = (
    "Thank you for calling, how can I help you today?",
    "My brother moved to a small town near the coast last year.",
    "Could you send me the report before Friday morning?",
    "Our garden is full of roses, tulips and bright yellow daisies.",
)
#: How much closer (GE2E cosine to the speaker, on ``VALIDATION_SENTENCES``) PyTorch must render a voice
#: before the voice is served by PyTorch instead of onnxruntime, which is about three times faster on a CPU.
#: PyTorch is closer for nearly every voice by ~0.04 there (the weights fit the rendering they were trained
#: through) while on held-out audio the mean gain is ~0.01; 0.05 moves only the voices onnxruntime renders
#: clearly worse (docs/cloning.md, "Which runtime speaks an adapted voice").
RUNTIME_MARGIN = 0.05


def adaptable_weights(tts: Any, scope: str = "all") -> list[str]:
    """The decoder's AdaIN projections (style -> per-channel gain and bias): 116 tensors, 4.8 M numbers;
    ``scope="bias"``: only their 58 biases (37 k numbers).

    They are where the style enters the vocoder, so adapting them per speaker widens what a voice can
    sound like without touching what the text encoder and the duration/pitch predictors learned. For a
    fixed style a projection's output is ``W s + b``, so moving ``b`` alone moves every gain and bias the
    style sets; only the small row-to-row change of the style (by sentence length) still goes through ``W``.
    """
    if scope not in SCOPES:
        raise VoxError("invalid_options", f"scope must be one of {', '.join(SCOPES)}", 422)
    wanted = is_style_bias if scope == "bias" else is_style_projection
    return sorted(k for k, v in tts.graph.constants.items() if wanted(k) and v.is_floating_point())


@dataclass(frozen=True)
class StepScore:
    objective: float
    similarity: float
    recall: float
    penalty: float  # relative drift from the shipped weights, ||delta|| / ||shipped||


class DecoderTuner:
    """Adam on one voice's decoder projections; each :meth:`step` scores the current weights, then moves.

    ``tts`` is PyTorch Kokoro (``forward`` with ``weights``, ``graph.constants``); ``start`` are deltas to
    begin from (a voice adapted before continues from its weights).
    """

    def __init__(
        self,
        tts: Any,
        encoder: DifferentiableEncoder,
        asr: SpeechRecognizer | None,
        style_pack: FloatArray,
        target: FloatArray,
        sentences: tuple[str, ...],
        phonemes: list[str],
        *,
        similarity_weight: float = 1.0,
        intelligibility_weight: float = 0.3,
        naturalness_weight: float = 0.05,
        learning_rate: float | None = None,
        l2: float = DEFAULT_L2,
        start: AdaptedWeights | None = None,
        scope: str = "bias",
    ) -> None:
        if not hasattr(tts, "forward") or not hasattr(encoder, "embed_differentiable"):
            raise VoxError("gradient_unavailable", "decoder adaptation needs PyTorch Kokoro and GE2E", 422)
        self.tts, self.encoder, self.asr = tts, encoder, asr
        self.sentences = sentences
        self.tokens = token_lists(tts, phonemes)
        self.goal = unit_tensor(target)
        self.pack = np.asarray(style_pack, dtype=np.float32).reshape(-1, STYLE_DIM)
        self.weights = (similarity_weight, intelligibility_weight, naturalness_weight)
        self.l2 = l2
        self.names = adaptable_weights(tts, scope)
        constants = tts.graph.constants
        self.originals = [constants[n].detach() for n in self.names]
        self._shipped_norm = math.sqrt(sum(float((o**2).sum()) for o in self.originals))
        begin = dict(start.deltas) if start is not None else {}
        # Deltas of a start outside this scope stay as they are (a voice adapted in full, tuned by bias).
        self.fixed = {n: np.asarray(d, np.float32) for n, d in begin.items() if n not in self.names}
        self.params = [
            (o + torch.from_numpy(np.asarray(begin[n], np.float32)).to(o.device) if n in begin else o.clone())
            .detach()
            .requires_grad_(True)
            for n, o in zip(self.names, self.originals, strict=True)
        ]
        self._fixed_tensors = {
            n: constants[n] + torch.from_numpy(d).to(constants[n].device) for n, d in self.fixed.items()
        }
        self.optimiser = torch.optim.Adam(self.params, lr=learning_rate or LEARNING_RATES[scope])
        self.t = 0

    def deltas(self) -> dict[str, NDArray[np.float32]]:
        return {
            **self.fixed,
            **{
                n: (p.detach() - o).float().cpu().numpy()
                for n, p, o in zip(self.names, self.params, self.originals, strict=True)
            },
        }

    def step(self) -> tuple[StepScore, dict[str, NDArray[np.float32]]]:
        """Score the current weights (returned with their deltas), then take one Adam step."""
        self.optimiser.zero_grad()
        weights = {**self._fixed_tensors, **dict(zip(self.names, self.params, strict=True))}
        current = self.deltas()
        with torch.enable_grad():
            emb, clips = spoken(
                self.tts,
                self.encoder,
                self.tokens,
                lambda n: torch.from_numpy(self.pack[min(n, len(self.pack)) - 1]),
                keep_seconds=0.0,
                weights=weights,
            )
            similarity = emb @ self.goal
            drift = sum(((p - o) ** 2).sum() for p, o in zip(self.params, self.originals, strict=True))
            (self.l2 * drift - similarity).backward()
        grads_finite = all(p.grad is None or bool(torch.isfinite(p.grad).all()) for p in self.params)
        if not grads_finite:
            raise VoxError("gradient_failed", "the decoder gradient is not finite", 500)
        self.optimiser.step()
        self.t += 1
        recall = 1.0
        if self.asr is not None and self.weights[1] > 0:
            audio = [clip.detach().numpy() for clip in clips]
            recall = mean_recall(self.asr, audio, self.sentences, self.tts.sample_rate)
        sim = float(similarity.detach())
        penalty = math.sqrt(float(torch.as_tensor(drift).detach())) / max(self._shipped_norm, 1e-12)
        sw, iw, nw = self.weights
        return StepScore(sw * sim + iw * recall - nw * penalty, sim, recall, penalty), current

    # -- the optimiser's state, for the job's checkpoint --------------------------------------------------
    def state_bytes(self) -> bytes:
        """Current deltas, Adam's moments and step count as an ``.npz`` (float32: resuming is exact)."""
        arrays: dict[str, NDArray[Any]] = {"t": np.asarray(self.t, dtype=np.int64)}
        for i, (p, o) in enumerate(zip(self.params, self.originals, strict=True)):
            state = self.optimiser.state.get(p, {})
            arrays[f"p{i}"] = (p.detach() - o).cpu().numpy()
            if state:
                arrays[f"m{i}"] = state["exp_avg"].cpu().numpy()
                arrays[f"v{i}"] = state["exp_avg_sq"].cpu().numpy()
        buf = io.BytesIO()
        np.savez(buf, **arrays)  # type: ignore[arg-type]  # numpy stubs match ** to allow_pickle
        return buf.getvalue()

    def load_state(self, data: bytes) -> None:
        with np.load(io.BytesIO(data), allow_pickle=False) as archive:
            self.t = int(archive["t"])
            for i, (p, o) in enumerate(zip(self.params, self.originals, strict=True)):
                with torch.no_grad():
                    p.copy_(o + torch.from_numpy(archive[f"p{i}"]).to(o.device))
                if f"m{i}" in archive.files:
                    self.optimiser.state[p] = {
                        "step": torch.tensor(float(self.t)),
                        "exp_avg": torch.from_numpy(archive[f"m{i}"]).to(o.device),
                        "exp_avg_sq": torch.from_numpy(archive[f"v{i}"]).to(o.device),
                    }


def adapt_decoder(
    tuner: DecoderTuner, *, steps: int, max_seconds: float, patience: int = 8
) -> tuple[AdaptedWeights, list[StepScore]]:
    """Run ``tuner`` in-process (evaluation, scripts): the best weights by the full objective, and every
    step's score. The adapt job (``jobs/adapt.py``) runs the same steps with checkpoints instead."""
    best: tuple[StepScore, dict[str, NDArray[np.float32]]] | None = None
    history: list[StepScore] = []
    stall = 0
    t0 = time.perf_counter()
    while len(history) < steps and time.perf_counter() - t0 < max_seconds and stall < patience:
        score, deltas = tuner.step()
        history.append(score)
        if best is None or score.objective > best[0].objective:
            best, stall = (score, deltas), 0
        else:
            stall += 1
    if best is None:
        raise VoxError("invalid_options", "decoder adaptation needs at least one step", 422)
    return AdaptedWeights("in-memory", best[1]), history


@dataclass(frozen=True)
class RuntimeChoice:
    """How close each runtime renders an adapted voice to its speaker, and whether to serve it as trained."""

    served_similarity: float  # the serving engine (onnxruntime Kokoro on a CPU)
    trained_similarity: float  # the engine the weights were trained through (PyTorch Kokoro)
    as_trained: bool

    def to_dict(self) -> dict[str, Any]:
        return {
            "served_similarity": round(self.served_similarity, 4),
            "trained_similarity": round(self.trained_similarity, 4),
            "as_trained": self.as_trained,
        }


def choose_runtime(
    serving: AdaptedSpeaker,
    trained: AdaptedSpeaker,
    encoder: SpeakerEncoder,
    phonemes: list[str],
    style_pack: FloatArray,
    adapted: AdaptedWeights,
    target: FloatArray,
    margin: float = RUNTIME_MARGIN,
) -> RuntimeChoice:
    """Speak ``phonemes`` (``VALIDATION_SENTENCES``) with the adapted weights through both runtimes and keep
    the faster one unless the one it was trained through is closer to the speaker by ``margin``.

    The two runtimes render the same graph slightly apart (docs/cloning.md) and the weights fit the one
    they were trained through; for most voices that costs little when served by onnxruntime, for some a
    great deal (measured 0.657 against 0.754 held-out SECS). This measures it per voice, for 4 sentences of
    synthesis at the end of a job.
    """
    goal = unit(target)

    def similarity(engine: AdaptedSpeaker) -> float:
        clips = [engine.synthesize_adapted(p, style_pack, 1.0, adapted) for p in phonemes]
        return float(np.dot(embed_sentences(encoder, clips, engine.sample_rate), goal))

    served, as_trained = similarity(serving), similarity(trained)
    return RuntimeChoice(served, as_trained, as_trained > served + margin)
