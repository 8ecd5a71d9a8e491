"""Instant decoder step: at enrollment a voice gets its own decoder style biases, in well under a second.

Decoder adaptation (``cloning/adapt/decoder.py``) makes the closest clones by tuning the decoder's 58
style biases with gradient steps through PyTorch Kokoro, a few seconds a step on a CPU. Its first step
moves furthest: Adam's first update is the learning rate times the *sign* of the gradient, and that
gradient is ``J^T g``, where ``J`` is the Jacobian of the GE2E embedding of the clone's speech with respect
to those biases and ``g`` the direction from the clone's embedding toward the speaker's. ``J`` belongs to
the model, not to the speaker, so it is computed once, offline (``bench/train_decoder_jacobian.py``: 256
backward passes at the average preset style, the two sentences below), and ships truncated to its leading
singular directions (``cloning/data/decoder_jacobian.npz``). At enrollment: speak the two sentences with
the voice's instant style (onnxruntime), embed them, ``g = t - (t.e) e`` (the gradient of the cosine to
the speaker's unit embedding ``t``), deltas = ``STEP * sign(J^T g)``. A single step: more, with the same
``J``, raised the similarity on those sentences and lowered it on others (``docs/cloning.md``). Where the
decoder prior ships (``cloning/decoder_prior.py``), the step is added to its prediction of where
fine-tuning would take the speaker's biases. Where the clone embedding map ships
(``cloning/clone_embedding.py``), the embedding of the two sentences is predicted from the instant style
instead of spoken, which takes the instant clone from seconds to milliseconds. Where the pitch map ships
(``cloning/pitch.py``), the voice also gets the pitch factor that moves its clone's median F0 to the
speaker's, one more per-call input beside the biases.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
from numpy.typing import NDArray

from voxvault.cloning.bias_layout import shape_arrays, shapes_of, split
from voxvault.cloning.clone_embedding import CloneEmbeddingMap, basis_fingerprint, jacobian_key
from voxvault.cloning.decoder_prior import DecoderPrior
from voxvault.cloning.instant import StyleBasis
from voxvault.cloning.pitch import PitchMap
from voxvault.engines.base import AdaptedSpeaker, AdaptedWeights, FloatArray, SpeakerEncoder, TTSEngine
from voxvault.engines.speaker import embed_sentences, unit

log = logging.getLogger(__name__)
_Loaded = TypeVar("_Loaded")

JACOBIAN_FILE = "decoder_jacobian.npz"
#: The blob a voice's instant decoder biases are sealed under (``meta.decoder.current`` names it).
INSTANT_DECODER_BLOB = "decoder/instant"


@dataclass(frozen=True)
class DecoderJacobian:
    """``J ~= left @ right``: (256, k) and (k, n) for the n = sum of the biases' sizes, in ``names`` order."""

    names: tuple[str, ...]
    shapes: tuple[tuple[int, ...], ...]
    left: NDArray[np.float32]
    right: NDArray[np.float16]
    sentences: tuple[str, ...]
    step: float
    fingerprint: str  # of the biases' shipped values: a Jacobian of another model is never applied

    @classmethod
    def load(cls, path: Path | None = None) -> DecoderJacobian:
        source = path or Path(str(resources.files("voxvault.cloning").joinpath("data", JACOBIAN_FILE)))
        with np.load(source, allow_pickle=False) as f:
            sizes = [int(n) for n in f["sizes"]]
            jac = cls(
                names=tuple(str(n) for n in f["names"]),
                shapes=shapes_of(f),
                left=np.asarray(f["left"], dtype=np.float32),
                right=np.asarray(f["right"], dtype=np.float16),
                sentences=tuple(str(s) for s in f["sentences"]),
                step=float(f["step"]),
                fingerprint=str(f["fingerprint"]),
            )
        if [int(np.prod(s)) for s in jac.shapes] != sizes or sum(sizes) != jac.right.shape[1]:
            raise ValueError("decoder Jacobian: shapes do not match its matrix")
        return jac

    @staticmethod
    def save(
        path: Path,
        jacobian: NDArray[Any],
        names: Sequence[str],
        shapes: Sequence[tuple[int, ...]],
        *,
        rank: int,
        sentences: Sequence[str],
        step: float,
        fingerprint: str,
    ) -> None:
        """Keep the ``rank`` leading singular directions of the full (256, n) ``jacobian``."""
        u, s, vt = np.linalg.svd(np.asarray(jacobian, dtype=np.float64), full_matrices=False)
        np.savez_compressed(
            path,
            left=(u[:, :rank] * s[:rank]).astype(np.float32),
            right=vt[:rank].astype(np.float16),
            names=np.array(list(names)),
            sizes=np.array([int(np.prod(x)) for x in shapes], dtype=np.int64),
            **shape_arrays(shapes),  # type: ignore[arg-type]  # numpy stubs match ** to allow_pickle
            sentences=np.array(list(sentences)),
            step=np.float64(step),
            fingerprint=np.array(fingerprint),
        )

    @cached_property
    def right32(self) -> NDArray[np.float32]:
        """``right`` in float32, converted once (it ships in float16 to halve the package's file)."""
        return self.right.astype(np.float32)

    def toward(self, target: FloatArray, current: FloatArray) -> dict[str, NDArray[np.float32]]:
        """One sign step of the biases from the clone's embedding ``current`` toward ``target``."""
        direction = self.direction(target, current)
        return split((self.step * np.sign(direction)).astype(np.float32), self.names, self.shapes)

    def direction(self, target: FloatArray, current: FloatArray) -> NDArray[np.float32]:
        """``J^T g``, flat: the gradient of the clone's cosine to ``target`` with respect to the biases,
        ``g = t - (t.e) e`` the way from the clone's unit embedding ``e`` toward the speaker's ``t``."""
        t = unit(target)
        e = unit(current)
        g = t - float(t @ e) * e
        return np.asarray(self.right32.T @ (self.left.T @ g.astype(np.float32)), dtype=np.float32)


def bias_fingerprint(shipped: Mapping[str, NDArray[Any]], names: Sequence[str]) -> str:
    """sha256 over the named biases' shipped values (float32, in order)."""
    digest = hashlib.sha256()
    for name in names:
        digest.update(name.encode())
        digest.update(np.ascontiguousarray(shipped[name], dtype=np.float32).tobytes())
    return digest.hexdigest()


class InstantDecoder:
    """Applies the shipped Jacobian with the serving engine; loaded once, reused for every enrollment."""

    def __init__(
        self,
        tts: TTSEngine,
        encoder: SpeakerEncoder,
        jacobian: DecoderJacobian,
        prior: DecoderPrior | None = None,
        embedding_map: tuple[CloneEmbeddingMap, StyleBasis] | None = None,
        pitch_map: tuple[PitchMap, StyleBasis] | None = None,
    ) -> None:
        from voxvault.text import TextFrontend

        self.tts, self.encoder, self.jacobian, self.prior = tts, encoder, jacobian, prior
        self.embedding_map, self.pitch_map = embedding_map, pitch_map
        self.frontend = TextFrontend(max_phonemes=tts.max_phonemes)
        self.phonemes = [self.frontend.phonemes(s) for s in jacobian.sentences]

    @classmethod
    def for_engine(
        cls,
        tts: TTSEngine,
        encoder: SpeakerEncoder,
        path: Path | None = None,
        *,
        prior: bool = True,
        prior_path: Path | None = None,
        predicted: bool = True,
        map_path: Path | None = None,
        pitch: bool = True,
        pitch_path: Path | None = None,
    ) -> InstantDecoder | None:
        """None when the engine cannot speak per-call biases or the Jacobian (``path``, default the shipped
        one) is not its model's. With ``prior``, the decoder prior (``prior_path``, default the shipped one)
        is used when it is the same model's; without it, or when it is not, the plain step. With
        ``predicted``, the clone embedding map (``map_path``, default the shipped one) replaces speaking
        the Jacobian's sentences when it was trained for this model, sentences and style basis. With
        ``pitch``, the pitch map (``pitch_path``, default the shipped one) gives voices their speaker's
        pitch when the engine takes a pitch factor and the map was trained for its style basis."""
        if not isinstance(tts, AdaptedSpeaker):
            return None
        jacobian = load_or_none(DecoderJacobian.load, path, "instant decoder step", logging.WARNING)
        if jacobian is None:
            return None
        zero = AdaptedWeights(
            "probe",
            {n: np.zeros(s, np.float32) for n, s in zip(jacobian.names, jacobian.shapes, strict=True)},
        )
        if not tts.speaks(zero):
            return None
        if bias_fingerprint(tts.shipped_biases(), jacobian.names) != jacobian.fingerprint:
            log.warning("instant decoder step unavailable: the Jacobian is for another model")
            return None
        return cls(
            tts,
            encoder,
            jacobian,
            load_prior(jacobian, prior_path) if prior else None,
            load_embedding_map(tts, jacobian, map_path) if predicted else None,
            load_pitch_map(tts, pitch_path) if pitch else None,
        )

    def embedding(
        self, pack: FloatArray, pitch: Mapping[str, NDArray[np.float32]] | None = None
    ) -> NDArray[np.float32]:
        """GE2E embedding (unit length) of the Jacobian's sentences in ``pack`` at the voice's ``pitch``
        (``pitch()``'s delta; none: as the style speaks): predicted where the map applies to ``pack`` (an
        instant style) and that pitch, else spoken."""
        if self.embedding_map is not None:
            embedding_map, basis = self.embedding_map
            predicted = embedding_map.embedding(basis, pack, pitch_factor(pitch))
            if predicted is not None:
                return predicted
        return self.spoken_embedding(pack, pitch)

    def spoken_embedding(
        self, pack: FloatArray, pitch: Mapping[str, NDArray[np.float32]] | None = None
    ) -> NDArray[np.float32]:
        """GE2E embedding (unit length) of the Jacobian's sentences spoken in ``pack`` at ``pitch``."""
        tts = self.tts
        if pitch and isinstance(tts, AdaptedSpeaker):
            voice = AdaptedWeights("pitch", dict(pitch))
            clips = [tts.synthesize_adapted(phonemes, pack, 1.0, voice) for phonemes in self.phonemes]
        else:
            clips = [tts.synthesize(phonemes, pack) for phonemes in self.phonemes]
        return embed_sentences(self.encoder, clips, self.tts.sample_rate)

    def step(
        self,
        pack: FloatArray,
        target: FloatArray,
        *,
        spoken: bool = False,
        pitch: Mapping[str, NDArray[np.float32]] | None = None,
    ) -> dict[str, NDArray[np.float32]]:
        """The Jacobian step alone: one sign step from the voice's instant style, at its ``pitch``, toward the
        speaker, measured without the decoder prior (measuring it with the prior's prediction applied scored
        the same on average and worse for some speakers); ``spoken``: from the spoken embedding even where
        it can be predicted. From the voice at its own pitch: 0.742 held-out SECS against 0.732 from the
        style's pitch on the six test speakers, 0.705 against 0.701 on 15 unseen (docs/cloning.md)."""
        e = self.spoken_embedding(pack, pitch) if spoken else self.embedding(pack, pitch)
        return self.jacobian.toward(target, e)

    def with_prior(
        self, step: Mapping[str, NDArray[np.float32]], target: FloatArray
    ) -> dict[str, NDArray[np.float32]]:
        """``step`` added to the prior's prediction for the speaker; ``step`` itself without a prior."""
        if self.prior is None:
            return dict(step)
        start = self.prior.predict(target)
        return {n: start[n] + d for n, d in step.items()}

    def pitch(self, pack: FloatArray, speaker_f0: float | None) -> dict[str, NDArray[np.float32]]:
        """``{PITCH_SCALE: factor - 1}`` (a delta, as the biases') that moves ``pack``'s clone to the
        speaker's median F0 (Hz); empty without a pitch map, a measured pitch or an instant style."""
        from voxvault.engines.onnx_float import PITCH_SCALE

        if self.pitch_map is None:
            return {}
        pitch_map, basis = self.pitch_map
        factor = pitch_map.scale(basis, pack, speaker_f0)
        return {} if factor is None else {PITCH_SCALE: np.array([factor - 1.0], dtype=np.float32)}

    def deltas(
        self, pack: FloatArray, target: FloatArray, speaker_f0: float | None = None
    ) -> dict[str, NDArray[np.float32]]:
        """The voice's own deltas: the prior's prediction (where there is one) plus the step, and the pitch
        factor for the speaker's median F0 (``speaker_f0``, Hz) where it applies."""
        t0 = time.perf_counter()
        pitch = self.pitch(pack, speaker_f0)
        deltas = self.with_prior(self.step(pack, target, pitch=pitch), target)
        deltas.update(pitch)
        log.info(
            "instant decoder step: %d biases, prior %s, clone embedding map %s, pitch factor %s, in %.2fs",
            len(deltas) - len(pitch),
            "yes" if self.prior is not None else "no",
            "yes" if self.embedding_map is not None else "no",
            f"{pitch_factor(pitch):.3f}" if pitch else "no",
            time.perf_counter() - t0,
        )
        return deltas


def pitch_factor(deltas: Mapping[str, NDArray[np.float32]] | None) -> float | None:
    """The pitch factor a voice's deltas (or a ``pitch()`` delta) set; None for none."""
    from voxvault.engines.onnx_float import PITCH_SCALE

    if not deltas or PITCH_SCALE not in deltas:
        return None
    return 1.0 + float(np.asarray(deltas[PITCH_SCALE]).reshape(-1)[0])


def load_or_none(
    load: Callable[[Path | None], _Loaded], path: Path | None, what: str, level: int = logging.INFO
) -> _Loaded | None:
    """``load(path)``, or None (logged, without the path or the exception's text) when the shipped file is
    missing or unreadable: each of these files is an optional improvement of the instant clone."""
    try:
        return load(path)
    except (FileNotFoundError, OSError, ValueError, KeyError) as exc:
        log.log(level, "%s unavailable: %s", what, type(exc).__name__)
        return None


def load_prior(jacobian: DecoderJacobian, path: Path | None = None) -> DecoderPrior | None:
    """The decoder prior, when it exists and was fitted for the Jacobian's model and biases."""
    prior = load_or_none(DecoderPrior.load, path, "decoder prior")
    if prior is None:
        return None
    if prior.fingerprint != jacobian.fingerprint or (prior.names, prior.shapes) != (
        jacobian.names,
        jacobian.shapes,
    ):
        log.warning("decoder prior unavailable: it is for another model")
        return None
    return prior


def load_embedding_map(
    tts: TTSEngine, jacobian: DecoderJacobian, path: Path | None = None
) -> tuple[CloneEmbeddingMap, StyleBasis] | None:
    """The clone embedding map and the style basis it reads, when it was trained for this engine's presets
    and the Jacobian's model and sentences."""
    styles = getattr(tts, "preset_styles", None)
    if not callable(styles):
        return None
    embedding_map = load_or_none(CloneEmbeddingMap.load, path, "clone embedding map")
    if embedding_map is None:
        return None
    basis = StyleBasis.from_presets(styles())
    if embedding_map.size != basis.size or (
        embedding_map.basis_fingerprint,
        embedding_map.jacobian_fingerprint,
    ) != (basis_fingerprint(basis), jacobian_key(jacobian.fingerprint, jacobian.sentences)):
        log.warning("clone embedding map unavailable: it is for another model, style basis or sentences")
        return None
    return embedding_map, basis


def load_pitch_map(tts: TTSEngine, path: Path | None = None) -> tuple[PitchMap, StyleBasis] | None:
    """The pitch map and the style basis it reads, when the engine takes a pitch factor per call and the
    map was trained for its presets."""
    from voxvault.engines.onnx_float import PITCH_SCALE

    styles = getattr(tts, "preset_styles", None)
    probe = AdaptedWeights("probe", {PITCH_SCALE: np.zeros(1, np.float32)})
    if not callable(styles) or not isinstance(tts, AdaptedSpeaker) or not tts.speaks(probe):
        return None
    pitch_map = load_or_none(PitchMap.load, path, "pitch map")
    if pitch_map is None:
        return None
    basis = StyleBasis.from_presets(styles())
    if pitch_map.size != basis.size or pitch_map.basis_fingerprint != basis_fingerprint(basis):
        log.warning("pitch map unavailable: it is for another style basis")
        return None
    return pitch_map, basis
