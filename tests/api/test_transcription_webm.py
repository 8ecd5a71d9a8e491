"""WebM/Opus, what Chromium's ``MediaRecorder`` makes (``audio/webm;codecs=opus``), on every speech-to-text
route: the HTTP uploads (OpenAI, ElevenLabs) and the socket (``encoding=webm_opus``, a stream cut anywhere,
clusters of unknown size as a recorder writes them). The WebM is made by PyAV's libopus encoder and
Matroska muxer from the shared test speech. On the fake transcriber and diarizer (what they hear follows
the sound); also: a diarized upload is decoded once."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest
from starlette.websockets import WebSocketDisconnect
from tests.api.test_transcription_stream_opus import _check, converse
from tests.audio.test_stream_decode import opus_file, similar, speech
from tests.conftest import needs_testdata

from voxvault.audio import io as audio_io
from voxvault.audio.stream_decode import WebmOpusDecoder, stream_decoder
from voxvault.engines.fake import FakeTranscriber
from voxvault.errors import VoxError

pytestmark = [needs_testdata]

URL = "/v1/speech-to-text/stream?model=tiny.en"
CLUSTER = bytes.fromhex("1f43b675")


def webm_opus(samples: np.ndarray, recorder: bool = True) -> bytes:
    """A WebM/Opus file; ``recorder``: written as MediaRecorder streams it (the segment and every cluster
    of unknown size, since a recorder cannot go back to fill sizes in)."""
    data = bytearray(opus_file(samples, "webm", {"live": "1"} if recorder else None))
    if recorder:
        at = data.find(CLUSTER)
        while at >= 0:
            length = 9 - data[at + 4].bit_length()  # the size's vint: all ones means unknown
            data[at + 4 : at + 4 + length] = bytes([0xFF >> length | (0x80 >> (length - 1))]) + b"\xff" * (
                length - 1
            )
            at = data.find(CLUSTER, at + 4)
    return bytes(data)


@pytest.mark.parametrize("piece", [1, 333, 100_000])
@pytest.mark.parametrize("recorder", [True, False])
def test_a_webm_stream_cut_anywhere_decodes_whole(piece: int, recorder: bool) -> None:
    original = speech()
    data = webm_opus(original, recorder)
    if recorder:
        assert data[data.find(CLUSTER) + 4] in (0x01, 0x40 | 0x3F, 0x20 | 0x1F, 0x10 | 0x0F, 0xFF)
    decoder = stream_decoder("webm_opus", 16_000)
    out = np.concatenate([decoder.decode(data[i : i + piece]) for i in range(0, len(data), piece)])
    assert decoder.rate == 48_000 and out.dtype == np.float32
    assert abs(len(out) - len(original)) < 48_000 * 0.03  # pre-skip dropped, nothing lost
    assert similar(out, original) > 0.95


def test_what_is_not_webm_opus_is_refused() -> None:
    with pytest.raises(VoxError, match="no Opus track"):
        WebmOpusDecoder().decode(webm_opus(speech()[:4800]).replace(b"A_OPUS", b"A_VORB"))
    with pytest.raises(VoxError) as err:
        WebmOpusDecoder().decode(b"\0" * 64)
    assert err.value.code == "invalid_audio"


def test_the_socket_takes_webm_opus_in_pieces(client: Any) -> None:
    james = speech()
    data = webm_opus(np.concatenate([np.zeros(24_000, np.float32), james]))
    pieces = [data[i : i + 1000] for i in range(0, len(data), 1000)]
    with client.websocket_connect(f"{URL}&encoding=webm_opus") as ws:
        messages = converse(ws, pieces)
    assert messages[0]["encoding"] == "webm_opus"
    _check(messages, 0.5 + len(james) / 48_000, lead_s=0.5)


def test_the_socket_refuses_what_is_not_webm(client: Any) -> None:
    try:
        with client.websocket_connect(f"{URL}&encoding=webm_opus") as ws:
            assert json.loads(ws.receive_text())["type"] == "ready"
            ws.send_bytes(b"\0" * 64)
            error = json.loads(ws.receive_text())["error"]
            closing = ws.receive()
    except WebSocketDisconnect as exc:  # pragma: no cover - closed before the error was read
        raise AssertionError(f"closed without an error message: {exc.code}") from None
    assert (closing["code"], error["code"]) == (1007, "invalid_audio")


def test_http_routes_take_a_webm_upload(client: Any) -> None:
    james = speech()
    heard = " ".join(s.text.strip() for s in FakeTranscriber("tiny.en").recognize(james, 48_000))
    upload = ("speech.webm", webm_opus(james, recorder=False), "audio/webm")
    r = client.post("/v1/audio/transcriptions", data={"model": "whisper-1"}, files={"file": upload})
    assert r.status_code == 200, r.text
    assert len(r.json()["text"].split()) == pytest.approx(len(heard.split()), abs=1)
    recorded = ("speech.webm", webm_opus(james), "audio/webm;codecs=opus")
    r = client.post("/v1/speech-to-text", data={"model_id": "scribe_v1"}, files={"file": recorded})
    assert r.status_code == 200, r.text
    assert r.json()["audio_duration_secs"] == pytest.approx(len(james) / 48_000, abs=0.05)


def test_a_diarized_upload_is_decoded_once(client: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    opened: list[object] = []
    real_iter_decode = audio_io.iter_decode

    def counting(source: Any, **kwargs: Any) -> Any:
        opened.append(source)
        return real_iter_decode(source, **kwargs)

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the upload was decoded a second time")

    monkeypatch.setattr(audio_io, "iter_decode", counting)
    monkeypatch.setattr(audio_io, "decode", refuse)
    two = np.concatenate([speech(name="en_james"), np.zeros(24_000, np.float32), speech(name="en_ashley")])
    upload = ("two.webm", webm_opus(two), "audio/webm")
    r = client.post(
        "/v1/speech-to-text",
        data={"model_id": "scribe_v1", "diarize": "true", "num_speakers": "2"},
        files={"file": upload},
    )
    assert r.status_code == 200, r.text
    assert len(opened) == 1
    words = [w for w in r.json()["words"] if w["type"] == "word"]
    assert words and all(w["speaker_id"] for w in words)
    assert {w["speaker_id"] for w in words} == {"speaker_0", "speaker_1"}
