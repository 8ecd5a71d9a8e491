"""What the audit log says about the server itself: start-up is not a generation, a detection names what
was checked."""

from __future__ import annotations

from typing import Any

import numpy as np
from sqlalchemy import func, select

from voxvault.audio import encode
from voxvault.store.models import Generation


def _generations(vv: Any) -> int:
    with vv.db.session() as s:
        return int(s.scalar(select(func.count()).select_from(Generation)) or 0)


def test_warm_up_is_not_recorded_as_speech(vv: Any) -> None:
    entries = list(vv.audit.entries())
    seq = entries[-1]["seq"] if entries else 0
    before = _generations(vv)
    vv.warm_up()
    assert [e["action"] for e in vv.audit.entries(since_seq=seq)] == []
    assert _generations(vv) == before


def test_watermark_detection_names_its_target(vv: Any) -> None:
    speech = vv.speak("This sentence is long enough to carry the watermark for a check.", format="wav")
    result = vv.provenance.detect_bytes(speech.audio)
    assert result["present"]
    vv.provenance.record_detection(result, None)
    entry = list(vv.audit.entries())[-1]
    assert entry["action"] == "watermark.detected"
    record = vv.provenance.generation(int(result["payload"]))
    assert entry["target"] == f"generation:{record['generation_id']}"

    silence = encode(np.zeros(3 * 24_000, np.float32), 24_000, "wav")
    result = vv.provenance.detect_bytes(silence)
    assert not result["present"]
    vv.provenance.record_detection(result, None)
    entry = list(vv.audit.entries())[-1]
    assert entry["target"] == f"file:sha256:{result['input_sha256'][:16]}"
