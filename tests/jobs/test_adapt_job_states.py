"""An adaptation job's states as a user polls them (``GET /v1/jobs/{id}``), on the fake engines: a job a
stopping server interrupted is resumed by the next start (``resume_unfinished``), and one whose voice was
erased meanwhile fails with the reason and is not run again."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest

from voxvault.errors import VoxError
from voxvault.jobs.adapt import AdaptService

OPTIONS = {"max_iterations": 1, "population": 1, "sentences": ["Good morning to you."], "method": "search"}


def test_an_interrupted_job_is_resumed_at_the_next_start_and_fails_with_the_reason(
    vv: Any, client: Any, make_voice: Callable[..., str]
) -> None:
    """A server stopping mid-job leaves it interrupted; the next start resumes it; the voice having been
    erased meanwhile, the job fails and says why (and stays failed)."""
    _, project = vv.keys.ensure_default_project()
    vid = make_voice(vv)
    job_id = AdaptService(vv).submit(vid, project, key_id=None, options=OPTIONS)
    stopping = AdaptService(vv)
    stopping.stop()
    assert stopping.run(job_id) == "interrupted"
    assert client.get(f"/v1/jobs/{job_id}").json()["status"] == "interrupted"

    vv.voice_registry.erase(vid, project, actor="tests")
    restarted = AdaptService(vv)
    assert job_id in restarted.resume_unfinished()
    deadline = time.monotonic() + 120
    while (job := client.get(f"/v1/jobs/{job_id}").json())["status"] != "failed":
        assert job["status"] in ("interrupted", "running"), job
        assert time.monotonic() < deadline, job
        time.sleep(0.05)
    assert job["error"].startswith("voice_not_found")
    restarted.stop()
    assert AdaptService(vv).run(job_id) == "failed"  # a failed job is not run again
    assert job_id not in AdaptService(vv).resume_unfinished()
    with pytest.raises(VoxError) as info:
        AdaptService(vv).status(job_id, "another-project")  # a caller of another project does not see it
    assert (info.value.code, info.value.status) == ("job_not_found", 404)


def test_an_unknown_job_is_404(vv: Any) -> None:
    for call in (
        lambda: AdaptService(vv).run("no-such-job"),
        lambda: AdaptService(vv).status("no-such-job", None),
    ):
        with pytest.raises(VoxError) as info:
            call()
        assert (info.value.code, info.value.status) == ("job_not_found", 404)
