"""ElevenLabs-style HTTP speech: whole file, chunked stream, backpressure, and clients that go away."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from live_uvicorn import LiveServer, audit_actions_since, other_threads, wait_until

from voxvault.audio import decode
from voxvault.synthesis.admission import Admission

pytestmark = pytest.mark.slow

LONG_TEXT = " ".join(
    f"Sentence number {n} of a long story keeps the synthesiser busy for quite a while." for n in range(1, 31)
)


def streamed_plan(vv: Any, text: str) -> Any:
    """The pieces a stream of ``text`` is spoken in (streams start with a short first piece)."""
    from voxvault.synthesis.pipeline import FIRST_PIECE_PHONEMES

    return vv.pipeline.prepare(
        text, vv.catalog.resolve("alpha"), fmt="pcm", first_piece_phonemes=FIRST_PIECE_PHONEMES
    )


def _decode(data: bytes):  # type: ignore[no-untyped-def]
    return decode(data, max_bytes=50_000_000, max_seconds=600, target_sr=16000)


@pytest.fixture(scope="module")
def speech_key(vv) -> str:  # type: ignore[no-untyped-def]
    """A key of its own, so these requests do not share the admin key's rate-limit budget."""
    org_id, project_id = vv.keys.ensure_default_project()
    return str(
        vv.keys.create(org_id=org_id, project_id=project_id, scopes=["speech:create"], name="el").secret
    )


@pytest.fixture(scope="module")
def live(vv) -> Iterator[LiveServer]:  # type: ignore[no-untyped-def]
    from voxvault.api.app import create_app

    server = LiveServer(create_app(vv=vv, warm_up=False))
    yield server
    server.stop()


# ------------------------------------------------------------------------------------------ behaviour
def test_whole_file_with_xi_api_key_is_playable_mp3(anon_client, speech_key: str) -> None:
    r = anon_client.post(
        "/v1/text-to-speech/alpha",
        json={"text": "Hello from the whole file route.", "model_id": "eleven_flash_v2_5"},
        headers={"xi-api-key": speech_key},
    )
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "audio/mpeg"
    assert r.headers["x-generation-id"]
    audio = _decode(r.content)
    assert audio.source_format == "mp3"
    assert 1.0 < audio.duration < 8.0


def test_stream_sends_first_phrase_as_its_own_chunk(anon_client, speech_key: str) -> None:
    text = "The first phrase leaves early. Then the rest of the text follows, sentence after sentence."
    with anon_client.stream(
        "POST",
        "/v1/text-to-speech/kumo/stream?output_format=pcm_16000",
        json={"text": text, "voice_settings": {"speed": 1.1, "stability": 0.5}},
        headers={"xi-api-key": speech_key},
    ) as r:
        assert r.status_code == 200
        chunks = [c for c in r.iter_bytes() if c]
    assert len(chunks) >= 2  # audio arrived in pieces, not as one body at the end
    pcm = b"".join(chunks)
    assert len(pcm) % 2 == 0
    assert 2.0 < len(pcm) / 2 / 16000 < 12.0


@pytest.mark.parametrize(("output_format", "source"), [("opus_48000_64", "ogg"), ("mp3_22050_32", "mp3")])
def test_compressed_stream_formats_decode(
    anon_client, speech_key: str, output_format: str, source: str
) -> None:
    r = anon_client.post(
        f"/v1/text-to-speech/nezumi/stream?output_format={output_format}",
        json={"text": "Compressed and streamed."},
        headers={"xi-api-key": speech_key},
    )
    assert r.status_code == 200, r.text
    audio = _decode(r.content)
    assert audio.duration > 0.5
    assert source in audio.source_format


@pytest.mark.parametrize(
    ("path", "body", "headers", "status", "code"),
    [
        (
            "/v1/text-to-speech/alpha/stream?output_format=vorbis_44100",
            {"text": "Hi"},
            True,
            400,
            "unsupported_format",
        ),
        (
            "/v1/text-to-speech/alpha/stream?output_format=pcm_12345",
            {"text": "Hi"},
            True,
            400,
            "invalid_sample_rate",
        ),
        ("/v1/text-to-speech/nobody/stream", {"text": "Hi"}, True, 404, "voice_not_found"),
        ("/v1/text-to-speech/alpha/stream", {"text": ""}, True, 400, "empty_text"),
        (
            "/v1/text-to-speech/alpha/stream",
            {"text": "Hi", "voice_settings": {"speed": 9}},
            True,
            422,
            "invalid_speed",
        ),
        ("/v1/text-to-speech/alpha/stream", {"nothing": 1}, True, 422, "missing_field"),
        ("/v1/text-to-speech/alpha/stream", {"text": "Hi"}, False, 401, "missing_api_key"),
        ("/v1/text-to-speech/alpha", {"text": "Hi"}, False, 401, "missing_api_key"),
    ],
)
def test_bad_requests_get_clear_errors(
    anon_client, speech_key: str, path: str, body: dict, headers: bool, status: int, code: str
) -> None:
    r = anon_client.post(path, json=body, headers={"xi-api-key": speech_key} if headers else {})
    assert r.status_code == status, r.text
    assert r.json()["error"]["code"] == code


def test_full_queue_answers_429_with_retry_after(vv, speech_key: str) -> None:  # type: ignore[no-untyped-def]
    from fastapi.testclient import TestClient

    from voxvault.api.app import create_app

    app = create_app(vv=vv, warm_up=False)
    app.state.admission = Admission(1, 0, retry_after_s=3)
    app.state.admission.reserve()  # someone else holds the only place
    with TestClient(app, headers={"xi-api-key": speech_key}) as c:
        r = c.post("/v1/text-to-speech/alpha/stream", json={"text": "Busy?"})
        assert r.status_code == 429
        assert r.headers["retry-after"] == "3"
        assert r.json()["error"]["code"] == "server_busy"
        app.state.admission.release()
        assert c.post("/v1/text-to-speech/alpha/stream", json={"text": "Free now."}).status_code == 200
    assert app.state.admission.admitted == 0


def test_disconnect_mid_stream_stops_synthesis_and_leaks_nothing(
    live: LiveServer, vv, speech_key: str, paced_tts: None
) -> None:  # type: ignore[no-untyped-def]
    app, scheduler = live.app, vv.pipeline.scheduler
    pieces_total = len(streamed_plan(vv, LONG_TEXT).pieces)
    tasks_before, threads_before = live.tasks(), other_threads()
    seq = vv.audit.head()[0]
    with (
        httpx.Client(timeout=60) as client,
        client.stream(
            "POST",
            f"{live.url}/v1/text-to-speech/alpha/stream?output_format=pcm_24000",
            json={"text": LONG_TEXT},
            headers={"xi-api-key": speech_key},
        ) as r,
    ):
        assert r.status_code == 200
        assert next(r.iter_raw())
        assert app.state.admission.admitted == 1
        granted_at_disconnect = scheduler.granted
    # leaving the block closed the connection with most of the body unread
    assert wait_until(lambda: app.state.admission.admitted == 0)
    assert wait_until(lambda: scheduler.running == 0 and scheduler.waiting == 0)
    assert app.state.metrics.registry.get_sample_value("voxvault_active_syntheses") == 0
    # the piece being rendered when the client left may finish (and one requested just before); no more
    assert scheduler.granted - granted_at_disconnect <= 2 < pieces_total
    assert wait_until(lambda: "speech.cancelled" in audit_actions_since(vv, seq), 10)
    assert wait_until(lambda: live.tasks() <= tasks_before, 10), (live.tasks(), tasks_before)
    assert other_threads() <= threads_before


def test_client_that_never_reads_is_dropped_after_the_send_timeout(vv, speech_key: str) -> None:  # type: ignore[no-untyped-def]
    """Memory is bounded by the socket buffers (here fixed small; Linux grows them up to 4 MB by default)."""
    from voxvault.api.app import create_app

    live = LiveServer(create_app(vv=vv, warm_up=False), send_buffer=32_768)
    app, scheduler = live.app, vv.pipeline.scheduler
    pieces_total = len(streamed_plan(vv, LONG_TEXT).pieces)
    tasks_before = live.tasks()
    seq = vv.audit.head()[0]
    granted_before = scheduler.granted
    body = json.dumps({"text": LONG_TEXT}).encode()
    request = (
        f"POST /v1/text-to-speech/alpha/stream?output_format=pcm_8000 HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"xi-api-key: {speech_key}\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    app.state.send_timeout_s = 1.0
    sock = socket.socket()
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # a small window fills quickly
        sock.connect(("127.0.0.1", live.port))
        sock.sendall(request)
        assert wait_until(lambda: app.state.admission.admitted == 1, 30)
        # never read: the server must give up on its own and free the place
        assert wait_until(lambda: app.state.admission.admitted == 0, 120)
        assert wait_until(lambda: scheduler.running == 0 and scheduler.waiting == 0)
        assert wait_until(lambda: "speech.cancelled" in audit_actions_since(vv, seq), 10)
        # pulled, not pushed: rendering stopped when the socket was full, long before the text's end
        assert scheduler.granted - granted_before < pieces_total
    finally:
        sock.close()
    assert wait_until(lambda: live.tasks() <= tasks_before, 10)
    live.stop()
