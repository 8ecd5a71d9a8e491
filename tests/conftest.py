"""Shared fixtures: one loaded VoxVault per test session, a fresh data dir per test where it matters.

Model weights are joined once into ``.cache/models`` at the repo root (gitignored) and reused by every
test and every run, so the suite pays the 92 MB join and the float-graph conversion once per machine.
"""

from __future__ import annotations

import datetime as dt
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
TESTDATA = REPO.parent / "shared" / "testdata"
SPEAKERS = TESTDATA / "speakers"
MODEL_CACHE = REPO / ".cache" / "models"


def speaker_clips() -> list[Path]:
    return sorted(SPEAKERS.glob("en_*.wav")) if SPEAKERS.is_dir() else []


needs_testdata = pytest.mark.skipif(not speaker_clips(), reason="../shared/testdata/speakers is missing")


@pytest.fixture(scope="session")
def model_cache() -> Path:
    MODEL_CACHE.mkdir(parents=True, exist_ok=True)
    return MODEL_CACHE


@pytest.fixture(scope="session")
def settings(tmp_path_factory: pytest.TempPathFactory, model_cache: Path):  # type: ignore[no-untyped-def]
    from voxvault.config import Settings

    data = tmp_path_factory.mktemp("data")
    # The suites refuse many enrollments on purpose: no lockout for the session's instance (the attempt
    # guard is tested on its own, tests/voices/test_attempts.py and tests/api/test_consent_attacks.py).
    return Settings(
        data_dir=data,
        cache_dir=model_cache,
        max_input_chars=20_000,
        consent_refusals_before_cooldown=10**6,
        consent_refusals_before_lock=10**6,
    )


@pytest.fixture(scope="session")
def vv(settings):  # type: ignore[no-untyped-def]
    from voxvault.service import VoxVault

    vv = VoxVault(settings)
    vv.keys.ensure_default_project()  # the first project is "default", whatever tests create later
    return vv


@pytest.fixture(scope="session")
def app(vv):  # type: ignore[no-untyped-def]
    from voxvault.api.app import create_app

    return create_app(vv=vv, warm_up=False)


@pytest.fixture(scope="session")
def admin_key(vv) -> str:  # type: ignore[no-untyped-def]
    """An admin key in the default tenant (what `voxvault serve` prints on first start)."""
    org_id, project_id = vv.keys.ensure_default_project()
    return str(vv.keys.create(org_id=org_id, project_id=project_id, scopes=["admin"], name="tests").secret)


@pytest.fixture(scope="session")
def client(app, admin_key: str):  # type: ignore[no-untyped-def]
    """A TestClient authenticated with the admin key."""
    from fastapi.testclient import TestClient

    with TestClient(app, headers={"Authorization": f"Bearer {admin_key}"}) as c:
        yield c


@pytest.fixture(scope="session")
def anon_client(app):  # type: ignore[no-untyped-def]
    from fastapi.testclient import TestClient

    with TestClient(app) as c:
        yield c


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def live_server(app) -> Iterator[str]:  # type: ignore[no-untyped-def]
    """The app served by uvicorn on a loopback port, for real HTTP clients (openai package)."""
    import uvicorn

    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.time() + 30
    while not server.started and time.time() < deadline:
        time.sleep(0.05)
    assert server.started, "uvicorn did not start"
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


# -- a cloned voice row as enrollment writes it, and a target speaker (voice, cloning and job tests) --
def make_voice(vv: Any, project: str, style: np.ndarray, embedding: np.ndarray) -> str:
    """A cloned voice row with sealed style and embedding, as enrollment writes them."""
    from voxvault.store.models import Consent, Voice, utcnow
    from voxvault.voices.lifecycle import array_bytes

    now = utcnow()
    with vv.db.session() as s:
        consent = Consent(
            project_id=project,
            speaker_name="Ada",
            purpose="tests",
            organization_name="Lab",
            script="...",
            challenge_hash="0" * 64,
            challenge_expires_at=now,
            status="verified",
            expires_at=now + dt.timedelta(days=30),
            recording_sha256=None,
        )
        s.add(consent)
        s.flush()
        voice = Voice(
            project_id=project,
            name="ada",
            kind="cloned",
            status="active",
            engine="kokoro",
            consent_id=consent.id,
        )
        s.add(voice)
        s.flush()
        vid = voice.id
    reg = vv.voice_registry
    emb_key = reg.put_sealed(vid, "embedding", array_bytes(embedding))
    style_key = reg.put_sealed(vid, "style", array_bytes(style))
    with vv.db.session() as s:
        row = s.get(Voice, vid)
        assert row is not None
        row.embedding_blob, row.style_blob = emb_key, style_key
    return vid


@pytest.fixture(scope="session")
def target(vv: Any) -> np.ndarray:
    speech = vv.speak("Every morning I walk to the market and buy fresh bread.", voice="alpha", format="pcm")
    return np.asarray(vv.engines.speaker().embed(speech.samples, speech.sample_rate), dtype=np.float32)


@pytest.fixture(name="make_voice")
def make_voice_fixture() -> Callable[[Any, str, np.ndarray, np.ndarray], str]:
    return make_voice
