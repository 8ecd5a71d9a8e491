"""``WS /v1/text-to-speech/{voice_id}/multi-stream-input``, driven as Pipecat's and LiveKit's ElevenLabs
services drive it (the recorded message shapes below), over a real socket with the ``websockets`` client."""

from __future__ import annotations

import base64
import json
from collections import defaultdict
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from live_uvicorn import LiveServer
from websockets.exceptions import ConnectionClosedError
from websockets.sync.client import connect

pytestmark = pytest.mark.slow

# What Pipecat's ElevenLabsTTSService sends (pipecat/services/elevenlabs/tts.py): a context-init with
# voice settings, text per LLM chunk, flush at the end of a turn, close_context, keep-alives with and
# without a context, and close_socket on disconnect. Its URL carries model_id, output_format, auto_mode.
PIPECAT_INIT = {"text": " ", "voice_settings": {"stability": 0.5, "similarity_boost": 0.75, "speed": 1.0}}
CONTEXTS = {
    "ctx-a": ["The first context starts here, ", "and it keeps going for a while."],
    "ctx-b": ["A second voice line arrives ", "while the first is still talking."],
    "ctx-c": ["Number three is short, ", "then done."],
}


@pytest.fixture(scope="module")
def key(vv) -> str:  # type: ignore[no-untyped-def]
    org_id, project_id = vv.keys.ensure_default_project()
    return str(
        vv.keys.create(org_id=org_id, project_id=project_id, scopes=["speech:create"], name="mc").secret
    )


@pytest.fixture(scope="module")
def live(vv) -> Iterator[LiveServer]:  # type: ignore[no-untyped-def]
    from voxvault.api.app import create_app

    server = LiveServer(create_app(vv=vv, warm_up=False))
    yield server
    server.stop()


def _url(live: LiveServer, voice: str = "kumo") -> str:
    ws = live.url.replace("http://", "ws://")
    query = "model_id=eleven_turbo_v2_5&output_format=pcm_16000&auto_mode=false"
    return f"{ws}/v1/text-to-speech/{voice}/multi-stream-input?{query}"


def test_three_interleaved_contexts_stream_in_order_and_close_cleanly(live: LiveServer, key: str, vv) -> None:  # type: ignore[no-untyped-def]
    audio: dict[str, bytes] = defaultdict(bytes)
    chars: dict[str, list[str]] = defaultdict(list)
    order: list[str] = []
    finals: list[str] = []
    with connect(_url(live), additional_headers={"xi-api-key": key}, max_size=16 * 1024 * 1024) as ws:
        for cid in CONTEXTS:
            ws.send(json.dumps({**PIPECAT_INIT, "context_id": cid}))
        ws.send(json.dumps({"text": ""}))  # a keep-alive without a context
        for i in range(2):  # interleaved: a, b, c, a, b, c
            for cid, parts in CONTEXTS.items():
                ws.send(json.dumps({"text": parts[i], "context_id": cid}))
        ws.send(json.dumps({"text": "", "context_id": "ctx-a"}))  # a keep-alive for a context
        for cid in CONTEXTS:
            ws.send(json.dumps({"context_id": cid, "flush": True}))
        ws.send(json.dumps({"context_id": "ctx-c", "close_context": True}))
        while len(finals) < 1:
            msg = json.loads(ws.recv(timeout=120))
            cid = msg["contextId"]
            if msg.get("isFinal"):
                finals.append(cid)
                continue
            assert msg["audio"]
            order.append(cid)
            audio[cid] += base64.b64decode(msg["audio"])
            if msg.get("alignment"):
                chars[cid] += msg["alignment"]["chars"]  # as sent: later chunks lead with a space
        ws.send(json.dumps({"close_socket": True}))
        while True:
            try:
                raw = ws.recv(timeout=120)
            except Exception:  # noqa: BLE001 - the close frame ends recv
                break
            msg = json.loads(raw)
            cid = msg["contextId"]
            if msg.get("isFinal"):
                finals.append(cid)
                continue
            order.append(cid)
            audio[cid] += base64.b64decode(msg["audio"])
            if msg.get("alignment"):
                chars[cid] += msg["alignment"]["chars"]  # as sent: later chunks lead with a space
        assert ws.close_code == 1000
    assert finals[0] == "ctx-c" and sorted(finals) == sorted(CONTEXTS)  # each context ends once
    assert len(set(order[: len(order) // 2])) > 1  # contexts' audio was interleaved, not one after another
    for cid, parts in CONTEXTS.items():
        spoken = " ".join("".join(chars[cid]).split())
        assert spoken == " ".join("".join(parts).split()), cid  # each context's own text, in order
        seconds = len(audio[cid]) / 2 / 16000
        assert 0.8 < seconds < 15, (cid, seconds)


def test_close_context_drops_unflushed_text_and_the_id_can_be_used_again(live: LiveServer, key: str) -> None:
    with connect(_url(live), additional_headers={"xi-api-key": key}) as ws:
        ws.send(json.dumps({**PIPECAT_INIT, "context_id": "turn-1"}))
        ws.send(json.dumps({"text": "never flushed and never", "context_id": "turn-1"}))
        ws.send(json.dumps({"context_id": "turn-1", "close_context": True}))
        first = json.loads(ws.recv(timeout=60))
        assert first == {"isFinal": True, "contextId": "turn-1"}  # no audio for text never flushed
        ws.send(json.dumps({"text": "Second life.", "context_id": "turn-1", "flush": True}))
        ws.send(json.dumps({"close_socket": True}))
        got = [json.loads(m) for m in ws]
    assert any(m.get("audio") for m in got) and got[-1] == {"isFinal": True, "contextId": "turn-1"}


def test_more_than_five_contexts_is_refused(live: LiveServer, key: str) -> None:
    with connect(_url(live), additional_headers={"xi-api-key": key}) as ws:
        for i in range(6):
            ws.send(json.dumps({"text": "Hello there", "context_id": f"c{i}"}))
        messages: list[dict[str, Any]] = []
        with pytest.raises(ConnectionClosedError):
            for raw in ws:
                messages.append(json.loads(raw))
        assert ws.close_code == 1008
    assert messages[-1]["error"]["code"] == "too_many_contexts"


# ------------------------------------------------------------------------------------------- keys
@pytest.fixture(scope="module")
def tc(vv) -> Iterator[TestClient]:  # type: ignore[no-untyped-def]
    from voxvault.api.app import create_app

    with TestClient(create_app(vv=vv, warm_up=False)) as c:
        yield c


@pytest.mark.parametrize("path", ["stream-input", "multi-stream-input"])
@pytest.mark.parametrize("field", ["xi_api_key", "xi-api-key", "authorization"])
def test_first_message_may_carry_the_key(tc: TestClient, key: str, path: str, field: str) -> None:
    value = f"Bearer {key}" if field == "authorization" else key
    with tc.websocket_connect(f"/v1/text-to-speech/alpha/{path}?output_format=pcm_16000") as ws:
        ws.send_json({"text": " ", field: value})
        ws.send_json({"text": "Hi.", "flush": True})
        ws.send_json({"close_socket": True} if path.startswith("multi") else {"text": ""})
        messages: list[dict[str, Any]] = []
        while True:
            msg = ws.receive()
            if msg["type"] == "websocket.close":
                break
            messages.append(json.loads(msg["text"]))
    assert msg["code"] == 1000, messages
    assert any(m.get("audio") for m in messages)
    assert messages[-1]["isFinal"] is True


def test_first_message_with_a_wrong_key_is_refused(tc: TestClient) -> None:
    with tc.websocket_connect("/v1/text-to-speech/alpha/multi-stream-input") as ws:
        ws.send_json({"text": " ", "authorization": "Bearer vv_not_a_key"})
        error = json.loads(ws.receive()["text"])["error"]
        close = ws.receive()
    assert error["code"] == "invalid_api_key" and close["code"] == 1008


def test_livekit_stream_input_shapes(live: LiveServer, key: str) -> None:
    """LiveKit's ElevenLabs plugin: stream-input, its default mp3_22050_32, an init message with
    voice_settings null and its own chunk schedule, one word per message, then {"text": ""}."""
    ws_url = live.url.replace("http://", "ws://")
    query = "model_id=eleven_turbo_v2_5&output_format=mp3_22050_32&optimize_streaming_latency=3"
    audio = b""
    with connect(
        f"{ws_url}/v1/text-to-speech/alpha/stream-input?{query}", additional_headers={"xi-api-key": key}
    ) as ws:
        init = {
            "text": " ",
            "try_trigger_generation": True,
            "voice_settings": None,
            "generation_config": {"chunk_length_schedule": [80, 120, 200, 260]},
        }
        ws.send(json.dumps(init))
        for word in ["Hello", "from", "a", "LiveKit", "agent,", "one", "word", "at", "a", "time."]:
            ws.send(json.dumps({"text": f"{word} ", "try_trigger_generation": False}))
        ws.send(json.dumps({"text": ""}))
        for raw in ws:
            msg = json.loads(raw)
            if msg.get("audio"):
                audio += base64.b64decode(msg["audio"])
        assert ws.close_code == 1000
    from voxvault.audio import decode

    decoded = decode(audio, max_bytes=10_000_000, max_seconds=60)
    assert decoded.source_sample_rate == 22050 and decoded.duration > 1.5
