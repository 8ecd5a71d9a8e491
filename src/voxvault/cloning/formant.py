"""Formant ratio: a clone's vocal-tract length, moved without changing its pitch or rhythm.

Kokoro's styles keep the formants of the presets they are made from; pitch matching (``pitch.py``) moves
F0 only. Speaking a sentence ``1 / r`` times faster at ``1 / r`` of the pitch and resampling the result so
that it plays ``r`` times slower scales every formant by ``r`` and gives pitch and duration back. Research
round 1 of issue 22 (docs/cloning.md) measured it: per speaker the best ratio is as likely above 1 as below,
so a voice's ratio is chosen at enrollment from ``GRID`` by the encoder the clones are made with (GE2E), on a
sentence that is not one the evaluation holds out, and CAM++ (in no objective) judges the result.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from numpy.typing import NDArray

from voxvault.engines.base import AdaptedSpeaker, AdaptedWeights, FloatArray, SpeakerEncoder
from voxvault.engines.speaker import unit

#: the ratios tried at enrollment (< 1: lower formants, a longer vocal tract)
GRID = (0.85, 0.88, 0.91, 0.94, 0.97, 1.0, 1.03)


def warp(audio: FloatArray, rate: int, ratio: float) -> NDArray[np.float32]:
    """``audio`` played ``ratio`` times faster, kept at ``rate``: every frequency times ``ratio``."""
    import soxr

    x = np.asarray(audio, dtype=np.float32).reshape(-1)
    if abs(ratio - 1.0) < 1e-6:
        return x
    return np.asarray(soxr.resample(x, rate * ratio, rate), dtype=np.float32)


def with_ratio(deltas: Mapping[str, NDArray[np.float32]], ratio: float) -> dict[str, NDArray[np.float32]]:
    """A voice's deltas with its pitch factor divided by ``ratio``, so that after ``warp`` it is unchanged."""
    from voxvault.engines.onnx_float import PITCH_SCALE

    pitch = 1.0 + float(np.asarray(deltas.get(PITCH_SCALE, np.zeros(1))).reshape(-1)[0])
    return {**deltas, PITCH_SCALE: np.array([pitch / ratio - 1.0], dtype=np.float32)}


def speak(
    tts: AdaptedSpeaker,
    phonemes: str,
    pack: FloatArray,
    deltas: Mapping[str, NDArray[np.float32]],
    ratio: float,
    speed: float = 1.0,
) -> NDArray[np.float32]:
    """``phonemes`` in the voice (``pack`` and its ``deltas``) with its formants scaled by ``ratio``."""
    voice = AdaptedWeights("instant", with_ratio(deltas, ratio))
    spoken = tts.synthesize_adapted(phonemes, pack, speed / ratio, voice)
    return warp(spoken, tts.sample_rate, ratio)


def choose_ratio(
    tts: AdaptedSpeaker,
    encoder: SpeakerEncoder,
    phonemes: str,
    pack: FloatArray,
    deltas: Mapping[str, NDArray[np.float32]],
    target: FloatArray,
    grid: Sequence[float] = GRID,
) -> tuple[float, dict[float, float]]:
    """The ratio of ``grid`` whose speech of ``phonemes`` ``encoder`` hears nearest ``target`` (the speaker's
    unit embedding by the same encoder), and every ratio's cosine."""
    rate = tts.sample_rate
    t = unit(target)
    scores = {
        float(r): float(unit(encoder.embed(speak(tts, phonemes, pack, deltas, r), rate)) @ t) for r in grid
    }
    return max(scores, key=lambda r: scores[r]), scores
