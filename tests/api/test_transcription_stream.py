"""``WS /v1/speech-to-text/stream``, the acceptance path on real Whisper tiny.en: PCM in as it is spoken,
partial then final segments out, the right words. Its bounds and refusals:
tests/api/test_transcription_stream_limits.py (fake transcriber)."""

from __future__ import annotations

import json
import wave
from typing import Any

import pytest
from tests.conftest import SPEAKERS, needs_testdata

from voxvault.engines.asr import word_error_rate

pytestmark = [pytest.mark.slow, needs_testdata]

JAMES = "We have also started contemplating the possibility of moving back to Colorado."
ANDREW = "The name, which is Cajun French in origin and means mosquito, is pronounced Maringouin."
URL = "/v1/speech-to-text/stream?model=tiny.en"


def pcm(name: str) -> tuple[bytes, int]:
    with wave.open(str(SPEAKERS / f"en_{name}.wav")) as w:
        return w.readframes(w.getnframes()), w.getframerate()


def converse(
    ws: Any, audio: bytes, rate: int, chunk_s: float = 0.25, ready: bool = True
) -> list[dict[str, Any]]:
    """Send ``audio`` in chunks, then end; every message until the server closes (after its "ready"
    unless ``ready`` is False: it was read already)."""
    if ready:
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
    head = rate * 2  # the first second: the client waits for a partial before it sends the rest
    with client.websocket_connect(f"{URL}&sample_rate={rate}") as ws:
        assert json.loads(ws.receive_text())["type"] == "ready"
        for i in range(0, head, rate // 2):
            ws.send_bytes(james[i : i + rate // 2])
        first = json.loads(ws.receive_text())
        messages = [first, *converse(ws, james[head:] + gap + andrew, rate, ready=False)]
    # heard while it was spoken: the first second of "We have also started ..." gave a partial
    assert first["type"] == "partial" and first["text"].lower().startswith("we")
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
