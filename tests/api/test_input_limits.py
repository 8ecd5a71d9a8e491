"""Security audit, findings 1 and 8, through every route that takes text.

1. SSML pause amplification: a request asking for more breaks or more audio than the limits is refused
   with 413 and a code naming the limit, before any synthesis (no generation record, no audio byte).
8. Lone surrogates (``"\\ud800"``) and NUL characters cannot be spoken or stored: 400 ``invalid_text``
   on every route, close 1007 ``invalid_text`` on the WebSocket, never a 500 or a reset connection.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from voxvault.service import VoxVault
from voxvault.store.models import Generation

pytestmark = pytest.mark.slow

BREAK = '<break time="10s"/>'
SMALL_BOMB = "<speak>Hi" + BREAK * 25 + "</speak>"  # 492 bytes, 251 s
BIG_BOMB = "<speak>Hi" + BREAK * 1000 + "</speak>"  # 10,000 s
LONG_BOMB = "<speak>" + ("Go." + BREAK) * 400 + "</speak>"  # 400 breaks, 4,000 s
WS = "/v1/text-to-speech/alpha/stream-input"


def generations(vv: VoxVault) -> int:
    with vv.db.session() as s:
        return int(s.scalar(select(func.count()).select_from(Generation)) or 0)


def speak_routes(text: str) -> Iterator[tuple[str, dict[str, Any]]]:
    yield "/v1/audio/speech", {"input": text, "voice": "alpha", "response_format": "pcm"}
    yield "/v1/text-to-speech/alpha?output_format=pcm_24000", {"text": text}
    yield "/v1/text-to-speech/alpha/stream?output_format=pcm_24000", {"text": text}


# ------------------------------------------------------------------------------------- finding 1
@pytest.mark.parametrize(
    ("text", "code", "limit"),
    [(BIG_BOMB, "too_many_breaks", "500"), (LONG_BOMB, "audio_too_long", "3600")],
)
def test_pause_bombs_are_refused_before_synthesis_on_every_speech_route(
    client: TestClient, vv: VoxVault, text: str, code: str, limit: str
) -> None:
    for path, body in speak_routes(text):
        before = generations(vv)
        r = client.post(path, json=body)
        assert r.status_code == 413, (path, r.status_code, r.text[:200])
        error = r.json()["error"]
        assert error["code"] == code and limit in error["message"], (path, error)
        assert generations(vv) == before, path  # nothing was synthesised


def test_the_audits_small_bomb_still_speaks_all_of_its_pauses(client: TestClient) -> None:
    r = client.post(
        "/v1/audio/speech", json={"input": SMALL_BOMB, "voice": "alpha", "response_format": "pcm"}
    )
    assert r.status_code == 200
    assert 250.0 <= len(r.content) / 2 / 24000 <= 253.0


def test_websocket_session_is_bounded_as_a_whole(client: TestClient, vv: VoxVault, admin_key: str) -> None:
    limit = vv.pipeline.max_audio_s
    vv.pipeline.max_audio_s = 6.0
    try:
        with client.websocket_connect(WS, headers={"xi-api-key": admin_key}) as ws:
            ws.send_json({"text": " "})
            for _ in range(6):  # each segment alone fits; together they pass the limit
                ws.send_json({"text": "The quick brown fox jumps over the lazy dog.", "flush": True})
            error, close = _until_close(ws)
    finally:
        vv.pipeline.max_audio_s = limit
    assert (close["code"], close["reason"]) == (1008, "audio_too_long")
    assert error is not None and "max_audio_seconds" in error["message"]


def _until_close(ws: Any) -> tuple[dict[str, Any] | None, dict[str, Any]]:
    error = None
    while True:
        msg = ws.receive()
        if msg["type"] == "websocket.close":
            return error, msg
        if msg.get("text"):
            data = json.loads(msg["text"])
            if "error" in data:
                error = data["error"]
