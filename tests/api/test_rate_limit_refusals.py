"""Speech past a key's limit is refused with 429 and Retry-After, and the refusal is audited."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from voxvault.api.app import create_app
from voxvault.config import Settings
from voxvault.service import VoxVault

pytestmark = pytest.mark.slow


def test_speech_over_the_key_limit_gets_429_with_retry_after(tmp_path: Path, vv: VoxVault) -> None:
    own = VoxVault(
        Settings(
            data_dir=tmp_path / "d",
            cache_dir=vv.settings.resolved_cache_dir,
            rate_limit_per_key_per_minute=1,
            rate_limit_per_voice_per_minute=0,
        )
    )
    own.engines = vv.engines  # the session's loaded engines
    try:
        own.catalog  # noqa: B018
    except Exception as exc:  # noqa: BLE001
        pytest.skip(f"TTS engine unavailable: {type(exc).__name__}")
    created = own.bootstrap()
    assert created is not None
    client = TestClient(
        create_app(vv=own, warm_up=False), headers={"Authorization": f"Bearer {created.secret}"}
    )
    body: dict[str, Any] = {"input": "Hi.", "voice": "alpha", "response_format": "pcm"}
    assert client.post("/v1/audio/speech", json=body).status_code == 200
    refused = client.post("/v1/audio/speech", json=body)
    assert refused.status_code == 429
    assert refused.json()["error"]["code"] == "rate_limited"
    assert 1 <= int(refused.headers["retry-after"]) <= 60
    entries = [e for e in own.audit.entries() if e["action"] == "access.rate_limited"]
    assert len(entries) == 1 and entries[0]["actor"] == created.id and entries[0]["details"]["limit"] == "key"
