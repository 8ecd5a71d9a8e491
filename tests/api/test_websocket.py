"""``WS /v1/text-to-speech/{voice_id}/stream-input``: text in as a model writes it, audio and timings out."""

from __future__ import annotations

import base64
import json
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from live_uvicorn import LiveServer, audit_actions_since, other_threads, wait_until
from websockets.sync.client import connect

from voxvault.synthesis.admission import Admission

pytestmark = pytest.mark.slow

WS = "/v1/text-to-speech/{voice}/stream-input"
INIT = {"text": " ", "voice_settings": {"stability": 0.5, "similarity_boost": 0.8, "speed": 1.0}}


@pytest.fixture(scope="module")
def ws_key(vv) -> str:  # type: ignore[no-untyped-def]
    org_id, project_id = vv.keys.ensure_default_project()
    return str(
        vv.keys.create(org_id=org_id, project_id=project_id, scopes=["speech:create"], name="ws").secret
    )


@pytest.fixture(scope="module")
def ws_app(vv):  # type: ignore[no-untyped-def]
    from voxvault.api.app import create_app

    return create_app(vv=vv, warm_up=False)


@pytest.fixture(scope="module")
def tc(ws_app) -> Iterator[TestClient]:  # type: ignore[no-untyped-def]
    with TestClient(ws_app) as c:
        yield c


def url(voice: str = "alpha", **query: str) -> str:
    q = "&".join(f"{k}={v}" for k, v in query.items())
    return WS.format(voice=voice) + (f"?{q}" if q else "")


def collect(ws: Any) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Audio messages until ``isFinal``, then the close frame (raw)."""
    messages = []
    while True:
        msg = ws.receive_json()
        if msg.get("isFinal"):
            break
        messages.append(msg)
    close = ws.receive()
    return messages, close


def expect_close(ws: Any) -> tuple[dict[str, Any] | None, dict[str, Any]]:
    """(the error message if one came, the close frame)."""
    error = None
    while True:
        msg = ws.receive()
        if msg["type"] == "websocket.close":
            return error, msg
        if msg.get("text"):
            data = json.loads(msg["text"])
            if "error" in data:
                error = data["error"]


# ------------------------------------------------------------------------------------------ protocol
def test_text_in_pieces_gives_audio_alignment_and_word_timings(tc: TestClient, ws_key: str) -> None:
    pieces = ["Hello ", "there, ", "how are", " you to", "day? ", "I am ", "fine."]
    with tc.websocket_connect(url(output_format="pcm_24000"), headers={"xi-api-key": ws_key}) as ws:
        ws.send_json(INIT)
        for piece in pieces:
            ws.send_json({"text": piece})
        ws.send_json({"text": ""})
        messages, close = collect(ws)
    assert close["code"] == 1000
    pcm = b"".join(base64.b64decode(m["audio"]) for m in messages)
    assert 2.0 < len(pcm) / 2 / 24000 < 10.0
    assert all(m["isFinal"] is False for m in messages)

    words = [w for m in messages if "wordAlignment" in m for w in m["wordAlignment"]["words"]]
    assert words == ["Hello", "there,", "how", "are", "you", "today?", "I", "am", "fine."]
    starts = [t for m in messages if "wordAlignment" in m for t in m["wordAlignment"]["wordStartTimesMs"]]
    ends = [t for m in messages if "wordAlignment" in m for t in m["wordAlignment"]["wordEndTimesMs"]]
    assert starts == sorted(starts) and all(s < e for s, e in zip(starts, ends, strict=True))
    assert ends[-1] <= len(pcm) / 2 / 24000 * 1000 + 1

    chars = "".join(c for m in messages if "alignment" in m for c in m["alignment"]["chars"])
    assert chars.replace(" ", "") == "".join(pieces).replace(" ", "")
    for m in messages:
        if "normalizedAlignment" in m:
            al = m["normalizedAlignment"]
            assert len(al["chars"]) == len(al["charStartTimesMs"]) == len(al["charDurationsMs"])


def test_binary_frames_and_key_in_the_first_message(tc: TestClient, ws_key: str) -> None:
    with tc.websocket_connect(url("kumo", output_format="pcm_16000", binary_audio="true")) as ws:
        ws.send_json({**INIT, "xi_api_key": ws_key, "generation_config": {"chunk_length_schedule": [50, 90]}})
        ws.send_json({"text": "Binary audio frames, please.", "flush": True})
        ws.send_json({"text": ""})
        audio, meta = b"", []
        while True:
            msg = ws.receive()
            if msg.get("bytes"):
                audio += msg["bytes"]
                continue
            data = json.loads(msg["text"])
            if data.get("isFinal"):
                break
            meta.append(data)
    assert 0.5 < len(audio) / 2 / 16000 < 8.0
    assert meta and all("audio" not in m for m in meta)
    assert [w for m in meta for w in m["wordAlignment"]["words"]] == ["Binary", "audio", "frames,", "please."]


def test_key_in_query_string_and_mp3_output(tc: TestClient, ws_key: str) -> None:
    from voxvault.audio import decode

    with tc.websocket_connect(url(xi_api_key=ws_key, output_format="mp3_44100_64")) as ws:
        ws.send_json(INIT)
        ws.send_json({"text": "An mp3 stream over a socket. "})
        ws.send_json({"text": ""})
        messages, close = collect(ws)
    assert close["code"] == 1000
    data = b"".join(base64.b64decode(m["audio"]) for m in messages)
    audio = decode(data, max_bytes=10_000_000, max_seconds=60, target_sr=16000)
    assert audio.source_format == "mp3" and audio.duration > 1.0


# ------------------------------------------------------------------------------------------ refusals
@pytest.mark.parametrize(
    ("send", "code", "reason"),
    [
        ("{not json", 1007, "invalid_json"),
        ("[1, 2]", 1007, "invalid_message"),
        ('{"txt": "hi"}', 1007, "invalid_message"),
        ('{"text": "hi", "flush": "yes"}', 1007, "invalid_message"),
        (json.dumps({"text": "a" * 70_000}), 1009, "message_too_big"),
    ],
)
def test_malformed_and_oversized_messages_close_with_clear_codes(
    tc: TestClient, ws_key: str, send: str, code: int, reason: str
) -> None:
    with tc.websocket_connect(url(), headers={"xi-api-key": ws_key}) as ws:
        ws.send_json(INIT)
        ws.send_text(send)
        error, close = expect_close(ws)
    assert (close["code"], close["reason"]) == (code, reason)
    assert error is not None and error["code"] == reason and error["message"]


def test_binary_message_is_refused(tc: TestClient, ws_key: str) -> None:
    with tc.websocket_connect(url(), headers={"xi-api-key": ws_key}) as ws:
        ws.send_bytes(b"\x00\x01")
        _, close = expect_close(ws)
    assert (close["code"], close["reason"]) == (1003, "binary_not_supported")


@pytest.mark.parametrize(
    ("voice", "headers", "first", "reason"),
    [
        ("alpha", {}, INIT, "missing_api_key"),
        ("alpha", {"xi-api-key": "vv_not_a_real_key"}, INIT, "invalid_api_key"),
        ("nobody", None, INIT, "voice_not_found"),
        (
            "alpha",
            None,
            {**INIT, "generation_config": {"chunk_length_schedule": [1]}},
            "invalid_chunk_schedule",
        ),
        ("alpha", None, {**INIT, "voice_settings": {"speed": 10}}, "invalid_speed"),
    ],
)
def test_policy_refusals_close_1008(
    tc: TestClient, ws_key: str, voice: str, headers: dict | None, first: dict, reason: str
) -> None:
    with tc.websocket_connect(
        url(voice), headers={"xi-api-key": ws_key} if headers is None else headers
    ) as ws:
        ws.send_json(first)
        error, close = expect_close(ws)
    assert (close["code"], close["reason"]) == (1008, reason)
    assert error is not None and error["code"] == reason


def test_bad_output_format_is_refused(tc: TestClient, ws_key: str) -> None:
    with tc.websocket_connect(url(output_format="vorbis_44100"), headers={"xi-api-key": ws_key}) as ws:
        error, close = expect_close(ws)
    assert (close["code"], close["reason"]) == (1008, "unsupported_format")


def test_text_after_end_is_an_error(tc: TestClient, ws_key: str, ws_app) -> None:  # type: ignore[no-untyped-def]
    with tc.websocket_connect(url(output_format="pcm_24000"), headers={"xi-api-key": ws_key}) as ws:
        ws.send_json(INIT)
        ws.send_json(
            {"text": "One sentence to speak. Another one, a little longer, so that it takes a while. "}
        )
        ws.send_json({"text": ""})
        ws.send_json({"text": "More text after the end."})
        error, close = expect_close(ws)
    assert (close["code"], close["reason"]) == (1008, "text_after_end")
    assert error is not None and "after the end" in error["message"]
    assert ws_app.state.admission.admitted == 0


def test_idle_connection_is_closed(tc: TestClient, ws_key: str) -> None:
    with tc.websocket_connect(url(inactivity_timeout="1"), headers={"xi-api-key": ws_key}) as ws:
        ws.send_json(INIT)
        error, close = expect_close(ws)
    assert (close["code"], close["reason"]) == (1008, "input_timeout")


def test_busy_server_closes_1013(vv, ws_key: str) -> None:  # type: ignore[no-untyped-def]
    from voxvault.api.app import create_app

    app = create_app(vv=vv, warm_up=False)
    app.state.admission = Admission(0, 0)
    with TestClient(app) as c, c.websocket_connect(url(), headers={"xi-api-key": ws_key}) as ws:
        ws.send_json(INIT)
        error, close = expect_close(ws)
    assert (close["code"], close["reason"]) == (1013, "server_busy")
    assert error is not None and error["code"] == "server_busy"


# ------------------------------------------------------------------------------------------ going away
LONG = " ".join(
    f"This is sentence {n}, spoken slowly and at some length, to keep the model busy." for n in range(30)
)


@pytest.fixture(scope="module")
def live(vv):  # type: ignore[no-untyped-def]
    from voxvault.api.app import create_app

    server = LiveServer(create_app(vv=vv, warm_up=False), send_buffer=32_768)
    yield server
    server.stop()


def settle(live, vv) -> None:  # type: ignore[no-untyped-def]
    assert wait_until(lambda: live.app.state.admission.admitted == 0, 120)
    assert wait_until(lambda: vv.pipeline.scheduler.running == 0 and vv.pipeline.scheduler.waiting == 0)
    assert live.app.state.metrics.registry.get_sample_value("voxvault_active_syntheses") == 0


def test_client_disconnect_mid_stream_frees_everything(live, vv, ws_key: str) -> None:  # type: ignore[no-untyped-def]

    tasks_before, threads_before, seq = live.tasks(), other_threads(), vv.audit.head()[0]
    uri = f"ws://127.0.0.1:{live.port}{url(output_format='pcm_24000')}"
    with connect(uri, additional_headers={"xi-api-key": ws_key}) as ws:
        ws.send(json.dumps(INIT))
        ws.send(json.dumps({"text": LONG, "flush": True}))
        first = json.loads(ws.recv(timeout=120))
        assert first["audio"]
        granted = vv.pipeline.scheduler.granted
        ws.socket.shutdown(socket.SHUT_RDWR)  # gone, without a closing handshake
    settle(live, vv)
    assert vv.pipeline.scheduler.granted - granted <= 2
    assert wait_until(lambda: "speech.cancelled" in audit_actions_since(vv, seq), 10)
    assert wait_until(lambda: live.tasks() <= tasks_before, 10), (live.tasks(), tasks_before)
    assert other_threads() <= threads_before


def test_client_that_never_reads_is_dropped(live, vv, ws_key: str) -> None:  # type: ignore[no-untyped-def]

    tasks_before, seq = live.tasks(), vv.audit.head()[0]
    live.app.state.send_timeout_s = 1.0
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # before connecting: a small window
    sock.connect(("127.0.0.1", live.port))
    try:
        uri = f"ws://127.0.0.1:{live.port}{url(output_format='pcm_8000')}"  # little data per piece
        # close_timeout: the server's closing frame sits behind the audio this client never read, so the
        # client's own closing handshake would wait out its default 10 s for it.
        with connect(
            uri, sock=sock, additional_headers={"xi-api-key": ws_key}, max_queue=1, close_timeout=1
        ) as ws:
            ws.send(json.dumps(INIT))
            ws.send(json.dumps({"text": LONG, "flush": True}))
            assert wait_until(lambda: live.app.state.admission.admitted == 1, 30)
            # read nothing: the client's queue (1 frame) and the socket buffers fill, the server times out
            settle(live, vv)
        assert wait_until(lambda: "speech.cancelled" in audit_actions_since(vv, seq), 10)
    finally:
        live.app.state.send_timeout_s = vv.settings.stream_send_timeout_s
        sock.close()
    assert wait_until(lambda: live.tasks() <= tasks_before, 10)


def test_many_sessions_at_once(live, vv, ws_key: str) -> None:  # type: ignore[no-untyped-def]
    """Four clients writing at the same time all get their whole audio (admission by load is not tested
    here: on a busy machine the expected-first-audio rule may rightly refuse some)."""
    live.app.state.admission.max_first_audio_s = None

    results: dict[int, float] = {}

    def client(n: int) -> None:
        uri = f"ws://127.0.0.1:{live.port}{url(output_format='pcm_16000')}"
        with connect(uri, additional_headers={"xi-api-key": ws_key}) as ws:
            ws.send(json.dumps(INIT))
            for word in f"Client number {n} says hello. ".split(" "):
                ws.send(json.dumps({"text": word + " "}))
                time.sleep(0.01)
            ws.send(json.dumps({"text": ""}))
            pcm = b""
            for raw in ws:
                msg = json.loads(raw)
                if msg.get("isFinal"):
                    break
                assert "audio" in msg, msg
                pcm += base64.b64decode(msg["audio"])
        results[n] = len(pcm) / 2 / 16000

    threads = [threading.Thread(target=client, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(180)
    live.app.state.admission.max_first_audio_s = vv.settings.max_first_audio_s
    assert sorted(results) == [0, 1, 2, 3]
    assert all(1.0 < seconds < 8.0 for seconds in results.values())
    settle(live, vv)
