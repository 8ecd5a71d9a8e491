"""The one way enrollment makes a voice: a ``VoiceCloner`` turns a speaker's embedding and speech into the
style (and, where the engine can speak them, decoder weights) that Kokoro then speaks with.

Enrollment takes one cloner and knows nothing of how it works; evaluation and research scripts can hand it
another. ``InstantCloner`` is the shipped one: the learned style map (``instant.py``, the preset blend when
no map ships) followed by the voice's own decoder biases (``instant_decoder.py``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

import numpy as np
from numpy.typing import NDArray

from voxvault.engines.base import FloatArray

if TYPE_CHECKING:
    from voxvault.cloning.conditioning import StyleConditioner
    from voxvault.cloning.instant_decoder import InstantDecoder

CLONE_RATE = 16_000  # the speech a cloner reads (speaker statistics: pitch, the style map's inputs)


@dataclass(frozen=True)
class ClonedVoice:
    """What a cloner made of a speaker: everything enrollment stores for the voice."""

    style: NDArray[np.float32]  # the style pack the TTS speaks with
    # what the style is made of: preset blend weights, or the instant map's numbers (numbers only)
    weights: dict[str, float]
    decoder: Mapping[str, NDArray[np.float32]] | None = field(
        default=None
    )  # own decoder deltas; None: shipped

    @property
    def method(self) -> str:
        return "instant_map" if "instant_map" in self.weights else "preset_blend"

    @property
    def pitch_factor(self) -> float | None:
        """The factor on the F0 contour that gives the voice its speaker's pitch (None: the style's own)."""
        from voxvault.cloning.instant_decoder import pitch_factor

        return pitch_factor(self.decoder)


class VoiceCloner(Protocol):
    def clone(self, embedding: FloatArray, speech: FloatArray, rate: int) -> ClonedVoice:
        """A voice for the speaker of ``embedding`` (unit speaker embedding) and ``speech`` (speech only)."""
        ...


class InstantCloner:
    """The instant clone. Its parts load on first use (the conditioner speaks the presets once)."""

    def __init__(
        self,
        conditioner: Callable[[], StyleConditioner],
        decoder: Callable[[], InstantDecoder | None] | None = None,
    ) -> None:
        self._conditioner, self._decoder = conditioner, decoder

    def clone(self, embedding: FloatArray, speech: FloatArray, rate: int) -> ClonedVoice:
        from voxvault.cloning.pitch import median_f0

        if rate != CLONE_RATE:
            import soxr

            speech = soxr.resample(np.asarray(speech, dtype=np.float32), rate, CLONE_RATE)
        style = self._conditioner().derive_style(embedding, speech)
        decoder = self._decoder() if self._decoder is not None else None
        deltas = (
            decoder.deltas(style.style, embedding, median_f0(speech, CLONE_RATE))
            if decoder is not None
            else None
        )
        return ClonedVoice(np.asarray(style.style, dtype=np.float32), dict(style.weights), deltas)
