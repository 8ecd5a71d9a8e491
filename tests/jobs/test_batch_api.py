"""``/v1/batches``: upload, counts while it runs, manifest, per-item errors, tenant isolation, restart."""

from __future__ import annotations

import hashlib
import json
import socket
import subprocess
import sys
from typing import Any

import pytest
from batch_helpers import tiny_rows, wait_for_batch
from fastapi.testclient import TestClient

from voxvault.jobs.service import BatchService
from voxvault.store.models import Job

pytestmark = pytest.mark.slow


def _jsonl(rows: list[dict[str, Any]]) -> bytes:
    return "".join(json.dumps(r) + "\n" for r in rows).encode()


def test_jsonl_upload_runs_in_the_background(client: TestClient, vv: Any) -> None:
    rows = tiny_rows(3, prefix="api") + [{"id": "api-bad", "text": "Who?", "voice": "nobody"}]
    r = client.post("/v1/batches", content=_jsonl(rows), headers={"content-type": "application/x-ndjson"})
    assert r.status_code == 202, r.text
    job = r.json()
    assert job["total"] == 4 and job["status"] in ("queued", "running", "completed_with_errors")
    final = wait_for_batch(client, job["id"])
    assert final["status"] == "completed_with_errors"
    assert (final["done"], final["failed"], final["skipped"], final["pending"]) == (3, 1, 0, 0)
    assert final["audio_seconds"] > 0
    manifest = client.get(job["manifest_url"])
    assert manifest.status_code == 200 and manifest.headers["content-type"].startswith("application/x-ndjson")
    entries = [json.loads(line) for line in manifest.text.splitlines()]
    assert sorted(e["id"] for e in entries) == ["api-00", "api-01", "api-02"]
    # the uploaded texts are sealed at rest: no item's text appears in any stored blob
    stored = b"".join(vv.blobs.get(k) for k in vv.blobs.list(f"batches/{job['id']}/"))
    assert all(row["text"].encode() not in stored for row in rows)
    errors = client.get(job["errors_url"]).json()["errors"]
    assert [(e["id"], e["code"]) for e in errors] == [("api-bad", "voice_not_found")]
    first = entries[0]
    audio = client.get(f"/v1/batches/{job['id']}/items/{first['id']}/audio")
    assert audio.status_code == 200 and audio.headers["content-type"] == "audio/wav"
    assert hashlib.sha256(audio.content).hexdigest() == first["sha256"]
    assert client.get(f"/v1/batches/{job['id']}/items/api-bad/audio").status_code == 404


def test_csv_multipart_upload_with_a_default_format(client: TestClient) -> None:
    data = b'id,text\ncsv-1,First line.\ncsv-2,"Second, with a comma."\n'
    r = client.post(
        "/v1/batches", files={"file": ("items.csv", data, "text/csv")}, data={"response_format": "mp3"}
    )
    assert r.status_code == 202, r.text
    final = wait_for_batch(client, r.json()["id"])
    assert (final["status"], final["done"]) == ("completed", 2)
    entries = [json.loads(line) for line in client.get(r.json()["manifest_url"]).text.splitlines()]
    assert {e["format"] for e in entries} == {"mp3"} and {e["path"] for e in entries} == {
        "audio/csv-1.mp3",
        "audio/csv-2.mp3",
    }


def test_a_bad_file_is_refused_naming_its_lines(client: TestClient) -> None:
    data = b'{"id": "a", "text": "fine"}\n{"id": "b"}\nnot json\n'
    r = client.post("/v1/batches", content=data, headers={"content-type": "application/x-ndjson"})
    assert r.status_code == 400
    error = r.json()["error"]
    assert error["code"] == "invalid_batch_file"
    assert [(e["line"], e["code"]) for e in error["details"]["errors"]] == [
        (2, "missing_field"),
        (3, "invalid_json"),
    ]
    bad_format = client.post(
        "/v1/batches?response_format=ogg",
        content=b'{"id": "a", "text": "x"}\n',
        headers={"content-type": "application/x-ndjson"},
    )
    assert bad_format.status_code == 400 and bad_format.json()["error"]["code"] == "unsupported_format"


def test_another_project_cannot_see_the_job(app: Any, vv: Any, client: TestClient) -> None:
    r = client.post(
        "/v1/batches",
        content=_jsonl(tiny_rows(1, prefix="mine")),
        headers={"content-type": "application/x-ndjson"},
    )
    job_id = r.json()["id"]
    wait_for_batch(client, job_id)
    org, project = vv.keys.create_org_project("someone else")
    other = vv.keys.create(org_id=org, project_id=project, scopes=["speech:create"]).secret
    with TestClient(app, headers={"Authorization": f"Bearer {other}"}) as stranger:
        for path in ("", "/manifest", "/errors", "/items/mine-00/audio"):
            answer = stranger.get(f"/v1/batches/{job_id}{path}")
            assert answer.status_code == 404, path
            assert answer.json()["error"]["code"] == "not_found"


def test_jobs_left_by_a_dead_server_are_resumed_at_start(vv: Any) -> None:
    from voxvault.governance.keys import Principal

    org, project = vv.keys.ensure_default_project()
    principal = Principal(key_id="k-restart", org_id=org, project_id=project, scopes=frozenset({"admin"}))
    dead = BatchService(vv)  # never started: its process "died" before running anything
    queued = dead.submit(
        _jsonl(tiny_rows(2, prefix="q")), filename="a.jsonl", principal=principal, voice=None, fmt="wav"
    )
    running = dead.submit(
        _jsonl(tiny_rows(2, prefix="r")), filename="b.jsonl", principal=principal, voice=None, fmt="wav"
    )
    gone = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    with vv.db.session() as s:  # the second job was being run by a process that no longer exists
        job = s.get(Job, running.id)
        job.status = "running"
        job.result = {"owner": {"host": socket.gethostname(), "pid": int(gone.stdout), "token": "x"}}
    service = BatchService(vv)
    service.start()
    try:
        assert service.wait_idle(180)
        for job_id in (queued.id, running.id):
            status = service.status(job_id, project)
            assert (status.status, status.done) == ("completed", 2), status
    finally:
        service.stop()
