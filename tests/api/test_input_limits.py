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


# ------------------------------------------------------------------------------------- finding 8
LONE_HIGH = "\\ud800"  # as the JSON escape a client sends
BAD_TEXTS = [
    pytest.param(LONE_HIGH, id="lone-high"),
    pytest.param("a\\udfffb", id="lone-low"),
    pytest.param("\\udc00\\ud800", id="pair-reversed"),
    pytest.param("Hi\\u0000there", id="nul"),
    pytest.param("\udced\udca0\udc80", id="utf8-encoded-surrogate"),  # raw bytes ED A0 80 in the body
]
# (method, path, JSON body with "@" where the text goes)
TEXT_ROUTES: list[tuple[str, str, dict[str, Any]]] = [
    ("POST", "/v1/audio/speech", {"input": "@", "voice": "alpha", "response_format": "pcm"}),
    ("POST", "/v1/audio/speech", {"input": "Hello.", "voice": "@"}),
    ("POST", "/v1/text-to-speech/alpha", {"text": "@"}),
    ("POST", "/v1/text-to-speech/alpha/stream", {"text": "@"}),
    ("POST", "/v1/keys", {"name": "@", "scopes": ["speech:create"]}),
    ("POST", "/v1/consents", {"speaker_name": "@", "organization": "Acme", "purpose": "tests"}),
    ("PATCH", "/v1/voices/v-unknown", {"name": "@"}),
]


def raw_json(body: dict[str, Any], text: str) -> bytes:
    """``body`` as JSON with ``text`` spliced in verbatim (JSON escapes such as \\ud800 reach the server
    as written; surrogate-escaped characters become the raw bytes they stand for)."""
    marker = "@@TEXT@@"
    encoded = json.dumps({k: (marker if v == "@" else v) for k, v in body.items()})
    return encoded.replace(marker, text).encode("utf-8", "surrogateescape")


@pytest.mark.parametrize("text", BAD_TEXTS)
@pytest.mark.parametrize(
    ("method", "path", "body"), TEXT_ROUTES, ids=lambda v: v if isinstance(v, str) else ""
)
def test_undecodable_text_is_refused_with_400_on_every_json_route(
    client: TestClient, vv: VoxVault, method: str, path: str, body: dict[str, Any], text: str
) -> None:
    before = generations(vv)
    r = client.request(
        method, path, content=raw_json(body, text), headers={"content-type": "application/json"}
    )
    assert r.status_code == 400, (path, r.status_code, r.text[:300])
    assert r.json()["error"]["code"] == "invalid_text"
    assert generations(vv) == before


def test_valid_escapes_still_work(client: TestClient) -> None:
    """A surrogate pair (an emoji), an escaped backslash before 'ud800' and a plain \\u escape are text."""
    body = raw_json(
        {"input": "@", "voice": "alpha", "response_format": "pcm"}, "Hi \\ud83d\\ude00 a\\\\ud800 \\u0041."
    )
    r = client.post("/v1/audio/speech", content=body, headers={"content-type": "application/json"})
    assert r.status_code == 200, r.text[:300]


def test_batch_upload_with_a_lone_surrogate_is_refused(client: TestClient) -> None:
    line = raw_json({"id": "one", "text": "@"}, LONE_HIGH)
    for content_type in ("application/x-ndjson", "application/json"):
        r = client.post("/v1/batches", content=line + b"\n", headers={"content-type": content_type})
        assert r.status_code == 400, r.text[:300]
        assert r.json()["error"]["code"] == "invalid_text"


def test_non_utf8_json_is_refused(client: TestClient) -> None:
    body = json.dumps({"input": "Hello.", "voice": "alpha"}).encode("utf-16")
    r = client.post("/v1/audio/speech", content=body, headers={"content-type": "application/json"})
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_text"


@pytest.mark.parametrize("path", ["/v1/voices/a%00b", "/v1/audit?since=1%00", "/v1/keys/k%00"])
def test_nul_in_the_url_is_refused(client: TestClient, path: str) -> None:
    r = client.get(path)
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_text"


def test_multipart_text_field_with_nul_is_refused(client: TestClient) -> None:
    r = client.post(
        "/v1/consents",
        json={"speaker_name": "Sam", "organization": "Acme", "purpose": "t", "expires_in_days": 30},
    )
    assert r.status_code == 201, r.text[:300]
    consent = r.json()["consent_id"]
    r = client.post(
        f"/v1/consents/{consent}/enroll",
        data={"challenge": "123456", "name": "Sam\x00"},
        files={"recording": ("r.wav", b"RIFF", "audio/wav")},
    )
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_text", r.text[:300]


def test_python_and_cli_text_is_checked_too(vv: VoxVault) -> None:
    from voxvault.errors import VoxError

    for text in ("Hi \ud800", "Hi \x00 there", "caf\udce9"):  # the last: a non-UTF-8 argv byte
        with pytest.raises(VoxError) as err:
            vv.speak(text, voice="alpha", format="pcm")
        assert err.value.code == "invalid_text"


@pytest.mark.parametrize("text", [LONE_HIGH, "\\u0000"])
def test_websocket_closes_1007_invalid_text(client: TestClient, admin_key: str, text: str) -> None:
    with client.websocket_connect(WS, headers={"xi-api-key": admin_key}) as ws:
        ws.send_json({"text": " "})
        ws.send_text('{"text": "Hello ' + text + '", "flush": true}')
        error, close = _until_close(ws)
    assert (close["code"], close["reason"]) == (1007, "invalid_text")
    assert error is not None and error["code"] == "invalid_text"
