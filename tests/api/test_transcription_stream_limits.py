"""``WS /v1/speech-to-text/stream``, bounded and refused like the other sockets: silence, bad parameters,
bad messages and keys, idle clients, unsettled audio. On the fake transcriber (``transcriber_engine =
"fake"``, Whisper's options and windows, made-up words); the words are judged in
tests/api/test_transcription_stream.py."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest
from starlette.websockets import WebSocketDisconnect
from tests.api.test_transcription_stream import URL, converse, pcm
from tests.conftest import needs_testdata

from voxvault.api.routes import transcription_ws as ws_mod

pytestmark = [needs_testdata]


def test_silence_is_an_empty_transcript(client) -> None:  # type: ignore[no-untyped-def]
    with client.websocket_connect(URL) as ws:
        messages = converse(ws, b"\x00\x00" * 16_000 * 3, 16_000)
    assert messages == [{"type": "done", "text": "", "duration": 3.0, "language": "en"}]


def _refusal(client, url: str, send: Any = None, headers: dict[str, str] | None = None) -> tuple[int, str]:  # type: ignore[no-untyped-def]
    try:
        with client.websocket_connect(url, headers=headers or {}) as ws:
            message = json.loads(ws.receive_text())
            if message.get("type") == "ready" and send is not None:
                send(ws)
                message = json.loads(ws.receive_text())
            closing = ws.receive()
            return int(closing.get("code", 1000)), message["error"]["code"]
    except WebSocketDisconnect as exc:
        return exc.code, str(exc.reason)


@pytest.mark.parametrize(
    ("query", "code"),
    [
        ("?model=large", "unsupported_model"),
        ("?encoding=mp3", "unsupported_encoding"),
        ("?sample_rate=4000", "invalid_sample_rate"),
        ("?model=tiny.en&language=de", "unsupported_language"),
    ],
)
def test_bad_parameters_close_1008(client, query: str, code: str) -> None:  # type: ignore[no-untyped-def]
    assert _refusal(client, "/v1/speech-to-text/stream" + query) == (1008, code)


def test_bad_messages_and_keys(client, anon_client, vv, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    assert _refusal(client, URL, lambda ws: ws.send_text("hello")) == (1007, "invalid_message")
    assert _refusal(client, URL, lambda ws: ws.send_bytes(b"\x00\x00\x00")) == (1007, "invalid_audio")
    big = vv.settings.ws_max_message_bytes + 2
    assert _refusal(client, URL, lambda ws: ws.send_bytes(b"\x00" * big)) == (1009, "message_too_big")
    monkeypatch.setattr(vv.settings, "asr_max_seconds", 1.0)
    assert _refusal(client, URL, lambda ws: ws.send_bytes(b"\x01\x00" * 20_000)) == (1008, "audio_too_long")
    assert _refusal(anon_client, URL) == (1008, "missing_api_key")
    org, project = vv.keys.ensure_default_project()
    speaker = vv.keys.create(org_id=org, project_id=project, scopes=["speech:create"]).secret
    assert _refusal(anon_client, f"{URL}&api_key={speaker}") == (1008, "insufficient_scope")


def test_idle_client_is_closed(client, vv, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(vv.settings, "ws_inactivity_timeout_s", 0.3)
    assert _refusal(client, URL, lambda ws: None) == (1008, "inactive")


def test_unsettled_audio_is_bounded(client, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(ws_mod, "MAX_BUFFER_S", 6.0)
    james, rate = pcm("james")
    noise = (np.random.default_rng(0).normal(0, 0.01, rate * 8) * 32767).astype("<i2").tobytes()
    with client.websocket_connect(f"{URL}&sample_rate={rate}") as ws:
        messages = converse(ws, noise + james, rate, chunk_s=0.5)
    done = messages[-1]
    assert done["type"] == "done" and done["duration"] == pytest.approx(8 + len(james) / 2 / rate, abs=0.05)
    # the noise was dropped unheard once it filled the buffer; the speech after it was still heard
    finals = [m for m in messages if m["type"] == "final"]
    assert finals and finals[-1]["end"] > 8.5 and done["text"] == " ".join(f["text"] for f in finals)
