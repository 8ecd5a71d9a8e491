"""/v1/audio/speech as a user of OpenAI's API would meet it."""

from __future__ import annotations

import jiwer
import pytest

from voxvault.audio import decode

pytestmark = pytest.mark.slow

ACCEPTANCE_TEXT = "Hello world, it is 10:30 on 3 March."


def _decode(data: bytes):  # type: ignore[no-untyped-def]
    return decode(data, max_bytes=50_000_000, max_seconds=600, target_sr=16000)


def _speak(client, text: str, **kw):  # type: ignore[no-untyped-def]
    body = {"model": "tts-1", "input": text, "voice": "alloy", "response_format": "mp3", **kw}
    return client.post("/v1/audio/speech", json=body)


def test_acceptance_sentence_is_playable_mp3_with_matching_transcript(real_client, real_vv) -> None:
    """The speech route's one end-to-end path on Kokoro, heard by Whisper (the rest runs on fakes)."""
    client, vv = real_client, real_vv
    r = _speak(client, ACCEPTANCE_TEXT, voice="kumo")  # the preset the word checks below were measured on
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "audio/mpeg"
    audio = _decode(r.content)
    assert audio.source_format in {"mp3"}
    assert 2.0 < audio.duration < 8.0
    expected = " ".join(p.text for p in vv.frontend.plan(ACCEPTANCE_TEXT)).lower()
    assert "ten thirty" in expected and "march third" in expected  # what the normaliser made of it
    # Heard by Whisper (tiny.en, shared with the transcription tests): PocketSphinx, a small 2015-era model,
    # heard this sentence differently from run to run on the borderline words ("march" as "more to the").
    # Whisper writes numbers as digits, so the check is on the words and on the time in either form.
    heard = vv.engines.transcriber("tiny.en").transcribe(audio.samples, audio.sample_rate)
    words = jiwer.RemovePunctuation()(heard.lower()).split()
    for word in ("hello", "world", "march"):
        assert word in words, (word, heard)
    assert "1030" in words or ("ten" in words and "thirty" in words), heard


@pytest.mark.parametrize(
    ("fmt", "content_type"),
    [("mp3", "audio/mpeg"), ("opus", None), ("aac", "audio/aac"), ("flac", "audio/flac"), ("wav", None)],
)
def test_every_format_decodes(client, fmt: str, content_type: str | None) -> None:
    r = _speak(client, "Testing one two three.", response_format=fmt)
    assert r.status_code == 200, r.text
    if content_type:
        assert r.headers["content-type"] == content_type
    audio = _decode(r.content)
    assert audio.duration > 0.5


def test_pcm_is_raw_16bit_at_requested_rate(client) -> None:
    r = _speak(client, "Testing one two three.", response_format="pcm", sample_rate=16000)
    assert r.status_code == 200
    assert len(r.content) % 2 == 0
    seconds = len(r.content) / 2 / 16000
    assert 0.5 < seconds < 5


def test_long_text_is_spoken_completely(client) -> None:
    sentence = "The quick brown fox jumps over the lazy dog near the river bank. "
    durations = []
    for n in (1, 2, 6):
        r = _speak(client, sentence * n, response_format="pcm")
        assert r.status_code == 200
        durations.append(len(r.content) / 2 / 24000)
    assert durations[0] < durations[1] < durations[2]
    # six sentences take about six times one sentence: nothing was dropped
    assert durations[2] > 4.5 * durations[0]


def test_unknown_fields_ignored_and_voice_object_accepted(client) -> None:
    r = client.post(
        "/v1/audio/speech",
        json={
            "model": "gpt-4o-mini-tts",
            "input": "Hi there.",
            "voice": {"id": "kumo"},
            "instructions": "x",
            "response_format": "wav",
            "extra_thing": 1,
        },
    )
    assert r.status_code == 200, r.text


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"input": ""}, 400, "empty_text"),
        ({"input": "   \n "}, 400, "empty_text"),
        ({"input": "a" * 100_000}, 413, "input_too_long"),
        ({"input": "😀🎉🔥"}, 400, "no_speakable_text"),
        ({"input": "<speak>Hello <break time='1s'></speak>"}, 400, "invalid_ssml"),
        ({"input": "Hi", "voice": "nobody"}, 404, "voice_not_found"),
        ({"input": "Hi", "response_format": "m4b"}, 422, "unsupported_format"),
        ({"input": "Hi", "speed": 9}, 422, "invalid_speed"),
        ({"input": "Hi", "speed": 0.1}, 422, "invalid_speed"),
        ({"voice": "alpha"}, 422, "missing_field"),
        ({"input": "Hi", "sample_rate": 12345}, 400, "invalid_sample_rate"),
    ],
)
def test_bad_input_gets_a_clear_4xx(client, body: dict, status: int, code: str) -> None:
    body = {"model": "tts-1", "voice": "alpha", **body}
    r = client.post("/v1/audio/speech", json=body)
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert err["code"] == code
    assert err["message"]
    assert "Traceback" not in r.text


def test_non_json_body_is_400(client) -> None:
    r = client.post("/v1/audio/speech", content=b"{not json", headers={"content-type": "application/json"})
    assert r.status_code == 400
    assert r.json()["error"]["code"] == "invalid_json"


def test_unknown_route_is_json_404(client) -> None:
    r = client.get("/v1/nothing-here")
    assert r.status_code == 404
    assert r.json()["error"]["code"] == "not_found"


def test_sse_stream_format(client) -> None:
    import base64
    import json

    r = _speak(client, "Short test.", response_format="pcm", stream_format="sse")
    assert r.status_code == 200
    events = [json.loads(line[5:]) for line in r.text.splitlines() if line.startswith("data:")]
    assert events[-1]["type"] == "speech.audio.done"
    pcm = b"".join(base64.b64decode(e["audio"]) for e in events if e["type"] == "speech.audio.delta")
    assert len(pcm) / 2 / 24000 > 0.3
