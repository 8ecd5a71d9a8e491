"""``WS /v1/speech-to-text/stream``: PCM in as it is spoken, partial then final segments out, bounded
and refused like the other sockets. tiny.en (the session's loaded one)."""

from __future__ import annotations

import json
import wave
from typing import Any

import numpy as np
import pytest
from starlette.websockets import WebSocketDisconnect
from tests.conftest import SPEAKERS, needs_testdata

from voxvault.api.routes import transcription_ws as ws_mod
from voxvault.engines.asr import word_error_rate

pytestmark = [pytest.mark.slow, needs_testdata]

JAMES = "We have also started contemplating the possibility of moving back to Colorado."
ANDREW = "The name, which is Cajun French in origin and means mosquito, is pronounced Maringouin."
URL = "/v1/speech-to-text/stream?model=tiny.en"


def pcm(name: str) -> tuple[bytes, int]:
    with wave.open(str(SPEAKERS / f"en_{name}.wav")) as w:
        return w.readframes(w.getnframes()), w.getframerate()


def converse(ws: Any, audio: bytes, rate: int, chunk_s: float = 0.25) -> list[dict[str, Any]]:
    """Send ``audio`` in chunks, then end; every message until the server closes."""
    first = json.loads(ws.receive_text())
    assert first["type"] == "ready"
    step = int(rate * chunk_s) * 2
    for i in range(0, len(audio), step):
        ws.send_bytes(audio[i : i + step])
    ws.send_text(json.dumps({"type": "end"}))
    messages = []
    while True:
        message = ws.receive()
        if message["type"] == "websocket.close":
            assert message["code"] == 1000
            return messages
        messages.append(json.loads(message["text"]))


def test_partials_then_finals_then_done(client, vv) -> None:  # type: ignore[no-untyped-def]
    james, rate = pcm("james")
    gap = b"\x00\x00" * (rate * 3)  # three seconds of pause: the first sentence settles before the second
    andrew, _ = pcm("andrew")
    with client.websocket_connect(f"{URL}&sample_rate={rate}") as ws:
        messages = converse(ws, james + gap + andrew, rate)
    kinds = [m["type"] for m in messages]
    assert kinds[-1] == "done" and "final" in kinds
    finals = [m for m in messages if m["type"] == "final"]
    assert word_error_rate(JAMES + " " + ANDREW, " ".join(f["text"] for f in finals)) <= 0.2
    assert [f["id"] for f in finals] == list(range(len(finals)))
    starts = [f["start"] for f in finals]
    assert starts == sorted(starts) and finals[-1]["end"] <= messages[-1]["duration"] + 0.1
    assert any(w["word"].lower().strip(".") == "colorado" for f in finals for w in f["words"])
    done = messages[-1]
    assert done["text"] == " ".join(f["text"] for f in finals) and done["language"] == "en"
    assert done["duration"] == pytest.approx((len(james) + len(gap) + len(andrew)) / 2 / rate, abs=0.05)
    # the first sentence was heard while it was spoken (partials), and was final before the end
    assert kinds.index("partial") < kinds.index("final")
    assert "colorado" in finals[0]["text"].lower() and kinds.count("final") >= 2


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
    assert messages[-1]["type"] == "done" and "colorado" in messages[-1]["text"].lower()
