"""Instant clone: a learned map from speaker embedding and pitch to a style pack the engine speaks with."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from voxvault.cloning.instant import NATURAL_RADIUS, StyleBasis, StyleMap, f0_track, prosody_features
from voxvault.engines.asr import phrase_recall


def test_pitch_of_a_steady_tone_is_found() -> None:
    rate = 16_000
    t = np.arange(rate) / rate
    tone = (0.3 * np.sin(2 * np.pi * 150 * t)).astype(np.float32)
    f0 = f0_track(tone, rate)
    assert f0.size > 50 and abs(float(np.median(f0)) - 150) < 5
    assert abs(float(np.exp(prosody_features(tone, rate)[0])) - 150) < 5
    assert f0_track(np.zeros(rate, dtype=np.float32), rate).size == 0  # silence has no pitch


def test_a_fitted_map_recovers_a_linear_relation_and_survives_a_round_trip(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(200, 10)).astype(np.float32)
    true = rng.normal(size=(10, 3))
    z = x @ true + 0.5
    fitted = StyleMap.fit(x, z, ridge=1e-3)
    assert np.allclose(fitted.predict(x[:5]), z[:5], atol=1e-2)
    fitted.save(tmp_path / "map.npz")
    loaded = StyleMap.load(tmp_path / "map.npz")
    assert np.allclose(loaded.predict(x[0]), fitted.predict(x[0]))


def test_basis_origin_is_the_mean_preset_and_packs_stay_in_the_natural_region() -> None:
    rng = np.random.default_rng(2)
    presets = {name: rng.normal(size=(510, 256)).astype(np.float32) for name in "abcde"}
    basis = StyleBasis.from_presets(presets, size=4)
    mean = np.mean(np.stack(list(presets.values())), axis=0)
    assert np.allclose(basis.pack(np.zeros(4)), mean, atol=1e-5)
    far = basis.pack(np.full(4, 100.0))
    assert np.allclose(far, basis.pack(np.full(4, NATURAL_RADIUS)))  # clipped, never extrapolated wildly


def test_the_shipped_map_fits_the_shipped_presets(vv: Any) -> None:
    basis = StyleBasis.from_presets(vv.catalog.preset_styles())
    style_map = StyleMap.load()
    assert style_map.weights.shape == (256 + 3 + 1, basis.size)


@pytest.mark.slow
def test_an_instant_clone_is_a_valid_pack_that_speaks_the_words(vv: Any) -> None:
    speech = vv.speak("Every morning I walk to the market and buy fresh bread.", voice="kumo", format="pcm")
    embedding = vv.engines.speaker().embed(speech.samples, speech.sample_rate)
    from voxvault.audio.io import resample

    audio16 = resample(speech.samples, speech.sample_rate, 16_000)
    result = vv.conditioner.derive_style(embedding, audio16)
    assert "instant_map" in result.weights  # the learned mapping, not the preset blend
    assert result.style.shape == (510, 256) and result.style.dtype == np.float32
    assert np.all(np.isfinite(result.style))
    text = "Please call me back when you get this message."
    phonemes = vv.frontend.phonemes(text)
    tts = vv.engines.tts()
    audio = tts.synthesize(phonemes, result.style)
    heard = vv.engines.asr().transcribe(audio, tts.sample_rate)
    assert phrase_recall(text, heard) >= 0.5


def test_cross_validated_map_leaves_unpredictable_coordinates_at_their_mean() -> None:
    rng = np.random.default_rng(3)
    x = rng.normal(size=(120, 6))
    z = np.stack([x[:, 0] * 2.0, rng.normal(size=120) + 0.3], axis=1)  # second coordinate is pure noise
    fitted = StyleMap.fit_cv(x, z, ridges=(0.1, 1.0, 10.0))
    new = rng.normal(size=(4, 6))
    pred = fitted.predict(new)
    assert np.allclose(pred[:, 0], new[:, 0] * 2.0, atol=0.2)
    assert np.allclose(pred[:, 1], z[:, 1].mean())
    assert fitted.meta["predictable_dims"] == 1.0
