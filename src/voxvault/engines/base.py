"""Small protocols every engine implements, so the pipeline never depends on one model.

Engines are plain classes, constructed once (weights loaded in ``__init__``) and reused across requests.
All audio crossing these boundaries is mono float32 in [-1, 1] at the engine's declared sample rate.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np
from numpy.typing import NDArray

from voxvault.errors import VoxError

FloatArray = NDArray[np.float32]

STYLE_DIM = 256
EMBEDDING_DIM = 256


def mono_float32(audio: FloatArray, sample_rate: int, resample_to: int | None = None) -> FloatArray:
    """Checked mono float32 (1-D, a positive integer rate, finite samples), resampled by soxr when asked.

    Every engine that takes a waveform refuses bad input with the same ``invalid_audio`` words.
    """
    wav = np.asarray(audio)
    if wav.ndim != 1:
        raise VoxError("invalid_audio", f"expected mono audio (1-D), got shape {wav.shape}")
    if not isinstance(sample_rate, int | np.integer) or sample_rate <= 0:
        raise VoxError("invalid_audio", f"invalid sample rate {sample_rate!r}")
    wav = wav.astype(np.float32, copy=False)
    if not np.all(np.isfinite(wav)):
        raise VoxError("invalid_audio", "audio contains NaN or infinite samples")
    if resample_to is not None and sample_rate != resample_to and len(wav):
        import soxr  # light; imported here so that base.py stays free of audio libraries at import

        wav = soxr.resample(wav, int(sample_rate), resample_to, quality="HQ").astype(np.float32)
    return wav


@runtime_checkable
class TTSEngine(Protocol):
    """Phonemes + a style vector -> waveform."""

    name: str
    sample_rate: int
    max_phonemes: int

    def synthesize(self, phonemes: str, style: FloatArray, speed: float = 1.0) -> FloatArray:
        """Speak one piece of at most ``max_phonemes`` phoneme characters.

        ``style`` is either a single 256-d vector or a (N, 256) table indexed by phoneme count (Kokoro packs).
        """
        ...


@dataclass(frozen=True)
class AdaptedWeights:
    """A voice's own changes to some model weights (``name`` identifies them: stored, immutable).

    ``deltas`` maps a weight's name to what is added to the shipped value; the engine checks the names and
    shapes. Kept engine-neutral (NumPy) so voices, pipeline and store never import a tensor library.
    """

    name: str
    deltas: Mapping[str, NDArray[np.floating]]
    #: Speak them through the engine they were trained through (PyTorch Kokoro) even where the serving
    #: engine takes them: measured closer to the speaker that way when the adaptation finished.
    as_trained: bool = False


@dataclass(frozen=True)
class TimedSpeech:
    """Audio, and when the engine knows them (from its own durations), the (start, end) in seconds into
    ``audio`` of each whitespace-separated word of the phonemes it spoke."""

    audio: FloatArray
    word_spans: tuple[tuple[float, float], ...] | None = None


@runtime_checkable
class TimedTTS(TTSEngine, Protocol):
    """A TTS engine that can say when each word is spoken (its model's durations, not an estimate)."""

    def synthesize_timed(
        self, phonemes: str, style: FloatArray, speed: float = 1.0, adapted: AdaptedWeights | None = None
    ) -> TimedSpeech: ...


class Interrupted(Exception):
    """A model call cut short because the output it was for was cancelled (``Interruptible``)."""


@runtime_checkable
class Interruptible(TTSEngine, Protocol):
    """A TTS engine whose model call in progress can be cut short, not only the calls after it: a caller
    who barges in frees the model within one graph node instead of one whole piece."""

    def interrupted_by(self, cancel: threading.Event) -> AbstractContextManager[None]:
        """Calls this thread makes inside the block raise ``Interrupted`` soon after ``cancel`` is set."""
        ...


@runtime_checkable
class AdaptedSpeaker(TTSEngine, Protocol):
    """A TTS engine that can speak some voices' adapted weights itself, per call (concurrent voices
    differ); ``speaks`` says which (onnxruntime Kokoro: the decoder's style biases only)."""

    def speaks(self, adapted: AdaptedWeights) -> bool: ...

    def synthesize_adapted(
        self, phonemes: str, style: FloatArray, speed: float, adapted: AdaptedWeights
    ) -> FloatArray: ...

    def shipped_biases(self) -> Mapping[str, NDArray[np.float32]]:
        """The shipped values of the style biases an adapted voice may change (name -> array)."""
        ...


@runtime_checkable
class AdaptableTTS(AdaptedSpeaker, Protocol):
    """An engine that speaks any adapted weights and computes gradients through the model (PyTorch
    Kokoro): what fine-tuning jobs train with."""

    def forward(self, tokens: Sequence[int], style: Any, speed: float = 1.0, weights: Any = None) -> Any: ...


@runtime_checkable
class SpeakerEncoder(Protocol):
    """Waveform -> L2-normalised speaker embedding."""

    name: str
    sample_rate: int
    dim: int

    def embed(self, audio: FloatArray, sample_rate: int) -> FloatArray: ...


@dataclass(frozen=True)
class SpeechSegment:
    start: float  # seconds
    end: float


@runtime_checkable
class VoiceActivityDetector(Protocol):
    name: str
    sample_rate: int

    def speech_segments(self, audio: FloatArray, sample_rate: int) -> list[SpeechSegment]: ...


@dataclass(frozen=True)
class WordTiming:
    word: str
    start: float
    end: float


@runtime_checkable
class SpeechRecognizer(Protocol):
    name: str
    sample_rate: int

    def transcribe(self, audio: FloatArray, sample_rate: int) -> str: ...

    def align(self, audio: FloatArray, sample_rate: int, text: str) -> list[WordTiming]: ...
