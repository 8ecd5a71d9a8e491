"""The formant ratio moves a voice's formants and leaves its pitch and timing where they were."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pytest
from numpy.typing import NDArray

from voxvault.cloning import formant
from voxvault.engines.base import AdaptedWeights, FloatArray
from voxvault.engines.onnx_float import PITCH_SCALE

RATE = 24_000
FORMANT_HZ = 1_000.0


class ToneSpeaker:
    """A fake engine: one second (at speed 1) of a pitch tone at 100 Hz times the voice's pitch factor plus a
    fixed 'formant' tone, the way a vocoder's formants stay put when only F0 is scaled."""

    sample_rate = RATE
    name = "tones"
    max_phonemes = 510

    def __init__(self) -> None:
        self.calls: list[tuple[float, float]] = []

    def synthesize_adapted(
        self, phonemes: str, style: FloatArray, speed: float, adapted: AdaptedWeights
    ) -> NDArray[np.float32]:
        pitch = 1.0 + float(np.asarray(adapted.deltas.get(PITCH_SCALE, np.zeros(1))).reshape(-1)[0])
        self.calls.append((speed, pitch))
        t = np.arange(int(RATE / speed)) / RATE
        return (0.5 * np.sin(2 * np.pi * 100 * pitch * t) + 0.2 * np.sin(2 * np.pi * FORMANT_HZ * t)).astype(
            np.float32
        )

    def speaks(self, adapted: AdaptedWeights) -> bool:
        return True

    def shipped_biases(self) -> Mapping[str, NDArray[np.float32]]:
        return {}


def peaks(audio: FloatArray, rate: int) -> tuple[float, float]:
    """(strongest frequency below 500 Hz, strongest above), Hz."""
    spectrum = np.abs(np.fft.rfft(audio * np.hanning(len(audio))))
    freqs = np.fft.rfftfreq(len(audio), 1 / rate)
    low, high = freqs < 500, freqs >= 500
    return float(freqs[low][spectrum[low].argmax()]), float(freqs[high][spectrum[high].argmax()])


def test_warp_scales_every_frequency() -> None:
    t = np.arange(RATE) / RATE
    tone = np.sin(2 * np.pi * 200 * t).astype(np.float32)
    lower = formant.warp(tone, RATE, 0.9)
    assert abs(len(lower) - RATE / 0.9) < 50
    assert abs(peaks(lower, RATE)[0] - 180) < 3
    assert np.array_equal(formant.warp(tone, RATE, 1.0), tone)


def test_speak_moves_formants_and_keeps_pitch_and_length() -> None:
    tts = ToneSpeaker()
    deltas = {PITCH_SCALE: np.array([0.2], dtype=np.float32), "bias": np.ones(3, np.float32)}
    plain = formant.speak(tts, "x", np.zeros(256, np.float32), deltas, 1.0)  # type: ignore[arg-type]
    lowered = formant.speak(tts, "x", np.zeros(256, np.float32), deltas, 0.9)  # type: ignore[arg-type]
    pitch_plain, formant_plain = peaks(plain, RATE)
    pitch_lowered, formant_lowered = peaks(lowered, RATE)
    assert abs(pitch_plain - 120) < 2 and abs(pitch_lowered - 120) < 2  # the voice's pitch stays
    assert abs(formant_plain - FORMANT_HZ) < 3 and abs(formant_lowered - 0.9 * FORMANT_HZ) < 3
    assert abs(len(lowered) - len(plain)) < 0.01 * RATE  # and so does its timing
    # the engine was asked for faster, higher speech; the other deltas went through untouched
    speed, pitch = tts.calls[-1]
    assert speed == pytest.approx(1 / 0.9) and pitch == pytest.approx(1.2 / 0.9, rel=1e-6)
    assert np.array_equal(formant.with_ratio(deltas, 0.9)["bias"], deltas["bias"])


class CentroidEncoder:
    """A fake encoder that hears only where the spectrum's energy above 500 Hz sits."""

    name = "centroid"
    dim = 2
    sample_rate = RATE

    def embed(self, audio: FloatArray, sample_rate: int) -> NDArray[np.float32]:
        angle = peaks(np.asarray(audio), sample_rate)[1] / 1000.0
        return np.array([np.cos(angle), np.sin(angle)], dtype=np.float32)


def test_choose_ratio_picks_the_grid_point_the_encoder_hears_nearest() -> None:
    encoder = CentroidEncoder()
    target = encoder.embed(np.sin(2 * np.pi * 910 * np.arange(RATE) / RATE), RATE)  # a speaker at 0.91
    chosen, scores = formant.choose_ratio(
        ToneSpeaker(),  # type: ignore[arg-type]
        encoder,
        "x",
        np.zeros(256, np.float32),
        {},
        target,
    )
    assert chosen == 0.91
    assert set(scores) == set(formant.GRID) and max(scores.values()) == scores[0.91]
