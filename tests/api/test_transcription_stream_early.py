"""``WS /v1/speech-to-text/stream``: the first partial comes while the first words are spoken, from a glimpse
(a short encoder pass), not after a second of audio; finals still come from the whole model. On the fake
transcriber (its glimpse hears the same bursts as its windows); real Whisper's glimpse is judged in
tests/engines/test_whisper.py and its latency measured by bench/asr_stream.py."""

from __future__ import annotations

import json
import queue
import threading
from typing import Any

import numpy as np
from tests.api.test_transcription_stream import URL, pcm
from tests.conftest import needs_testdata

pytestmark = [needs_testdata]


def test_the_first_partial_comes_after_a_few_tenths_of_a_second_of_speech(client) -> None:  # type: ignore[no-untyped-def]
    james, rate = pcm("james")
    samples = np.frombuffer(james, "<i2")
    onset = int(np.argmax(np.abs(samples) > 1000))  # where speech starts
    frame = rate // 10
    early = int(rate * 0.4)  # 0.4 s of speech, then the client waits for an answer before sending more
    inbox: queue.Queue[dict[str, Any]] = queue.Queue()
    with client.websocket_connect(f"{URL}&sample_rate={rate}") as ws:
        assert json.loads(ws.receive_text())["type"] == "ready"

        def listen() -> None:
            while True:
                message = ws.receive()
                if message["type"] == "websocket.close":
                    return
                inbox.put(json.loads(message["text"]))

        threading.Thread(target=listen, daemon=True).start()
        for i in range(0, onset + early, frame):
            ws.send_bytes(samples[i : min(i + frame, onset + early)].tobytes())
        first = inbox.get(timeout=60)
        for i in range(onset + early, samples.size, frame):
            ws.send_bytes(samples[i : i + frame].tobytes())
        ws.send_text(json.dumps({"type": "end"}))
        rest = [inbox.get(timeout=60)]
        while rest[-1]["type"] != "done":
            rest.append(inbox.get(timeout=60))
    # a partial on the first 0.4 s of speech: its audio ends where the client stopped
    assert first["type"] == "partial" and first["text"]
    assert first["end"] <= (onset + early) / rate + 0.01
    # the whole model still makes the transcript: finals, then done with their text
    finals = [m for m in rest if m["type"] == "final"]
    assert finals and rest[-1]["text"] == " ".join(f["text"] for f in finals)
    assert len(rest[-1]["text"].split()) > len(first["text"].split())
