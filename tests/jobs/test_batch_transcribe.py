"""Batch transcription: real speech files in, JSON + SRT + RTTM out; resume after kill -9; the HTTP API.

The first test is batch transcription's end-to-end path on real models (Whisper tiny.en, Silero + CAM++:
``real_vv``); the others check the plumbing (resume, kill -9, HTTP, Ray) on the fake transcriber and
diarizer (``transcriber_engine = "fake"``, in the subprocesses too). The inputs are the shared test
voices, one file holding two of them (James, then Karen).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from batch_helpers import manifest_entries, wait_for_batch
from fastapi.testclient import TestClient
from tests.conftest import FAKE_ENGINES, SPEAKERS, needs_testdata

from voxvault.audio.io import decode, encode
from voxvault.engines.asr import word_error_rate
from voxvault.jobs.batch import batch_job_id
from voxvault.jobs.sinks import open_sink
from voxvault.jobs.transcribe_items import TranscribeJobOptions, items_from_paths, transcribe_batch
from voxvault.store.models import AuditLog, JobItem

pytestmark = [pytest.mark.slow, needs_testdata]

JAMES = "We have also started contemplating the possibility of moving back to Colorado."
TINY = TranscribeJobOptions(model="tiny.en")
#: The subprocesses' engines: no weights (Ray actors take the driver's settings).
FAKE_ENV = {f"VOXVAULT_{k.upper()}": v for k, v in FAKE_ENGINES.items()}


def _voice(name: str) -> np.ndarray:
    return decode(SPEAKERS / f"{name}.wav", max_bytes=10_000_000, max_seconds=60, target_sr=16000).samples


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """two.wav (James then Karen), andrew.flac, notes.wav (not audio), quiet.wav (silence)."""
    folder = tmp_path_factory.mktemp("inputs")
    two = np.concatenate([_voice("en_james"), np.zeros(8000, np.float32), _voice("en_karen")])
    (folder / "two.wav").write_bytes(encode(two, 16000, "wav"))
    (folder / "andrew.flac").write_bytes(encode(_voice("en_andrew"), 16000, "flac"))
    (folder / "notes.wav").write_bytes(b"these are not the droids " * 40)
    (folder / "quiet.wav").write_bytes(encode(np.zeros(16000, np.float32), 16000, "wav"))
    (folder / "readme.txt").write_text("not picked up: not an audio suffix")
    return folder


def check_transcripts(out: Path, expected: set[str]) -> dict[str, dict[str, Any]]:
    """Each expected item listed once; its JSON matches its sha256; SRT and RTTM beside it; nothing else."""
    entries = manifest_entries(out)
    ids = [e["id"] for e in entries]
    assert len(ids) == len(set(ids)) and set(ids) == expected, ids
    bodies = {}
    for entry in entries:
        assert entry["path"] == f"transcripts/{entry['id']}.json" and entry["format"] == "json"
        data = (out / entry["path"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == entry["sha256"]
        body = json.loads(data)
        assert abs(body["duration"] - entry["duration"]) < 0.01
        assert (out / "transcripts" / f"{entry['id']}.srt").read_text().startswith("1\n00:00:0")
        bodies[entry["id"]] = body
    on_disk = {p.name for p in (out / "transcripts").iterdir()}
    assert on_disk == {f"{i}.{s}" for i in expected for s in ("json", "srt", "rttm")}, on_disk
    assert not list(out.rglob(".*.tmp"))
    return bodies


def test_files_become_transcripts_with_speakers(real_vv: Any, inputs: Path, tmp_path: Path) -> None:
    vv = real_vv
    out = tmp_path / "out"
    result = transcribe_batch(vv, items_from_paths([inputs]), str(out), options=TINY)
    assert result.status == "completed_with_errors"
    assert (result.counts.done, result.counts.failed) == (2, 2)
    assert {(f["id"], f["code"]) for f in result.failures} == {
        ("notes", "invalid_audio"),
        ("quiet", "silent_audio"),
    }
    bodies = check_transcripts(out, {"two", "andrew"})
    two = bodies["two"]
    assert {t["speaker"] for t in two["speakers"]} == {"speaker_0", "speaker_1"}
    first = [w for w in two["words"] if w["end"] < 4.5]
    assert word_error_rate(JAMES, " ".join(w["word"] for w in first)) <= 0.15
    assert {w["speaker"] for w in first} == {"speaker_0"}
    assert two["words"][-1]["speaker"] == "speaker_1"  # Karen's last word
    rttm = (out / "transcripts" / "two.rttm").read_text().splitlines()
    assert {line.split()[7] for line in rttm} == {"speaker_0", "speaker_1"}
    assert all(line.startswith("SPEAKER two 1 ") for line in rttm)
    srt = (out / "transcripts" / "two.srt").read_text()
    assert "[speaker_0] We have" in srt and "[speaker_1] " in srt  # cues split where the speaker changes
    assert "mosquito" in bodies["andrew"]["text"].lower()

    # The audit log has one entry per file, with counts and sizes, never words.
    job_id = batch_job_id(open_sink(str(out)).url)
    with vv.db.session() as s:
        rows = [r for r in s.query(AuditLog).all() if (r.target or "").startswith(job_id + "/")]
    assert sorted(r.target.split("/")[1] for r in rows) == ["andrew", "notes", "quiet", "two"]
    logged = json.dumps([r.details for r in rows]).lower()
    assert "colorado" not in logged and "mosquito" not in logged
    assert {r.details["completed"] for r in rows} == {True, False}

    # Again: the two finished files are skipped, the two failed ones tried again (and fail again).
    again = transcribe_batch(vv, items_from_paths([inputs]), str(out), options=TINY)
    assert (again.counts.skipped, again.counts.done, again.counts.failed) == (2, 2, 2)
    assert check_transcripts(out, {"two", "andrew"}) == bodies


def test_resume_repairs_what_a_kill_leaves(vv: Any, inputs: Path, tmp_path: Path) -> None:
    """A kill between the SRT and the JSON, a manifest line cut short, a temp file: the rerun redoes the
    unfinished file only and lists every file once."""
    files = [inputs / "two.wav", inputs / "andrew.flac"]
    out = tmp_path / "out"
    transcribe_batch(vv, items_from_paths(files), str(out), options=TINY)
    before = {e["id"]: e for e in manifest_entries(out)}
    job_id = batch_job_id(open_sink(str(out)).url)
    # "two": killed after its SRT and RTTM, before its JSON (the commit point): the row never said done.
    (out / "transcripts" / "two.json").unlink()
    with vv.db.session() as s:
        row = s.get(JobItem, (job_id, "two"))
        row.status = "pending"
    lines = (out / "manifest.jsonl").read_bytes().splitlines(keepends=True)
    andrew = next(line for line in lines if b'"andrew"' in line)
    (out / "manifest.jsonl").write_bytes(andrew + andrew[:20])
    (out / "transcripts" / ".two.json.abc.tmp").write_bytes(b'{"half')
    result = transcribe_batch(vv, items_from_paths(files), str(out), options=TINY)
    assert result.status == "completed" and (result.counts.skipped, result.counts.done) == (1, 2)
    after = {e["id"]: e for e in manifest_entries(out)}
    assert after["andrew"] == before["andrew"]
    check_transcripts(out, {"two", "andrew"})


def test_inputs_are_checked_before_anything_runs(tmp_path: Path) -> None:
    from voxvault.errors import VoxError

    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "x.wav").write_bytes(b"")
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "X.mp3").write_bytes(b"")
    with pytest.raises(VoxError) as err:
        items_from_paths([tmp_path / "a", tmp_path / "b", tmp_path / "missing.wav"])
    assert err.value.code == "invalid_batch_inputs"
    problems = err.value.details["problems"]
    assert len(problems) == 2 and "missing.wav" in problems[0] and "same name" in problems[1]
    with pytest.raises(VoxError) as err:
        TranscribeJobOptions(num_speakers=0).check()
    assert err.value.code == "invalid_num_speakers"


# -- the CLI, killed with SIGKILL mid-run ---------------------------------------------------------------
def _lines(out: Path) -> int:
    try:
        return (out / "manifest.jsonl").read_bytes().count(b"\n")
    except FileNotFoundError:
        return 0


def test_kill_9_mid_run_then_the_same_command_finishes_the_job(
    inputs: Path, tmp_path: Path, model_cache: Path
) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    for path in sorted(SPEAKERS.glob("en_*.wav")):
        shutil.copy(path, folder / path.name)
    for copy in "abcdefgh":  # the fake transcriber is quick: enough files left for the kill to land mid-run
        shutil.copy(inputs / "two.wav", folder / f"two-{copy}.wav")
    expected = {p.stem for p in folder.iterdir()}
    out = tmp_path / "out"
    env = {k: v for k, v in os.environ.items() if not k.startswith("VOXVAULT_")}
    env.update(VOXVAULT_DATA_DIR=str(tmp_path / "data"), VOXVAULT_CACHE_DIR=str(model_cache), **FAKE_ENV)
    command = [sys.executable, "-m", "voxvault", "batch", "transcribe", str(folder), "--out", str(out)]
    command += ["--model", "tiny.en", "--quiet"]
    proc = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 300
        while _lines(out) < 2:
            assert proc.poll() is None, f"finished before it could be killed: {proc.stdout.read()!r}"  # type: ignore[union-attr]
            assert time.monotonic() < deadline, "no progress within 300 s"
            time.sleep(0.02)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(30)
        before = {e["id"]: e for e in manifest_entries(out)}
        assert 2 <= len(before) < len(expected), "the kill should land mid-run"
        rerun = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(30)
        assert proc.stdout is not None
        proc.stdout.close()
    assert proc.returncode == -signal.SIGKILL
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert f"{len(before)} skipped" in rerun.stdout
    check_transcripts(out, expected)
    after = {e["id"]: e for e in manifest_entries(out)}
    for item_id, entry in before.items():
        assert after[item_id] == entry, f"{item_id} was transcribed again after it was finished"


# -- over HTTP ---------------------------------------------------------------------------------------------
def test_upload_runs_in_the_background_and_is_sealed_at_rest(
    client: TestClient, vv: Any, inputs: Path
) -> None:
    files = [
        ("file", (name, (inputs / name).read_bytes(), "application/octet-stream"))
        for name in ("two.wav", "andrew.flac", "notes.wav")
    ]
    r = client.post("/v1/transcription-batches", files=files, data={"model": "tiny.en", "num_speakers": "2"})
    assert r.status_code == 202, r.text
    job = r.json()
    assert job["total"] == 3
    final = wait_for_batch(client, job["id"], kind="transcription-batches", timeout=300)
    assert (final["status"], final["done"], final["failed"]) == ("completed_with_errors", 2, 1)
    errors = client.get(job["errors_url"]).json()["errors"]
    assert [(e["id"], e["code"]) for e in errors] == [("notes", "invalid_audio")]
    entries = [json.loads(line) for line in client.get(job["manifest_url"]).text.splitlines()]
    assert sorted(e["id"] for e in entries) == ["andrew", "two"]
    base = f"/v1/transcription-batches/{job['id']}/items/two/transcript"
    body = client.get(base)
    assert body.status_code == 200 and body.headers["content-type"].startswith("application/json")
    entry = next(e for e in entries if e["id"] == "two")
    assert hashlib.sha256(body.content).hexdigest() == entry["sha256"]
    heard = body.json()["text"].split()
    assert len(heard) >= 5 and body.json()["words"][-1]["end"] > 8.0  # both voices heard
    assert {t["speaker"] for t in body.json()["speakers"]} == {"speaker_0", "speaker_1"}
    assert client.get(base, params={"format": "rttm"}).text.startswith("SPEAKER two 1 ")
    assert "-->" in client.get(base, params={"format": "srt"}).text
    assert client.get(base, params={"format": "mp3"}).json()["error"]["code"] == "unsupported_format"
    missing = client.get(f"/v1/transcription-batches/{job['id']}/items/notes/transcript")
    assert missing.status_code == 404
    # Inputs and transcripts are sealed at rest: no RIFF header, no word of the transcript in any blob.
    stored = [vv.blobs.get(k) for k in vv.blobs.list(f"batches/{job['id']}/")]
    assert len(stored) >= 3 + 2 * 3
    secrets = [b"RIFF", b"speaker_0", *{w.encode() for w in heard if len(w) >= 4}]
    assert not any(secret in blob for blob in stored for secret in secrets)
    # A speech batch route does not see it, and a transcription route does not see speech batches.
    assert client.get(f"/v1/batches/{job['id']}").status_code == 404


def test_bad_uploads_are_refused_before_anything_is_stored(client: TestClient, inputs: Path) -> None:
    audio = (inputs / "andrew.flac").read_bytes()

    def post(files: list[Any], data: dict[str, str] | None = None) -> Any:
        return client.post("/v1/transcription-batches", files=files, data=data or {})

    r = post([("file", ("a.flac", audio, "audio/flac")), ("file", ("A.flac", audio, "audio/flac"))])
    assert (r.status_code, r.json()["error"]["code"]) == (400, "invalid_batch_inputs")
    r = post([("file", (".hidden.wav", audio, "audio/wav"))])
    assert r.json()["error"]["code"] == "invalid_batch_inputs"
    r = post([("file", ("a.flac", audio, "audio/flac"))], {"num_speakers": "99"})
    assert (r.status_code, r.json()["error"]["code"]) == (400, "invalid_num_speakers")
    r = post([("file", ("a.flac", audio, "audio/flac"))], {"model": "large-v3"})
    assert r.json()["error"]["code"] == "unsupported_model"
    r = client.post("/v1/transcription-batches", data={"model": "tiny.en"})
    assert r.status_code in (415, 422) and r.json()["error"]["code"] in ("missing_file", "invalid_upload")


def test_on_ray_actors(inputs: Path, tmp_path: Path, model_cache: Path) -> None:
    """``--executor ray`` (Ray started here, one actor): the actor transcribes, the driver records."""
    from voxvault.config import Settings
    from voxvault.service import VoxVault
    from voxvault.store.models import Job

    out = tmp_path / "out"
    env = {k: v for k, v in os.environ.items() if not k.startswith("VOXVAULT_")}
    env.update(VOXVAULT_DATA_DIR=str(tmp_path / "data"), VOXVAULT_CACHE_DIR=str(model_cache), **FAKE_ENV)
    env.update(RAY_USAGE_STATS_ENABLED="0", RAY_AUTH_MODE="disabled")
    command = [sys.executable, "-m", "voxvault", "batch", "transcribe", str(inputs / "two.wav")]
    command += [str(inputs / "andrew.flac"), "--out", str(out), "--model", "tiny.en", "--executor", "ray"]
    command += ["--num-speakers", "2"]  # the options reach the actor
    run = subprocess.run([*command, "--quiet"], env=env, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout + run.stderr
    bodies = check_transcripts(out, {"two", "andrew"})
    assert {t["speaker"] for t in bodies["two"]["speakers"]} == {"speaker_0", "speaker_1"}
    vv = VoxVault(Settings(data_dir=tmp_path / "data", cache_dir=model_cache))
    try:
        with vv.db.session() as s:
            job = s.get(Job, batch_job_id(open_sink(str(out)).url))
            assert job is not None and job.spec["executor"] == "ray" and job.status == "completed"
    finally:
        vv.db.dispose()
