"""``WS /v1/speech-to-text/stream`` with Opus in: raw packets (one per frame) and an Ogg/Opus stream cut
anywhere, both made by PyAV's libopus encoder from the shared test speech. On the fake transcriber (what
it hears follows the sound: a burst per word); Whisper on the socket is judged in
tests/api/test_transcription_stream.py."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest
from starlette.websockets import WebSocketDisconnect
from tests.audio.test_stream_decode import ogg_opus, opus_packets, speech
from tests.conftest import needs_testdata

from voxvault.engines.fake import FakeTranscriber

pytestmark = [needs_testdata]

URL = "/v1/speech-to-text/stream?model=tiny.en"


def converse(ws: Any, frames: list[bytes]) -> list[dict[str, Any]]:
    ready = json.loads(ws.receive_text())
    assert ready["type"] == "ready"
    for frame in frames:
        ws.send_bytes(frame)
    ws.send_text(json.dumps({"type": "end"}))
    messages = []
    while True:
        message = ws.receive()
        if message["type"] == "websocket.close":
            assert message["code"] == 1000
            return [ready, *messages]
        messages.append(json.loads(message["text"]))


def _check(messages: list[dict[str, Any]], seconds: float, lead_s: float = 0.0) -> None:
    """The decoded speech is the speech sent: as long, and heard as the same bursts of sound at the same
    times as the PCM it was encoded from (within a word and 50 ms: Opus is lossy)."""
    done = messages[-1]
    assert done["type"] == "done"
    assert done["duration"] == pytest.approx(seconds, abs=0.1)
    words = [w for m in messages if m["type"] == "final" for w in m["words"]]
    source = [w for seg in FakeTranscriber("tiny.en").recognize(speech(), 48_000) for w in seg.words]
    assert abs(len(words) - len(source)) <= 1, (len(words), len(source))
    assert words[0]["start"] == pytest.approx(lead_s + source[0].start, abs=0.05)
    assert words[-1]["end"] == pytest.approx(lead_s + source[-1].end, abs=0.05)


def test_raw_opus_packets(client: Any) -> None:
    james = speech()
    with client.websocket_connect(f"{URL}&encoding=opus") as ws:
        messages = converse(ws, opus_packets(james))
    assert messages[0]["encoding"] == "opus"
    _check(messages, len(james) / 48_000)


def test_an_ogg_opus_stream_in_pieces_that_cut_pages(client: Any) -> None:
    james = speech()
    data = ogg_opus(np.concatenate([np.zeros(24_000, np.float32), james]))
    pieces = [data[i : i + 1500] for i in range(0, len(data), 1500)]
    with client.websocket_connect(f"{URL}&encoding=ogg_opus") as ws:
        messages = converse(ws, pieces)
    _check(messages, 0.5 + len(james) / 48_000, lead_s=0.5)


def test_bytes_that_are_not_opus_close_1007(client: Any) -> None:
    for encoding, frame in (("opus", b"\xff\xfe\xfd not opus"), ("ogg_opus", b"RIFF" + b"\0" * 60)):
        try:
            with client.websocket_connect(f"{URL}&encoding={encoding}") as ws:
                assert json.loads(ws.receive_text())["type"] == "ready"
                ws.send_bytes(frame)
                error = json.loads(ws.receive_text())["error"]
                closing = ws.receive()
        except WebSocketDisconnect as exc:  # pragma: no cover - closed before the error was read
            raise AssertionError(f"closed without an error message: {exc.code}") from None
        assert (closing["code"], error["code"]) == (1007, "invalid_audio"), encoding
