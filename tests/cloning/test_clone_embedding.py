"""The clone embedding map: it learns a smooth function of the style, survives a save and load, fits the
shipped model, and the instant decoder step then predicts instead of speaking (no synthesis at all) while
landing where the spoken embedding would take it; a pack that is not an instant style, or a map of another
model, falls back to speaking."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from tests.conftest import needs_testdata, speaker_clips

from voxvault.audio.io import decode
from voxvault.cloning.clone_embedding import CloneEmbeddingMap, quadratic_features
from voxvault.cloning.instant import StyleBasis, StyleMap, instant_style
from voxvault.cloning.instant_decoder import InstantDecoder, load_embedding_map
from voxvault.cloning.pitch import median_f0
from voxvault.engines.ge2e import GE2EEncoder
from voxvault.engines.kernels import compiler
from voxvault.engines.kokoro import KokoroEngine
from voxvault.engines.speaker import unit


def _small_basis(rng: np.random.Generator) -> StyleBasis:
    presets = {f"p{i}": rng.normal(size=(12, 16)).astype(np.float32) for i in range(5)}
    return StyleBasis.from_presets(presets, size=6)


def test_the_map_learns_a_quadratic_function_of_the_style_and_round_trips(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    truth = rng.normal(size=(quadratic_features(np.zeros((1, 6))).shape[1], 256))
    z = rng.normal(size=(300, 6))
    e = quadratic_features(z) @ truth  # the map fits the raw vector; it is compared by direction
    fitted, report = CloneEmbeddingMap.fit_cv(z, e)
    assert report["cv_cosine_mean"] > 0.99
    new = rng.normal(size=(5, 6))
    expected = np.stack([unit(row) for row in quadratic_features(new) @ truth])
    assert np.all(np.sum(fitted.predict(new) * expected, axis=1) > 0.98)
    path = tmp_path / "map.npz"
    fitted.with_fingerprints("b" * 64, "j" * 64).save(path)
    loaded = CloneEmbeddingMap.load(path)
    assert (loaded.basis_fingerprint, loaded.jacobian_fingerprint, loaded.size) == ("b" * 64, "j" * 64, 6)
    assert np.allclose(loaded.predict(new), fitted.predict(new), atol=1e-5)


def test_only_a_point_of_the_basis_gets_a_predicted_embedding() -> None:
    rng = np.random.default_rng(3)
    basis = _small_basis(rng)
    z = rng.normal(size=(40, basis.size))
    fitted = CloneEmbeddingMap.fit(z, rng.normal(size=(40, 256)), ridge=1.0)
    point = basis.pack(np.full(basis.size, 0.5))
    assert fitted.embedding(basis, point) is not None
    assert fitted.embedding(basis, point.reshape(12, 1, 16)) is not None  # a pack as the engine shapes it
    # A preset's own pack varies row by row; an instant style adds one offset to every row
    preset = rng.normal(size=(12, 16)).astype(np.float32)
    assert fitted.embedding(basis, preset) is None


def test_a_map_trained_with_pitch_factors_predicts_the_voice_at_its_pitch(tmp_path: Path) -> None:
    rng = np.random.default_rng(4)
    basis = _small_basis(rng)
    z = rng.normal(size=(400, basis.size))
    factors = np.exp(rng.uniform(np.log(0.62), np.log(1.25), 400))
    inputs = CloneEmbeddingMap.inputs(z, factors)
    truth = rng.normal(size=(quadratic_features(inputs[:1]).shape[1], 256))
    fitted, report = CloneEmbeddingMap.fit_cv(z, quadratic_features(inputs) @ truth, pitch=factors)
    assert fitted.pitched and report["cv_cosine_mean"] > 0.99
    point = basis.pack(np.full(basis.size, 0.3))
    low, high = fitted.embedding(basis, point, 0.7), fitted.embedding(basis, point, 1.2)
    assert low is not None and high is not None and float(low @ high) < 0.999  # pitch moves the embedding
    expected = unit((quadratic_features(CloneEmbeddingMap.inputs(basis.coords(point), 0.7)) @ truth)[0])
    assert float(low @ expected) > 0.98
    path = tmp_path / "pitched.npz"
    fitted.save(path)
    assert CloneEmbeddingMap.load(path).pitched
    # A map trained at the style's own pitch knows nothing of other pitches: the step speaks instead
    flat = CloneEmbeddingMap.fit(z, rng.normal(size=(400, 256)), ridge=1.0)
    assert not flat.pitched and flat.embedding(basis, point, 0.7) is None
    assert flat.embedding(basis, point, 1.0) is not None and flat.embedding(basis, point) is not None


class CountingEngine:
    """The real engine, counting what it is asked to speak."""

    def __init__(self, engine: KokoroEngine) -> None:
        self.engine, self.spoken = engine, 0

    def synthesize(self, *args: Any, **kwargs: Any) -> Any:
        self.spoken += 1
        return self.engine.synthesize(*args, **kwargs)

    def synthesize_adapted(self, *args: Any, **kwargs: Any) -> Any:
        self.spoken += 1
        return self.engine.synthesize_adapted(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.engine, name)


@pytest.mark.research
@pytest.mark.skipif(compiler() is None, reason="the fused graph needs a C compiler")
@needs_testdata
def test_the_instant_step_predicts_what_speaking_would_give(model_cache: Path, tmp_path: Path) -> None:
    engine, encoder = KokoroEngine(model_cache, threads=2), GE2EEncoder()
    decoder = InstantDecoder.for_engine(engine, encoder)
    assert decoder is not None and decoder.embedding_map is not None
    assert load_embedding_map(engine, decoder.jacobian) is not None
    counting = CountingEngine(engine)
    decoder.tts = counting  # type: ignore[assignment]
    basis = StyleBasis.from_presets(engine.preset_styles())
    agreements, cosines = [], []
    for clip in speaker_clips()[:3]:  # English speakers: the map was trained on German ones
        audio = decode(clip, max_bytes=50_000_000, max_seconds=120, target_sr=16_000).samples
        enrol = audio[: int(0.6 * len(audio))]
        target = unit(encoder.embed(enrol, 16_000))
        pack, _ = instant_style(basis, StyleMap.load(), target, enrol, 16_000)
        pitch = decoder.pitch(pack, median_f0(enrol, 16_000))  # the voice as it will sound
        assert pitch
        predicted = decoder.embedding(pack, pitch)
        assert counting.spoken == 0  # predicted: nothing was synthesised
        spoken = decoder.spoken_embedding(pack, pitch)
        counting.spoken = 0
        cosines.append(float(predicted @ spoken))
        step = np.concatenate([v.ravel() for v in decoder.jacobian.toward(target, predicted).values()])
        truth = np.concatenate([v.ravel() for v in decoder.jacobian.toward(target, spoken).values()])
        agreements.append(float(np.mean(np.sign(step) == np.sign(truth))))
    # Measured for these speakers: cosine 0.978-0.991, 94-96 % of the biases step the same way
    assert min(cosines) > 0.96, cosines
    assert min(agreements) > 0.9, agreements
    # A preset's pack is not an instant style: the step speaks the sentences as before
    decoder.embedding(next(iter(engine.preset_styles().values())))
    assert counting.spoken == len(decoder.jacobian.sentences)
    # A map of another model is not used
    other = tmp_path / "other.npz"
    shipped = decoder.embedding_map[0]  # type: ignore[index]
    shipped.with_fingerprints(shipped.basis_fingerprint, "0" * 64).save(other)
    assert InstantDecoder.for_engine(engine, encoder, map_path=other).embedding_map is None  # type: ignore[union-attr]
    assert InstantDecoder.for_engine(engine, encoder, predicted=False).embedding_map is None  # type: ignore[union-attr]
