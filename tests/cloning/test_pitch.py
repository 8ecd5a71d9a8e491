"""Pitch matching: the pitch map, the factor it gives, and a voice that speaks at its speaker's pitch."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from tests.conftest import needs_testdata, speaker_clips

from voxvault.audio.io import decode
from voxvault.cloning.clone_embedding import basis_fingerprint
from voxvault.cloning.instant import StyleBasis, StyleMap, instant_style
from voxvault.cloning.instant_decoder import InstantDecoder
from voxvault.cloning.pitch import MAX_SEMITONES, PitchMap, median_f0
from voxvault.engines.base import AdaptedWeights
from voxvault.engines.ge2e import GE2EEncoder
from voxvault.engines.kernels import compiler
from voxvault.engines.kokoro import KokoroEngine
from voxvault.engines.onnx_float import PITCH_SCALE
from voxvault.text import TextFrontend

RATE = 16_000
SENTENCES = ("I would like to book a table for two this evening.", "The weather should clear up by noon.")


def tone(hz: float, seconds: float = 2.0) -> np.ndarray:
    t = np.arange(int(seconds * RATE)) / RATE
    return (0.3 * np.sign(np.sin(2 * np.pi * hz * t)) * (1 + 0.1 * np.sin(2 * np.pi * 3 * t))).astype(
        np.float32
    )


def test_median_f0_reads_a_voice_and_refuses_too_little() -> None:
    assert median_f0(tone(120.0), RATE) == pytest.approx(120.0, rel=0.03)
    assert median_f0(tone(220.0), RATE) == pytest.approx(220.0, rel=0.03)
    assert median_f0(tone(120.0, seconds=0.2), RATE) is None  # under half a second voiced
    assert median_f0(np.zeros(RATE * 2, np.float32), RATE) is None  # silence


def test_a_fitted_map_gives_the_factor_to_the_speakers_pitch() -> None:
    rng = np.random.default_rng(0)
    z = rng.normal(size=(200, 4))
    log_f0 = np.log(200.0) + 0.1 * z[:, 0] - 0.05 * z[:, 1]  # what a style's speech measures
    fitted, report = PitchMap.fit_cv(z, log_f0)
    assert report["cv_error_semitones_mean"] < 0.05
    assert np.allclose(fitted.predict_log(z[:5]), log_f0[:5], atol=1e-3)

    presets = {f"p{i}": rng.normal(size=(510, 256)).astype(np.float32) for i in range(6)}
    basis = StyleBasis.from_presets(presets, size=4)
    point = np.array([1.0, 0.0, 0.0, 0.0], np.float32)
    clone = 200.0 * np.exp(0.1)
    assert fitted.clone_f0(basis, basis.pack(point)) == pytest.approx(clone, rel=1e-3)
    # a man at 130 Hz: the factor takes the clone down to him
    assert fitted.scale(basis, basis.pack(point), 130.0) == pytest.approx(130.0 / clone, rel=1e-3)
    # an absurd pitch (a tracker's octave error twice over) is held to an octave
    assert fitted.scale(basis, basis.pack(point), 20.0) == pytest.approx(2 ** (-MAX_SEMITONES / 12))
    for unknown in (None, float("nan"), 0.0):
        assert fitted.scale(basis, basis.pack(point), unknown) is None
    assert fitted.scale(basis, presets["p0"], 110.0) is None  # a preset is no point of a 4-d basis


def test_the_shipped_map_fits_the_shipped_presets(model_cache: Path, tmp_path: Path) -> None:
    engine = KokoroEngine(model_cache, threads=2, kernels="off")
    basis = StyleBasis.from_presets(engine.preset_styles())
    shipped = PitchMap.load()
    assert shipped.size == basis.size and shipped.basis_fingerprint == basis_fingerprint(basis)
    saved = tmp_path / "map.npz"
    shipped.save(saved)
    again = PitchMap.load(saved)
    assert again.basis_fingerprint == shipped.basis_fingerprint and np.array_equal(
        again.weights, shipped.weights
    )


@pytest.mark.research
@pytest.mark.slow
@needs_testdata
@pytest.mark.skipif(compiler() is None, reason="the fused graph needs a C compiler")
def test_a_cloned_man_speaks_near_his_own_pitch(model_cache: Path) -> None:
    engine, encoder = KokoroEngine(model_cache, threads=2), GE2EEncoder()
    decoder = InstantDecoder.for_engine(engine, encoder)
    assert decoder is not None and decoder.pitch_map is not None
    clip = next(p for p in speaker_clips() if p.stem == "en_james")
    audio = decode(clip, max_bytes=50_000_000, max_seconds=120, target_sr=RATE).samples
    target = encoder.embed(audio, RATE)
    target = target / np.linalg.norm(target)
    pack, _ = instant_style(
        StyleBasis.from_presets(engine.preset_styles()), StyleMap.load(), target, audio, RATE
    )
    speaker = median_f0(audio, RATE)
    assert speaker is not None and speaker < 130  # a man's voice
    deltas = decoder.deltas(pack, target, speaker)
    assert PITCH_SCALE in deltas and float(deltas[PITCH_SCALE][0]) < -0.1  # taken down, not up
    frontend = TextFrontend(max_phonemes=engine.max_phonemes)

    def pitch_of(weights: dict[str, np.ndarray]) -> float:
        speech = [
            engine.synthesize_adapted(frontend.phonemes(s), pack, 1.0, AdaptedWeights("v", weights))
            for s in SENTENCES
        ]
        f0 = median_f0(np.concatenate(speech), engine.sample_rate)
        assert f0 is not None
        return f0

    unpitched = pitch_of({n: d for n, d in deltas.items() if n != PITCH_SCALE})
    matched = pitch_of(deltas)
    # measured 141 Hz -> 110 Hz for this speaker at 98-107 Hz; within two semitones of him
    assert abs(12 * np.log2(matched / speaker)) < 2.0 < abs(12 * np.log2(unpitched / speaker))
    # without the setting (VOXVAULT_INSTANT_PITCH=false) the voice gets no factor
    plain = InstantDecoder.for_engine(engine, encoder, pitch=False)
    assert plain is not None and PITCH_SCALE not in plain.deltas(pack, target, speaker)
