"""Decoder adaptation as a product: a resumable job whose weights the voice then speaks with, that rollback
undoes and erasure removes."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from voxvault.cloning.adapt.decoder import RUNTIME_MARGIN, VALIDATION_SENTENCES, choose_runtime
from voxvault.engines.base import AdaptedWeights
from voxvault.errors import VoxError
from voxvault.jobs.adapt import AdaptService
from voxvault.store.models import Job, Voice
from voxvault.voices.lifecycle import blob_key, pack_deltas, unpack_deltas

TEXT = "Thank you for calling."
DECODER = {"method": "decoder", "max_iterations": 2, "sentences": ["Good morning to you."]}


def render(vv: Any, voice_id: str) -> np.ndarray:
    """The voice's model output for TEXT, without the per-request watermark (so runs compare exactly)."""
    prepared = vv.pipeline.prepare(TEXT, vv.catalog.resolve(voice_id), fmt="pcm")
    return np.concatenate(list(vv.pipeline.raw_chunks(prepared)))


def job_blobs(vv: Any, voice_id: str, job_id: str) -> set[str]:
    prefix = blob_key(voice_id, f"decoder/{job_id}/")
    return {k[len(blob_key(voice_id, "")) :] for k in vv.blobs.list(prefix)}


def test_deltas_survive_storage_and_corrupt_ones_are_refused() -> None:
    deltas = {"decoder.a.fc.weight": np.linspace(-0.01, 0.01, 12, dtype=np.float32).reshape(3, 4)}
    back = unpack_deltas("x", pack_deltas(deltas))
    assert back.name == "x" and set(back.deltas) == set(deltas)
    assert np.allclose(back.deltas["decoder.a.fc.weight"], deltas["decoder.a.fc.weight"], atol=1e-5)
    with pytest.raises(VoxError) as info:
        unpack_deltas("x", pack_deltas({"w": np.array([np.nan], np.float32)}))
    assert info.value.code == "adapted_weights_corrupt" and info.value.status == 409


@pytest.mark.research
@pytest.mark.slow
def test_a_decoder_job_resumes_then_the_voice_speaks_with_its_weights_rolls_back_and_erases(
    make_voice: Any, vv: Any, client: Any, target: np.ndarray
) -> None:
    _, project = vv.keys.ensure_default_project()
    vid = make_voice(vv, project, vv.catalog.preset_styles()["kumo"], target)
    before = render(vv, vid)
    job_id = AdaptService(vv).submit(vid, project, key_id=None, options=DECODER)

    # A crash after one step: the row names the optimiser state and the best weights, both stored sealed.
    assert AdaptService(vv).run(job_id, max_steps=1) == "running"
    with vv.db.session() as s:
        job = s.get(Job, job_id)
        assert job is not None
        ck = job.result["checkpoint"]
    assert ck["iteration"] == 1 and ck["adam"]["t"] == 2  # the start step and one more
    assert job_blobs(vv, vid, job_id) == {ck["adam"]["state"], ck["adam"]["best"]}
    assert ck["adam"]["state"] == f"decoder/{job_id}/state-1"
    assert vv.voice_registry.adapted_for(vid, project) is None  # not switched before the job ends

    assert AdaptService(vv).run(job_id) == "succeeded"
    with vv.db.session() as s:
        job = s.get(Job, job_id)
        row = s.get(Voice, vid)
        assert job is not None and row is not None
        ck = job.result["checkpoint"]
        meta = dict(row.meta)
    assert ck["adam"]["t"] == 3  # resumed from the stored state, not restarted
    assert meta["conditioning"]["method"] == "decoder"
    assert meta["decoder"]["current"] == ck["adam"]["best"] and meta["decoder"]["previous"] is None
    assert job_blobs(vv, vid, job_id) == {ck["adam"]["best"]}  # the working state is removed

    adapted = vv.voice_registry.adapted_for(vid, project)
    assert adapted is not None and len(adapted.deltas) == 58  # the style projections' biases (default scope)
    # Which runtime speaks it closer to the speaker was measured on sentences it never trained on
    runtime = meta["decoder"]["runtime"][ck["adam"]["best"]]
    assert -1 <= runtime["served_similarity"] <= 1 and -1 <= runtime["trained_similarity"] <= 1
    assert adapted.as_trained is runtime["as_trained"]
    after = render(vv, vid)
    assert np.all(np.isfinite(after)) and 0.5 < len(after) / len(before) < 2.0
    r = client.post("/v1/audio/speech", json={"input": TEXT, "voice": vid, "response_format": "wav"})
    assert r.status_code == 200 and len(r.content) > 24_000  # served over the API, watermark and all
    if ck["best"]["objective"] > ck["start"]["objective"]:  # a step improved: the voice sounds different
        assert any(float(np.abs(d).max()) > 0 for d in adapted.deltas.values())

    AdaptService(vv).rollback(vid, project, actor="tests")
    assert vv.voice_registry.adapted_for(vid, project) is None
    assert np.array_equal(render(vv, vid), before)  # the shipped decoder again, same engine, same audio
    AdaptService(vv).rollback(vid, project, actor="tests")
    again = vv.voice_registry.adapted_for(vid, project)
    assert again is not None and again.name == adapted.name and again.as_trained is adapted.as_trained
    assert np.allclose(render(vv, vid), after, atol=1e-4)

    vv.voice_registry.erase(vid, project, actor="tests")
    assert list(vv.blobs.list(blob_key(vid, ""))) == []
    assert not any(k.startswith(blob_key(vid, "")) for k in vv.voice_registry._adapted)


@pytest.mark.research
@pytest.mark.slow
def test_the_runtime_check_keeps_the_fast_runtime_unless_the_trained_one_is_clearly_closer(
    vv: Any, target: np.ndarray
) -> None:
    serving, trained = vv.engines.tts(), vv.engines.adaptable_tts()
    biases = serving.shipped_biases()
    adapted = AdaptedWeights("v", {n: np.full(b.shape, 0.05, np.float32) for n, b in biases.items()})
    assert serving.speaks(adapted)
    pack = vv.catalog.preset_styles()["kumo"]
    phonemes = [vv.frontend.phonemes(VALIDATION_SENTENCES[0])]
    encoder = vv.engines.speaker()
    plain = choose_runtime(serving, trained, encoder, phonemes, pack, adapted, target)
    assert plain.as_trained is (plain.trained_similarity > plain.served_similarity + RUNTIME_MARGIN)
    assert 0.0 < plain.served_similarity < 1.0 and plain.served_similarity != plain.trained_similarity
    eager = choose_runtime(serving, trained, encoder, phonemes, pack, adapted, target, margin=-1.0)
    assert eager.as_trained and eager.served_similarity == plain.served_similarity
    never = choose_runtime(serving, trained, encoder, phonemes, pack, adapted, target, margin=1.0)
    assert not never.as_trained


@pytest.mark.slow
def test_a_decoder_job_stops_and_cleans_up_when_consent_is_revoked(
    make_voice: Any, vv: Any, target: np.ndarray
) -> None:
    _, project = vv.keys.ensure_default_project()
    vid = make_voice(vv, project, vv.catalog.preset_styles()["kumo"], target)
    job_id = AdaptService(vv).submit(vid, project, key_id=None, options=DECODER)
    assert AdaptService(vv).run(job_id, max_steps=1) == "running"
    assert job_blobs(vv, vid, job_id)
    vv.voice_registry.revoke(vid, project, actor="tests")

    assert AdaptService(vv).run(job_id) == "failed"
    status = AdaptService(vv).status(job_id, project)
    assert status.error is not None and status.error.startswith("consent_revoked")
    assert job_blobs(vv, vid, job_id) == set()  # no half-finished weights left behind


def test_the_api_accepts_the_decoder_method_and_checks_its_options(
    make_voice: Any, vv: Any, client: Any, target: np.ndarray
) -> None:
    _, project = vv.keys.ensure_default_project()
    vid = make_voice(vv, project, vv.catalog.preset_styles()["kumo"], target)
    r = client.post(f"/v1/voices/{vid}/adapt", json={"method": "decoder", "l2": 5})
    assert r.status_code == 422
    r = client.post(f"/v1/voices/{vid}/adapt", json={"method": "decoder", "learning_rate": 0})
    assert r.status_code == 422
    r = client.post(f"/v1/voices/{vid}/adapt", json={"method": "decoder", "scope": "everything"})
    assert r.status_code == 422
