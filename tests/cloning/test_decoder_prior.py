"""The decoder prior: the ridge regression recovers a linear map from embeddings to deltas, survives a save
and load, fits the shipped model and Jacobian, and the instant step starts from it; a prior of another
model is never applied, and the step goes on without it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from tests.conftest import needs_testdata, speaker_clips

from voxvault.audio.io import decode
from voxvault.cloning.decoder_prior import DecoderPrior, design_rows, ridge_dual
from voxvault.cloning.evaluation import HELD_OUT_SENTENCES
from voxvault.cloning.instant import StyleBasis, StyleMap, instant_style
from voxvault.cloning.instant_decoder import DecoderJacobian, InstantDecoder, load_prior
from voxvault.engines.base import AdaptedWeights
from voxvault.engines.ge2e import GE2EEncoder
from voxvault.engines.kernels import compiler
from voxvault.engines.kokoro import KokoroEngine
from voxvault.text import TextFrontend


def _unit(rows: np.ndarray) -> np.ndarray:
    return rows / np.linalg.norm(rows, axis=-1, keepdims=True)


def test_ridge_recovers_a_linear_map_for_a_new_speaker() -> None:
    rng = np.random.default_rng(3)
    truth = rng.normal(size=(257, 40))
    train = _unit(rng.normal(size=(300, 256)))
    deltas = design_rows(train) @ truth
    coef = ridge_dual(train, deltas, lam=1e-6)
    new = _unit(rng.normal(size=256))
    predicted = (design_rows(train) @ design_rows(new)[0]) @ coef
    expected = design_rows(new)[0] @ truth
    assert np.allclose(predicted, expected, atol=1e-3 * np.abs(expected).max())
    # A strong penalty shrinks the prediction toward zero instead of fitting the training speakers
    shrunk = (design_rows(train) @ design_rows(new)[0]) @ ridge_dual(train, deltas, lam=1e6)
    assert np.linalg.norm(shrunk) < 0.1 * np.linalg.norm(expected)


def test_a_saved_prior_loads_and_predicts_its_scaled_regression(tmp_path: Path) -> None:
    rng = np.random.default_rng(4)
    names, shapes = ("a.bias", "b.bias"), ((3,), (2, 2))
    train = _unit(rng.normal(size=(5, 256)))
    deltas = rng.normal(size=(5, 7))
    path = tmp_path / "prior.npz"
    DecoderPrior.save(path, train, deltas, names, shapes, lam=0.5, scale=0.5, fingerprint="f" * 64)
    prior = DecoderPrior.load(path)
    assert (prior.names, prior.shapes, prior.speakers, prior.scale) == (names, shapes, 5, 0.5)
    target = rng.normal(size=256)  # not unit: the prior normalises it as the training did
    got = prior.predict(target)
    assert [v.shape for v in got.values()] == [(3,), (2, 2)]
    x = design_rows(train)
    expected = 0.5 * (x @ design_rows(target)[0]) @ ridge_dual(train, deltas, 0.5)
    flat = np.concatenate([v.reshape(-1) for v in got.values()])
    assert np.allclose(flat, expected, atol=2e-3 * np.abs(expected).max())  # coef ships in float16
    # The speakers it was fitted on come back out of the dual form (a refit with more need not redo them)
    assert prior.lam == 0.5
    assert np.allclose(prior.training_deltas(), deltas, atol=5e-3 * np.abs(deltas).max())
    broken = tmp_path / "broken.npz"
    np.savez(broken, **{k: v for k, v in np.load(path).items() if k != "coef"})
    with pytest.raises(KeyError):
        DecoderPrior.load(broken)


def test_the_shipped_prior_fits_the_shipped_jacobian() -> None:
    jacobian = DecoderJacobian.load()
    prior = load_prior(jacobian)
    assert prior is not None
    assert prior.speakers >= 40  # the German reference speakers (bench/train_decoder_prior.py)
    assert 0 < prior.scale <= 1
    assert np.all(np.isfinite(prior.coef.astype(np.float32)))


@pytest.mark.skipif(compiler() is None, reason="the fused graph needs a C compiler")
def test_the_instant_step_starts_from_the_prior(model_cache: Path, tmp_path: Path) -> None:
    engine, encoder = KokoroEngine(model_cache, threads=2), GE2EEncoder()
    decoder = InstantDecoder.for_engine(engine, encoder)
    assert decoder is not None and decoder.prior is not None
    assert InstantDecoder.for_engine(engine, encoder, prior=False).prior is None  # type: ignore[union-attr]
    pack = StyleBasis.from_presets(engine.preset_styles()).pack(np.zeros(24))
    target = _unit(np.random.default_rng(5).normal(size=256))
    start = decoder.prior.predict(target)
    deltas = decoder.deltas(pack, target)
    # What is left after the prior is one sign step, every bias moved by the step
    step = np.concatenate([(deltas[n] - start[n]).reshape(-1) for n in decoder.jacobian.names])
    assert np.allclose(np.abs(step), decoder.jacobian.step, atol=1e-6)
    assert max(float(np.abs(v).max()) for v in start.values()) > 0  # the prior moved something
    # A prior fitted for some other model's biases is ignored; the step still applies
    other = tmp_path / "other.npz"
    prior = decoder.prior
    DecoderPrior.save(
        other,
        prior.anchors[:, :256],
        prior.coef32,
        prior.names,
        prior.shapes,
        lam=1.0,
        scale=prior.scale,
        fingerprint="0" * 64,
    )
    plain = InstantDecoder.for_engine(engine, encoder, prior_path=other)
    assert plain is not None and plain.prior is None
    only_step = np.concatenate([v.reshape(-1) for v in plain.deltas(pack, target).values()])
    assert np.allclose(np.abs(only_step), plain.jacobian.step)


@pytest.mark.research
@pytest.mark.slow
@needs_testdata
@pytest.mark.skipif(compiler() is None, reason="the fused graph needs a C compiler")
def test_the_prior_brings_a_real_speaker_closer_than_the_step_alone(model_cache: Path) -> None:
    engine, encoder = KokoroEngine(model_cache, threads=2), GE2EEncoder()
    decoder = InstantDecoder.for_engine(engine, encoder)
    assert decoder is not None
    clip = next(p for p in speaker_clips() if p.stem == "en_andrew")  # an English speaker the prior never saw
    audio = decode(clip, max_bytes=50_000_000, max_seconds=120, target_sr=16_000).samples
    enrol, held = audio[: int(0.6 * len(audio))], audio[int(0.6 * len(audio)) :]
    target = _unit(encoder.embed(enrol, 16_000))
    reference = _unit(encoder.embed(held, 16_000))
    pack, _ = instant_style(
        StyleBasis.from_presets(engine.preset_styles()), StyleMap.load(), target, enrol, 16_000
    )
    frontend = TextFrontend(max_phonemes=engine.max_phonemes)
    phonemes = [frontend.phonemes(s) for s in HELD_OUT_SENTENCES]

    def similarity(use_prior: bool) -> float:
        deltas = decoder.deltas(pack, target) if use_prior else decoder.step(pack, target)
        adapted = AdaptedWeights("instant", deltas)
        speech = [engine.synthesize_adapted(p, pack, 1.0, adapted) for p in phonemes]
        return float(reference @ _unit(encoder.embed(np.concatenate(speech), engine.sample_rate)))

    step_only, with_prior = similarity(False), similarity(True)
    # Measured for this speaker (clone evaluation's held-out sentences): 0.661 -> 0.726
    assert with_prior > step_only + 0.03, (step_only, with_prior)
