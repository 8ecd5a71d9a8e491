"""Issue 29, finding 2: a batch's outputs in the blob store are sealed at rest and opened when served."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from batch_helpers import wait_for_batch
from fastapi.testclient import TestClient

pytestmark = pytest.mark.slow

# What a player (or `file`) recognises at the start of an audio file.
AUDIO_MAGIC = (b"RIFF", b"ID3", b"\xff\xfb", b"\xff\xf3", b"OggS", b"fLaC", b"\xff\xf1", b"\xff\xf9")


def _chunks(data: bytes, size: int = 32, stride: int = 256) -> list[bytes]:
    """Windows of the audio that could only match a copy of it (silence and padding are left out)."""
    windows = (data[i : i + size] for i in range(0, len(data) - size + 1, stride))
    return [w for w in windows if len(set(w)) > 12]


def test_batch_outputs_are_sealed_in_the_store_and_served_in_clear(client: TestClient, vv: Any) -> None:
    rows = [
        {"id": "seal-wav", "text": "Hello there.", "format": "wav"},
        {"id": "seal-mp3", "text": "Good morning.", "format": "mp3"},
        {"id": "seal-ogg", "text": "Thank you.", "format": "opus"},
        {"id": "seal-flac", "text": "Goodbye.", "format": "flac"},
    ]
    body = "".join(json.dumps(r) + "\n" for r in rows).encode()
    r = client.post("/v1/batches", content=body, headers={"content-type": "application/x-ndjson"})
    assert r.status_code == 202, r.text
    job_id = r.json()["id"]
    assert wait_for_batch(client, job_id)["status"] == "completed"

    served: dict[str, bytes] = {}
    for row in rows:
        answer = client.get(f"/v1/batches/{job_id}/items/{row['id']}/audio")
        assert answer.status_code == 200, answer.text
        assert answer.content.startswith(AUDIO_MAGIC), row["id"]  # decrypted when served
        served[row["id"]] = answer.content
    manifest = {
        e["id"]: e for e in map(json.loads, client.get(f"/v1/batches/{job_id}/manifest").text.splitlines())
    }
    for item_id, data in served.items():
        assert hashlib.sha256(data).hexdigest() == manifest[item_id]["sha256"]

    vv.db.dispose()
    files = {p: p.read_bytes() for p in Path(vv.settings.data_dir).rglob("*") if p.is_file()}
    outputs = [p for p in files if f"batches/{job_id}/audio/" in p.as_posix()]
    assert len(outputs) == len(rows)
    for path in outputs:
        assert files[path].startswith(b"VXE1"), path
    starts = [p for p, data in files.items() if data.startswith(AUDIO_MAGIC)]
    assert not starts, f"audio files in the clear under the data dir: {starts}"
    for item_id, data in served.items():
        assert len(_chunks(data[64:])) > 4, item_id
        for chunk in _chunks(data[64:]):
            hits = [p for p, raw in files.items() if chunk in raw]
            assert not hits, f"bytes of {item_id} readable in {hits}"
