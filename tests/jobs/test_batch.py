"""Batch runs in-process: outputs, per-item errors, idempotent re-runs, and repair after a crash."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from batch_helpers import CREDENTIAL_ENV, check_output, manifest_entries, tiny_rows
from sqlalchemy import select

from voxvault.config import Settings
from voxvault.jobs.batch import BatchCounts, JobRecords, batch_job_id, run_batch
from voxvault.jobs.executors import LocalExecutor
from voxvault.jobs.sinks import open_sink
from voxvault.jobs.spec import BatchSpec, parse_items
from voxvault.jobs.worker import WorkerOptions
from voxvault.service import VoxVault
from voxvault.store.models import Generation, JobItem

pytestmark = pytest.mark.slow


def _spec(rows: list[dict[str, Any]]) -> BatchSpec:
    return parse_items("".join(json.dumps(r) + "\n" for r in rows).encode(), kind="jsonl")


def test_items_become_files_and_a_manifest(vv: Any, tmp_path: Path) -> None:
    other = "alpha" if vv.settings.default_voice != "alpha" else "kumo"
    rows = tiny_rows(3) + [{"id": "mp3-one", "text": "A different format.", "format": "mp3", "voice": other}]
    seen: list[BatchCounts] = []
    result = run_batch(
        vv,
        _spec(rows),
        str(tmp_path),
        executor=LocalExecutor(2),
        progress=lambda c: seen.append(BatchCounts(**vars(c))),
    )
    assert result.status == "completed"
    assert (result.counts.done, result.counts.failed, result.counts.skipped) == (4, 0, 0)
    entries = {e["id"]: e for e in check_output(tmp_path, {r["id"] for r in rows})}
    assert entries["mp3-one"]["path"] == "audio/mp3-one.mp3" and entries["mp3-one"]["voice"] == other
    assert entries["clip-00"]["format"] == "wav" and entries["clip-00"]["voice"] == vv.settings.default_voice
    assert seen[-1].done == 4 and seen[0].done == 0
    # One generation record per item: the watermark id in the manifest is the record's, with its digest.
    with vv.db.session() as s:
        for entry in entries.values():
            gen = s.get(Generation, entry["watermark_id"])
            assert gen is not None and gen.output_sha256 == entry["sha256"]


def test_item_errors_are_recorded_and_the_rest_is_made(vv: Any, tmp_path: Path) -> None:
    rows = [
        {"id": "good", "text": "This one works."},
        {"id": "no-voice", "text": "Unknown voice.", "voice": "nobody"},
        {"id": "../escape", "text": "Unsafe id."},
        {"id": "bad-ssml", "text": "<speak><prosody rate='fast'>unclosed", "ssml": True},
        {"id": "good-too", "text": "So does this."},
    ]
    result = run_batch(vv, _spec(rows), str(tmp_path))
    assert result.status == "completed_with_errors"
    assert (result.counts.done, result.counts.failed) == (2, 3)
    codes = {f["id"]: f["code"] for f in result.failures}
    assert codes == {"no-voice": "voice_not_found", "../escape": "unsafe_item_id", "bad-ssml": "invalid_ssml"}
    check_output(tmp_path, {"good", "good-too"})
    job_id = batch_job_id(open_sink(str(tmp_path)).url)
    errors = JobRecords(vv.db).errors(job_id)
    assert {e["id"]: e["code"] for e in errors} == codes
    assert not (tmp_path.parent / "escape.wav").exists()


def test_a_rerun_skips_finished_items_and_retries_failed_ones(vv: Any, tmp_path: Path) -> None:
    rows = tiny_rows(3) + [{"id": "later", "text": "Fixed later.", "voice": "nobody"}]
    first = run_batch(vv, _spec(rows), str(tmp_path))
    assert (first.counts.done, first.counts.failed) == (3, 1)
    before = {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in (tmp_path / "audio").iterdir()}
    manifest_before = (tmp_path / "manifest.jsonl").read_bytes()
    rows[-1] = {"id": "later", "text": "Fixed later."}  # the user fixes the voice and runs again
    second = run_batch(vv, _spec(rows), str(tmp_path))
    assert second.status == "completed"
    assert (second.counts.done, second.counts.skipped, second.counts.failed) == (4, 3, 0)
    for p in (tmp_path / "audio").iterdir():
        if p.name in before:
            assert (p.stat().st_mtime_ns, p.read_bytes()) == before[p.name], f"{p.name} was written again"
    manifest_after = (tmp_path / "manifest.jsonl").read_bytes()
    assert manifest_after.startswith(manifest_before)
    check_output(tmp_path, {r["id"] for r in rows})
    third = run_batch(vv, _spec(rows), str(tmp_path))
    assert (third.counts.skipped, third.counts.done) == (4, 4)
    assert (tmp_path / "manifest.jsonl").read_bytes() == manifest_after


def test_resume_repairs_a_manifest_and_redoes_unrecorded_items(vv: Any, tmp_path: Path) -> None:
    """The states a kill can leave: a line cut short, a committed file never recorded, a temp file."""
    rows = tiny_rows(4)
    run_batch(vv, _spec(rows), str(tmp_path))
    entries = {e["id"]: e for e in manifest_entries(tmp_path)}
    job_id = batch_job_id(open_sink(str(tmp_path)).url)
    # clip-03: killed after its file was committed but before it was recorded (row running, no line).
    with vv.db.session() as s:
        row = s.get(JobItem, (job_id, "clip-03"))
        row.status = "running"
    lines = (tmp_path / "manifest.jsonl").read_bytes().splitlines(keepends=True)
    kept = [line for line in lines if b'"clip-03"' not in line]
    # clip-02's line was cut short mid-append, and clip-00 appears twice (a stale manifest from elsewhere).
    damaged = b"".join(kept[:2]) + kept[0] + kept[2][: len(kept[2]) // 2]
    (tmp_path / "manifest.jsonl").write_bytes(damaged)
    (tmp_path / "audio" / ".clip-04.wav.abc123.tmp").write_bytes(b"RIFF half")
    result = run_batch(vv, _spec(rows), str(tmp_path))
    assert result.status == "completed"
    assert (result.counts.skipped, result.counts.done) == (3, 4)
    after = {e["id"]: e for e in check_output(tmp_path, {r["id"] for r in rows})}
    for item_id in ("clip-00", "clip-01", "clip-02"):
        assert after[item_id] == entries[item_id]
    assert after["clip-03"]["watermark_id"] != entries["clip-03"]["watermark_id"]  # made again


def test_outputs_are_adopted_when_the_job_records_are_lost(vv: Any, tmp_path: Path) -> None:
    """Another data folder (fresh database) pointed at the same output skips what the manifest proves done."""
    rows = tiny_rows(3)
    out = tmp_path / "out"
    run_batch(vv, _spec(rows), str(out))
    manifest = (out / "manifest.jsonl").read_bytes()
    (out / "audio" / "clip-01.wav").write_bytes(b"tampered")  # no longer matches its line: made again
    fresh = VoxVault(Settings(data_dir=tmp_path / "other-data", cache_dir=vv.settings.resolved_cache_dir))
    fresh.engines = vv.engines  # the session's engines: no second model load
    try:
        result = run_batch(fresh, _spec(rows), str(out))
    finally:
        fresh.db.dispose()
    assert (result.counts.skipped, result.counts.done) == (2, 3)
    entries = {e["id"]: e for e in check_output(out, {r["id"] for r in rows})}
    old = {json.loads(line)["id"]: json.loads(line) for line in manifest.splitlines()}
    assert entries["clip-00"] == old["clip-00"] and entries["clip-02"] == old["clip-02"]
    assert (out / "audio" / "clip-01.wav").read_bytes()[:4] == b"RIFF"  # made again, listed once


def test_s3_output(vv: Any, s3_endpoint: str, s3_client: Any, bucket: str, monkeypatch: Any) -> None:
    for name, value in CREDENTIAL_ENV.items():
        monkeypatch.setenv(name, value)
    url = f"s3://{bucket}/studio/job-1"
    flac = WorkerOptions(default_voice="alpha", default_format="flac")
    rows = tiny_rows(2)
    result = run_batch(vv, _spec(rows), open_sink(url, s3_endpoint_url=s3_endpoint), options=flac)
    assert result.status == "completed"
    manifest = s3_client.get_object(Bucket=bucket, Key="studio/job-1/manifest.jsonl")["Body"].read()
    entries = [json.loads(line) for line in manifest.splitlines()]
    assert sorted(e["id"] for e in entries) == ["clip-00", "clip-01"]
    for entry in entries:
        body = s3_client.get_object(Bucket=bucket, Key=f"studio/job-1/{entry['path']}")["Body"].read()
        assert hashlib.sha256(body).hexdigest() == entry["sha256"] and body[:4] == b"fLaC"
    again = run_batch(vv, _spec(rows), open_sink(url, s3_endpoint_url=s3_endpoint), options=flac)
    assert (again.counts.skipped, again.counts.done) == (2, 2)
    listed = s3_client.list_objects_v2(Bucket=bucket)["Contents"]
    assert len(listed) == 3  # two clips and the manifest, nothing else


def test_job_rows_hold_no_text(vv: Any, tmp_path: Path) -> None:
    secret = "The launch code is tangerine."
    run_batch(vv, _spec([{"id": "private", "text": secret}]), str(tmp_path))
    job_id = batch_job_id(open_sink(str(tmp_path)).url)
    with vv.db.session() as s:
        rows = s.scalars(select(JobItem).where(JobItem.job_id == job_id)).all()
        assert rows and all("tangerine" not in repr(vars(r)) for r in rows)


def test_each_clip_carries_its_own_watermark_id(vv: Any, tmp_path: Path) -> None:
    rows = [
        {"id": "wm-a", "text": "Every clip in a batch is marked with the id of its own generation record."},
        {"id": "wm-b", "text": "So a file found later can be traced to the job item that produced it."},
    ]
    run_batch(vv, _spec(rows), str(tmp_path))
    entries = check_output(tmp_path, {"wm-a", "wm-b"})
    assert entries[0]["watermark_id"] != entries[1]["watermark_id"]
    for entry in entries:
        found = vv.provenance.detect_bytes((tmp_path / entry["path"]).read_bytes())
        assert found["present"] and found["payload"] == entry["watermark_id"], (entry, found)
