"""Issue 29, finding 3: erasing a voice removes the batch clips spoken with it, and says how many."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from batch_helpers import wait_for_batch
from fastapi.testclient import TestClient
from tests.conftest import make_voice

from voxvault.store.models import JobItem

pytestmark = pytest.mark.slow


def test_erasure_deletes_the_voices_batch_clips_and_counts_them(client: TestClient, vv: Any) -> None:
    voice_id = make_voice(vv, speaker_name="Grace Hopper", name="grace")  # speaks with alpha's style
    rows = [
        {"id": "mine-1", "text": "Hello there.", "voice": voice_id},
        {"id": "mine-2", "text": "Good morning.", "voice": voice_id},
        {"id": "preset", "text": "Thank you.", "voice": "alpha"},
    ]
    body = "".join(json.dumps(r) + "\n" for r in rows).encode()
    r = client.post("/v1/batches", content=body, headers={"content-type": "application/x-ndjson"})
    assert r.status_code == 202, r.text
    job_id = r.json()["id"]
    assert wait_for_batch(client, job_id)["status"] == "completed"
    for row in rows:
        assert client.get(f"/v1/batches/{job_id}/items/{row['id']}/audio").status_code == 200

    erased = client.delete(f"/v1/voices/{voice_id}")
    assert erased.status_code == 200, erased.text
    answer = erased.json()
    assert (answer["outputs_deleted"], answer["batch_items_scrubbed"]) == (2, 2), answer
    assert answer["exported_outputs_left"] == 0

    for item_id in ("mine-1", "mine-2"):
        gone = client.get(f"/v1/batches/{job_id}/items/{item_id}/audio")
        assert gone.status_code == 410, gone.text
        assert gone.json()["error"]["code"] == "output_erased"
    assert client.get(f"/v1/batches/{job_id}/items/preset/audio").status_code == 200
    manifest = [json.loads(line) for line in client.get(f"/v1/batches/{job_id}/manifest").text.splitlines()]
    assert [e["id"] for e in manifest] == ["preset"]
    assert sorted(vv.blobs.list(f"batches/{job_id}/audio/")) == [f"batches/{job_id}/audio/preset.wav"]
    with vv.db.session() as s:
        item = s.get(JobItem, (job_id, "mine-1"))
        assert item is not None and item.status == "erased"
        assert (item.output_key, item.sha256, item.duration) == (None, None, None)
    audio_dir = Path(vv.settings.data_dir) / "blobs" / "batches" / job_id / "audio"
    assert sorted(p.name for p in audio_dir.iterdir()) == ["preset.wav"]
    entry = [e for e in vv.audit.entries() if e["action"] == "voice.erased" and e["target"] == voice_id]
    assert entry and entry[-1]["details"]["outputs_deleted"] == 2
