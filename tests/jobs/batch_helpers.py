"""Checks every batch test makes on an output folder: the guarantees a studio relies on."""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Any

from voxvault.audio import decode
from voxvault.jobs.batch import FINAL_STATUSES

CREDENTIAL_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}

TEXTS = [
    "Hello.",
    "Good morning.",
    "One more line.",
    "The end is near.",
    "Chapter two.",
    "Thank you.",
    "See you soon.",
    "It is raining.",
    "Welcome back.",
    "Please wait.",
    "All done now.",
    "Goodbye.",
]


def write_items(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def tiny_rows(n: int, prefix: str = "clip") -> list[dict[str, Any]]:
    return [{"id": f"{prefix}-{i:02d}", "text": TEXTS[i % len(TEXTS)]} for i in range(n)]


def manifest_entries(out: Path) -> list[dict[str, Any]]:
    raw = (out / "manifest.jsonl").read_bytes()
    assert raw == b"" or raw.endswith(b"\n"), "manifest ends in a partial line"
    return [json.loads(line) for line in raw.decode("utf-8").splitlines()]


def check_output(out: Path, expected_ids: set[str]) -> list[dict[str, Any]]:
    """Each expected item listed exactly once, its file complete, decodable and matching its SHA-256."""
    entries = manifest_entries(out)
    ids = [e["id"] for e in entries]
    assert len(ids) == len(set(ids)), f"items listed twice: {sorted(i for i in ids if ids.count(i) > 1)}"
    assert set(ids) == expected_ids
    for entry in entries:
        data = (out / entry["path"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == entry["sha256"], entry["id"]
        audio = decode(data, max_bytes=50 * 1024 * 1024, max_seconds=600)
        assert abs(audio.duration - entry["duration"]) < 0.1, entry
        assert audio.duration > 0.2
        assert entry["watermark_id"] is not None and entry["voice"]
    leftovers = [p.name for p in out.rglob(".*.tmp")]
    assert not leftovers, f"temp files left behind: {leftovers}"
    listed = {e["path"] for e in entries}
    on_disk = (
        {p.relative_to(out).as_posix() for p in (out / "audio").iterdir()}
        if (out / "audio").exists()
        else set()
    )
    assert on_disk == listed, f"files not in the manifest: {sorted(on_disk - listed)}"
    return entries


def wait_for_batch(
    client: Any, job_id: str, *, kind: str = "batches", timeout: float = 180.0
) -> dict[str, Any]:
    """``GET /v1/<kind>/<job_id>`` every 50 ms until the job is in a final state; its last answer."""
    deadline = time.monotonic() + timeout
    body: dict[str, Any] = {}
    while time.monotonic() < deadline:
        body = client.get(f"/v1/{kind}/{job_id}").json()
        if body["status"] in FINAL_STATUSES:
            return body
        time.sleep(0.05)
    raise AssertionError(f"{kind} job {job_id} did not finish: {body}")
