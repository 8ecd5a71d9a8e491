"""Fine-tuning a clone's style: a resumable job that checkpoints, switches the voice, and can roll back.

The job's bookkeeping (resume, switch, rollback, refusals) runs on the fake engines; the decoder and gradient
methods need Kokoro's own weights and take the real ones (``real_vv``)."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pytest

from voxvault.cloning.adapt.state import AdaptOptions
from voxvault.errors import VoxError
from voxvault.jobs.adapt import AdaptService
from voxvault.store.models import Job, Voice

SENTENCE = ["Good morning to you."]  # one short fine-tuning sentence keeps adaptation tests quick


def test_options_are_checked() -> None:
    with pytest.raises(VoxError) as info:
        AdaptOptions.from_dict({"max_iterations": 0})
    assert info.value.code == "invalid_options"
    assert AdaptOptions.from_dict(AdaptOptions(sentences=("a",)).to_dict()).sentences == ("a",)


@pytest.mark.slow
def test_a_job_resumes_after_a_crash_switches_the_voice_and_rolls_back(
    make_voice: Any, vv: Any, target: np.ndarray
) -> None:
    _, project = vv.keys.ensure_default_project()
    original = vv.catalog.preset_styles()["kumo"]
    vid = make_voice(vv, project, original, target)
    options = {"max_iterations": 2, "population": 1, "sentences": SENTENCE, "patience": 5, "method": "search"}
    job_id = AdaptService(vv).submit(vid, project, key_id=None, options=options)

    # The first process stops after one iteration, leaving the row 'running' as a crash would.
    assert AdaptService(vv).run(job_id, max_steps=1) == "running"
    mid = AdaptService(vv).status(job_id, project)
    assert mid.status == "running" and mid.iteration == 1 and mid.progress == 0.5
    assert np.array_equal(vv.voice_registry.style_for(vid, project), original)  # not switched yet

    # A fresh service (a restarted process) continues from the checkpoint instead of starting over.
    seen: list[int] = []
    assert AdaptService(vv).run(job_id, on_progress=lambda st: seen.append(st.iteration)) == "succeeded"
    assert seen == [2]
    done = AdaptService(vv).status(job_id, project)
    assert done.status == "succeeded" and done.iteration == 2 and done.stop_reason == "max_iterations"
    assert done.best is not None and done.start is not None
    assert done.best["objective"] >= done.start["objective"]
    with vv.db.session() as s:
        job = s.get(Job, job_id)
        assert job is not None and len(job.result["checkpoint"]["history"]) == 3  # start + 2 iterations
        row = s.get(Voice, vid)
        assert row is not None and row.previous_style_blob is not None
        assert row.meta["conditioning"]["method"] == "finetuned"
    adapted = vv.voice_registry.style_for(vid, project)
    assert adapted.shape == original.shape and np.all(np.isfinite(adapted))

    AdaptService(vv).rollback(vid, project, actor="tests")
    assert np.array_equal(vv.voice_registry.style_for(vid, project), original)
    AdaptService(vv).rollback(vid, project, actor="tests")  # rolling back again restores the adapted style
    assert np.array_equal(vv.voice_registry.style_for(vid, project), adapted)


def test_rollback_without_an_earlier_style_is_refused(make_voice: Any, vv: Any, target: np.ndarray) -> None:
    _, project = vv.keys.ensure_default_project()
    vid = make_voice(vv, project, vv.catalog.preset_styles()["kumo"], target)
    with pytest.raises(VoxError) as info:
        AdaptService(vv).rollback(vid, project, actor="tests")
    assert info.value.code == "no_previous_style"


def test_the_api_refuses_unknown_voices_and_jobs(client: Any) -> None:
    r = client.post("/v1/voices/no-such-voice/adapt", json={})
    assert r.status_code == 404
    r = client.get("/v1/jobs/no-such-job")
    assert r.status_code == 404 and r.json()["error"]["code"] == "job_not_found"


@pytest.mark.slow
def test_the_api_runs_an_adaptation_job_to_completion(
    make_voice: Any, real_vv: Any, real_client: Any, real_target: np.ndarray
) -> None:
    """With no method given the job adapts the decoder (the closest clones), and the voice then speaks it."""
    vv, client, target = real_vv, real_client, real_target  # the decoder's biases: onnxruntime Kokoro
    _, project = vv.keys.ensure_default_project()
    vid = make_voice(vv, project, vv.catalog.preset_styles()["kumo"], target)
    # One step on one short sentence (a job option): the job's whole path at a third of its default cost.
    r = client.post(
        f"/v1/voices/{vid}/adapt", json={"max_iterations": 1, "sentences": ["Please call me back."]}
    )
    assert r.status_code == 202, r.text
    job_id = r.json()["job_id"]
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        job = client.get(f"/v1/jobs/{job_id}").json()
        if job["status"] in ("succeeded", "failed"):
            break
        time.sleep(0.1)
    assert job["status"] == "succeeded" and job["progress"] == 1.0
    with vv.db.session() as s:
        row = s.get(Voice, vid)
        assert row is not None and row.meta["conditioning"]["method"] == "decoder"
        adapted = row.meta["decoder"]["current"]
    assert adapted and vv.voice_registry.adapted_for(vid, project) is not None
    assert client.post(f"/v1/voices/{vid}/rollback").status_code == 200
    with vv.db.session() as s:
        row = s.get(Voice, vid)
        assert row is not None and row.meta["conditioning"]["rolled_back"] is True
        assert row.meta["decoder"]["previous"] == adapted


def test_the_api_takes_the_sentences_to_fit_on_within_bounds(
    make_voice: Any, vv: Any, client: Any, target: np.ndarray, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A studio may fit a voice on its own domain's words; the list is bounded (each sentence is a model
    pass per step) and the job keeps the sentences it was given."""
    _, project = vv.keys.ensure_default_project()
    vid = make_voice(vv, project, vv.catalog.preset_styles()["kumo"], target)
    for bad in ([], ["Hello."] * 9, [" "], ["x" * 301]):
        r = client.post(f"/v1/voices/{vid}/adapt", json={"sentences": bad})
        assert r.status_code == 422 and "sentences" in r.json()["error"]["message"], r.text
    monkeypatch.setattr(AdaptService, "start", lambda self, job_id: None)  # stored, not run
    r = client.post(f"/v1/voices/{vid}/adapt", json={"sentences": ["  Your order has shipped.  "]})
    assert r.status_code == 202, r.text
    with vv.db.session() as s:
        job = s.get(Job, r.json()["job_id"])
        assert job is not None and job.spec["options"]["sentences"] == ["Your order has shipped."]


def test_the_api_refuses_an_unknown_method(make_voice: Any, vv: Any, client: Any, target: np.ndarray) -> None:
    _, project = vv.keys.ensure_default_project()
    vid = make_voice(vv, project, vv.catalog.preset_styles()["kumo"], target)
    r = client.post(f"/v1/voices/{vid}/adapt", json={"method": "annealing"})
    assert r.status_code == 422
    with pytest.raises(VoxError) as info:
        AdaptOptions.from_dict({"method": "annealing"})
    assert info.value.code == "invalid_options"


@pytest.mark.research
@pytest.mark.slow
def test_gradient_steps_move_the_style_toward_the_target(real_vv: Any, real_target: np.ndarray) -> None:
    """Adam on the differentiable model raises the GE2E similarity the search would have to guess at."""
    vv, target = real_vv, real_target
    from voxvault.cloning.adapt.gradient import StyleGradient, adam_ascent
    from voxvault.cloning.instant import StyleBasis
    from voxvault.engines.kokoro_torch import KokoroTorchEngine

    tts = KokoroTorchEngine(vv.settings.resolved_cache_dir)
    basis = StyleBasis.from_presets(vv.catalog.preset_styles())
    phonemes = [vv.frontend.phonemes(SENTENCE[0])]
    gradient = StyleGradient(tts, vv.engines.speaker(), basis, target, phonemes)  # type: ignore[arg-type]
    z = basis.coords(vv.catalog.preset_styles()["kumo"])
    state: dict[str, Any] = {}
    first, grad = gradient.similarity_and_grad(z, 0.0)
    sims = [first]
    for _ in range(3):
        z, state = adam_ascent(z, grad, state, 0.3)
        sim, grad = gradient.similarity_and_grad(z, 0.0)
        sims.append(sim)
    assert state["t"] == 3 and len(state["m"]) == basis.size
    assert max(sims[1:]) > first + 0.02, sims


@pytest.mark.slow
def test_a_gradient_job_keeps_its_optimiser_state_across_a_crash(
    make_voice: Any, real_vv: Any, real_target: np.ndarray
) -> None:
    vv, target = real_vv, real_target  # gradients through PyTorch Kokoro
    _, project = vv.keys.ensure_default_project()
    original = vv.catalog.preset_styles()["kumo"]
    vid = make_voice(vv, project, original, target)
    options = {"max_iterations": 2, "sentences": SENTENCE, "method": "gradient"}
    options["intelligibility_weight"] = 0.0
    job_id = AdaptService(vv).submit(vid, project, key_id=None, options=options)
    assert AdaptService(vv).run(job_id, max_steps=1) == "running"
    with vv.db.session() as s:
        job = s.get(Job, job_id)
        assert job is not None
        adam = job.result["checkpoint"]["adam"]
    assert adam["t"] == 1 and len(adam["z"]) == len(adam["m"])
    assert AdaptService(vv).run(job_id) == "succeeded"
    with vv.db.session() as s:
        job = s.get(Job, job_id)
        assert job is not None and job.result["checkpoint"]["adam"]["t"] == 2  # resumed, not restarted
    adapted = vv.voice_registry.style_for(vid, project)
    assert adapted.shape == original.shape and np.all(np.isfinite(adapted))
