"""The instant decoder step: the shipped Jacobian fits the shipped model, one step moves every style bias by
the same small amount toward the speaker, and the clone then sounds more like a real speaker it never
heard, on sentences the step did not use; an engine or a file that does not fit gets no step."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from tests.conftest import needs_testdata, speaker_clips

from voxvault.audio.io import decode
from voxvault.cloning.instant import StyleBasis, StyleMap, instant_style
from voxvault.cloning.instant_decoder import DecoderJacobian, InstantDecoder
from voxvault.engines.base import AdaptedWeights
from voxvault.engines.ge2e import GE2EEncoder
from voxvault.engines.kernels import compiler
from voxvault.engines.kokoro import KokoroEngine
from voxvault.text import TextFrontend

pytestmark = pytest.mark.skipif(compiler() is None, reason="the fused graph needs a C compiler")

OTHER_SENTENCES = (
    "I would like to book a table for two this evening.",
    "The weather should clear up by the middle of the afternoon.",
)


@pytest.fixture(scope="module")
def engine(model_cache: Path) -> KokoroEngine:
    return KokoroEngine(model_cache, threads=2)


@pytest.fixture(scope="module")
def encoder() -> GE2EEncoder:
    return GE2EEncoder()


def test_the_shipped_jacobian_fits_the_shipped_model(engine: KokoroEngine, encoder: GE2EEncoder) -> None:
    jacobian = DecoderJacobian.load()
    shipped = engine.shipped_biases()
    assert set(jacobian.names) == set(shipped) and len(jacobian.names) == 58
    assert all(shipped[n].shape == s for n, s in zip(jacobian.names, jacobian.shapes, strict=True))
    assert jacobian.left.shape == (256, jacobian.right.shape[0])
    assert InstantDecoder.for_engine(engine, encoder) is not None


def test_one_step_moves_every_bias_by_the_step_toward_the_speaker() -> None:
    jacobian = DecoderJacobian.load()
    rng = np.random.default_rng(1)
    target, current = rng.normal(size=256), rng.normal(size=256)
    deltas = jacobian.toward(target, current)
    flat = np.concatenate([d.reshape(-1) for d in deltas.values()])
    assert flat.size == jacobian.right.shape[1]
    assert np.allclose(np.abs(flat), jacobian.step)
    # To first order the step raises the cosine to the target (the Jacobian's own prediction)
    j = jacobian.left @ jacobian.right.astype(np.float32)
    e = current / np.linalg.norm(current)
    t = target / np.linalg.norm(target)
    moved = e + j @ flat
    assert float(t @ moved) / np.linalg.norm(moved) > float(t @ e)
    # Already at the target: the direction is undefined and nothing may blow up
    still = np.concatenate([d.reshape(-1) for d in jacobian.toward(target, target).values()])
    assert np.all(np.isfinite(still)) and np.all(np.abs(still) <= jacobian.step)


@pytest.mark.research
@pytest.mark.slow
@needs_testdata
def test_the_step_brings_a_real_speaker_closer_on_other_sentences(
    engine: KokoroEngine, encoder: GE2EEncoder
) -> None:
    decoder = InstantDecoder.for_engine(engine, encoder)
    assert decoder is not None
    clip = next(p for p in speaker_clips() if p.stem == "en_brandon")
    audio = decode(clip, max_bytes=50_000_000, max_seconds=120, target_sr=16_000).samples
    enrol, held = audio[: int(0.6 * len(audio))], audio[int(0.6 * len(audio)) :]
    target = encoder.embed(enrol, 16_000)
    target = target / np.linalg.norm(target)
    basis = StyleBasis.from_presets(engine.preset_styles())
    pack, _ = instant_style(basis, StyleMap.load(), target, enrol, 16_000)
    adapted = AdaptedWeights("instant", decoder.deltas(pack, target))
    frontend = TextFrontend(max_phonemes=engine.max_phonemes)
    phonemes = [frontend.phonemes(s) for s in OTHER_SENTENCES]
    reference = encoder.embed(held, 16_000)
    reference = reference / np.linalg.norm(reference)

    def similarity(with_step: bool) -> float:
        speech = [
            engine.synthesize_adapted(p, pack, 1.0, adapted) if with_step else engine.synthesize(p, pack)
            for p in phonemes
        ]
        emb = encoder.embed(np.concatenate(speech), engine.sample_rate)
        return float(reference @ (emb / np.linalg.norm(emb)))

    before, after = similarity(False), similarity(True)
    # Measured 0.611 -> 0.704 for this speaker (held-out audio, sentences the step never spoke)
    assert after > before + 0.04, (before, after)


def test_no_step_where_it_cannot_apply(model_cache: Path, encoder: GE2EEncoder, tmp_path: Path) -> None:
    plain = KokoroEngine(model_cache, threads=2, kernels="off")  # the plain graph takes no biases per call
    assert InstantDecoder.for_engine(plain, encoder) is None
    fused = KokoroEngine(model_cache, threads=2)
    shipped = DecoderJacobian.load()
    other = tmp_path / "other.npz"  # a Jacobian of some other model's biases
    DecoderJacobian.save(
        other,
        shipped.left @ shipped.right.astype(np.float32),
        shipped.names,
        shipped.shapes,
        rank=8,
        sentences=shipped.sentences,
        step=shipped.step,
        fingerprint="0" * 64,
    )
    assert DecoderJacobian.load(other).left.shape == (256, 8)
    assert InstantDecoder.for_engine(fused, encoder, other) is None
    broken = tmp_path / "broken.npz"
    broken.write_bytes(b"not an archive")
    assert InstantDecoder.for_engine(fused, encoder, broken) is None
