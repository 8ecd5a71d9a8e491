"""Outputs and manifest: atomic writes, crash leftovers, one line per item, local folder and S3 alike."""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path
from typing import Any

import pytest

from voxvault.errors import VoxError
from voxvault.jobs.sinks import BlobSink, LocalSink, ManifestEntry, iter_manifest, open_sink
from voxvault.store.blobs import S3BlobStore


def _entry(item_id: str, data: bytes = b"RIFF") -> ManifestEntry:
    return ManifestEntry(
        id=item_id,
        path=f"audio/{item_id}.wav",
        duration=1.25,
        sha256=hashlib.sha256(data).hexdigest(),
        watermark_id=7,
        voice="alpha",
        format="wav",
    )


def test_local_outputs_are_committed_whole_and_listed(tmp_path: Path) -> None:
    sink = LocalSink(tmp_path / "out")
    assert sink.open().entries == []
    sink.write_output("audio/a.wav", b"RIFF-a")
    sink.append_manifest([_entry("a", b"RIFF-a")])
    sink.close()
    assert (tmp_path / "out/audio/a.wav").read_bytes() == b"RIFF-a"
    assert sink.existing_outputs() == {"audio/a.wav"}
    assert sink.temp_files() == []
    lines = (tmp_path / "out/manifest.jsonl").read_text().splitlines()
    assert [ManifestEntry.from_json(line) for line in lines] == [_entry("a", b"RIFF-a")]


def test_reopening_drops_a_line_cut_short_and_temp_files(tmp_path: Path) -> None:
    sink = LocalSink(tmp_path)
    sink.open()
    sink.append_manifest([_entry("a"), _entry("b")])
    sink.close()
    manifest = tmp_path / "manifest.jsonl"
    whole = manifest.read_bytes()
    manifest.write_bytes(whole[: len(whole) - 20])  # a crash in the middle of the second line
    (tmp_path / "audio").mkdir()
    (tmp_path / "audio/.c.wav.x1y2.tmp").write_bytes(b"half a file")
    scan = sink.open()
    assert scan.damaged and [e.id for e in scan.entries] == ["a"]
    assert sink.temp_files() == []
    sink.rewrite_manifest(scan.entries)
    sink.append_manifest([_entry("b")])
    sink.close()
    assert [e["id"] for e in iter_manifest(manifest.read_bytes())] == ["a", "b"]
    assert not sink.open().damaged
    sink.close()


def test_a_folder_is_written_by_one_run_at_a_time(tmp_path: Path) -> None:
    first = LocalSink(tmp_path)
    first.open()
    try:
        with pytest.raises(VoxError) as info:
            LocalSink(tmp_path).open()
        assert info.value.code == "batch_busy"
    finally:
        first.close()
    second = LocalSink(tmp_path)
    second.open()
    second.close()


def test_a_finished_run_leaves_ordinary_files_and_no_lock(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        sink = LocalSink(tmp_path / "out")
        sink.open()
        sink.write_output("audio/a.wav", b"RIFF-a")
        sink.append_manifest([_entry("a", b"RIFF-a")])
        sink.close()
    finally:
        os.umask(old)
    out = tmp_path / "out"
    assert sorted(p.name for p in out.iterdir()) == ["audio", "manifest.jsonl"]  # no empty .lock
    assert stat.S_IMODE((out / "audio/a.wav").stat().st_mode) == 0o644  # readable like any file made here
    again = LocalSink(out)  # and the next run still takes the folder
    again.open()
    with pytest.raises(VoxError) as busy:
        LocalSink(out).open()
    assert busy.value.code == "batch_busy"
    again.close()


def test_s3_manifest_is_put_whole_at_flush(s3_client: Any, bucket: str) -> None:
    store = S3BlobStore(bucket, "jobs/j1", client=s3_client)
    sink = BlobSink(f"s3://{bucket}/jobs/j1", store, flush_interval_s=3600)
    assert sink.open().entries == []
    sink.write_output("audio/a.wav", b"RIFF-a")
    sink.append_manifest([_entry("a", b"RIFF-a")])
    assert sink.read_manifest_bytes() == b""  # not due yet: S3 objects cannot be appended to
    sink.flush(force=True)
    assert [e["id"] for e in iter_manifest(sink.read_manifest_bytes())] == ["a"]
    sink.append_manifest([_entry("b")])
    sink.append_manifest([_entry("a", b"RIFF-a2")])  # replaced, not listed twice
    sink.close()
    entries = list(iter_manifest(sink.read_manifest_bytes()))
    assert [e["id"] for e in entries] == ["a", "b"]
    assert entries[0]["sha256"] == hashlib.sha256(b"RIFF-a2").hexdigest()
    assert sink.existing_outputs() == {"audio/a.wav"}
    key = s3_client.list_objects_v2(Bucket=bucket)["Contents"]
    assert sorted(o["Key"] for o in key) == ["jobs/j1/audio/a.wav", "jobs/j1/manifest.jsonl"]


def test_open_sink_by_url(tmp_path: Path) -> None:
    assert isinstance(open_sink(str(tmp_path / "x")), LocalSink)
    assert open_sink((tmp_path / "y").as_uri()).url == (tmp_path / "y").as_uri()
    for bad in ("ftp://host/x", "s3:///no-bucket", "file://elsewhere/x"):
        with pytest.raises(VoxError) as info:
            open_sink(bad)
        assert info.value.code == "invalid_output"
