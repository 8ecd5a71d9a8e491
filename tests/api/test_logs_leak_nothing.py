"""Logs never carry an API key or the text spoken: everything is captured at DEBUG and scanned.

Covers our own loggers, SQLAlchemy's statement log, and uvicorn's access log (a real server on a loopback
port, logging through the root logger), including keys a client wrongly puts in a URL.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import traceback
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi.testclient import TestClient

SPOKEN = "Quixotic zebras waltz past seven crimson lighthouses"


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def debug_logs(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    """Capture every record at DEBUG, including uvicorn's (restored afterwards)."""
    names = ("uvicorn", "uvicorn.error", "uvicorn.access", "uvicorn.asgi", "sqlalchemy.engine")
    saved = {n: (logging.getLogger(n).level, logging.getLogger(n).propagate) for n in names}
    caplog.set_level(logging.DEBUG)
    for n in names:
        logging.getLogger(n).setLevel(logging.DEBUG)
    yield caplog
    for n, (level, propagate) in saved.items():
        logging.getLogger(n).setLevel(level)
        logging.getLogger(n).propagate = propagate


def _everything(records: list[logging.LogRecord]) -> str:
    parts = []
    for r in records:
        parts.append(r.getMessage())
        parts.append(repr(r.args))
        if r.exc_info:
            parts.append("".join(traceback.format_exception(*r.exc_info)))
        if r.exc_text:
            parts.append(r.exc_text)
        parts.append(repr({k: v for k, v in r.__dict__.items() if k not in ("args", "msg", "exc_info")}))
    return "\n".join(parts)


def _assert_clean(records: list[logging.LogRecord], secrets: list[str]) -> None:
    text = _everything(records)
    assert len(records) > 5, "nothing was captured: the test would prove nothing"
    for secret in secrets:
        assert secret not in text, f"a secret or the spoken text reached the logs: {secret[:12]}..."
        tail = secret[-20:]
        assert tail not in text, f"part of a secret reached the logs: ...{tail[-6:]}"
    assert SPOKEN.lower() not in text.lower()
    assert "zebras waltz" not in text.lower()


def _exercise(client: TestClient, vv: Any, admin: str) -> list[str]:
    """Requests that handle keys and text: create, use, misuse, deny, speak; returns the secrets used."""
    created = client.post("/v1/keys", json={"scopes": ["speech:create"], "name": "leak test"})
    assert created.status_code == 201
    speaker = created.json()["key"]
    as_speaker = {"Authorization": f"Bearer {speaker}"}
    client.get("/v1/keys", headers=as_speaker)  # 403, audited
    client.get("/v1/keys", headers={"Authorization": f"Bearer {speaker}x"})  # unknown key
    client.get(f"/v1/keys?xi_api_key={speaker}&api_key={admin}")  # a client putting keys in a URL
    client.get(f"/v1/audit?authorization=Bearer%20{admin}")
    for path, body in (
        ("/v1/audio/speech", {"input": SPEAKER_TEXT, "voice": "alpha", "response_format": "pcm"}),
        ("/v1/text-to-speech/alpha?output_format=pcm_16000", {"text": SPEAKER_TEXT}),
    ):
        client.post(path, json=body, headers=as_speaker)
    client.post("/v1/audio/speech", json={"input": SPEAKER_TEXT, "voice": "nobody"}, headers=as_speaker)
    client.post("/v1/audio/speech", json={"input": SPEAKER_TEXT, "speed": 99}, headers=as_speaker)
    return [speaker]


SPEAKER_TEXT = f"{SPOKEN}. Hello world."


def test_in_process_requests_log_no_key_and_no_text(
    debug_logs: pytest.LogCaptureFixture, app: Any, vv: Any, admin_key: str
) -> None:
    client = TestClient(app, headers={"Authorization": f"Bearer {admin_key}"}, raise_server_exceptions=False)
    used = _exercise(client, vv, admin_key)
    with client.websocket_connect(f"/v1/text-to-speech/alpha/stream-input?xi_api_key={used[0]}") as ws:
        ws.send_text(json.dumps({"text": SPEAKER_TEXT + " "}))
        ws.send_text(json.dumps({"text": ""}))
        try:
            for _ in range(50):
                if ws.receive().get("type") == "websocket.close":
                    break
        except Exception:  # noqa: BLE001 - the server may close first; only the logs matter here
            pass
    _assert_clean(debug_logs.records, [admin_key, *used])


def test_uvicorn_access_log_has_no_key(
    debug_logs: pytest.LogCaptureFixture, app: Any, admin_key: str
) -> None:
    from websockets.sync.client import connect

    port = _free_port()
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, log_config=None, log_level="debug", access_log=True, lifespan="off"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.time() + 20
    while not server.started and time.time() < deadline:
        time.sleep(0.05)
    assert server.started
    try:
        base = f"http://127.0.0.1:{port}"
        with httpx.Client(
            base_url=base, headers={"Authorization": f"Bearer {admin_key}"}, timeout=30
        ) as http:
            assert http.get("/v1/keys").status_code == 200
            http.get(f"/v1/audit?xi_api_key={admin_key}")
            http.get("/v1/keys", headers={"xi-api-key": admin_key, "Authorization": ""})
        try:
            with connect(
                f"ws://127.0.0.1:{port}/v1/text-to-speech/alpha/stream-input?xi_api_key={admin_key}",
                open_timeout=10,
                close_timeout=2,
            ) as ws:
                ws.send(json.dumps({"text": SPEAKER_TEXT + " "}))
                ws.send(json.dumps({"text": ""}))
                for _ in range(50):
                    ws.recv(timeout=20)
        except Exception:  # noqa: BLE001 - closing with an error code is fine; the logs are the point
            pass
    finally:
        server.should_exit = True
        thread.join(timeout=10)
    access = [r for r in debug_logs.records if r.name.startswith("uvicorn")]
    assert any("/v1/keys" in r.getMessage() for r in access), "uvicorn's access log was not captured"
    _assert_clean(debug_logs.records, [admin_key])
