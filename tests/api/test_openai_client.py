"""The official ``openai`` package, pointed at a running voxvault, works unchanged."""

from __future__ import annotations

import pytest

from voxvault.audio import decode

pytestmark = pytest.mark.slow


def test_speech_create(openai_client) -> None:
    response = openai_client.audio.speech.create(
        model="tts-1", voice="alloy", input="Hello from the OpenAI client.", response_format="mp3"
    )
    audio = decode(response.content, max_bytes=10_000_000, max_seconds=60)
    assert audio.duration > 1.0


def test_speech_streaming_response(openai_client, tmp_path) -> None:
    out = tmp_path / "stream.wav"
    chunks = 0
    with (
        openai_client.audio.speech.with_streaming_response.create(
            model="tts-1",
            voice="nova",
            input="Streaming works. This is the second sentence.",
            response_format="wav",
        ) as response,
        out.open("wb") as f,
    ):
        for chunk in response.iter_bytes(4096):
            f.write(chunk)
            chunks += 1
    assert chunks >= 1
    audio = decode(out, max_bytes=10_000_000, max_seconds=60)
    assert audio.duration > 1.5


def test_openai_error_surface(openai_client) -> None:
    import openai

    with pytest.raises(openai.NotFoundError) as info:
        openai_client.audio.speech.create(model="tts-1", voice="no-such-voice", input="Hi")
    assert "no-such-voice" in str(info.value)


@pytest.mark.parametrize("speed", [0.25, 0.5, 2.0, 4.0])
def test_whole_speed_range_speaks(openai_client, speed: float) -> None:
    """OpenAI documents 0.25-4.0; beyond the model's own 0.5-2.0 the audio is time-stretched."""
    text = "The quick brown fox jumps over the lazy dog."
    normal = openai_client.audio.speech.create(
        model="tts-1", voice="alloy", input=text, response_format="wav"
    )
    r = openai_client.audio.speech.create(
        model="tts-1", voice="alloy", input=text, response_format="wav", speed=speed
    )
    base = decode(normal.content, max_bytes=20_000_000, max_seconds=120).duration
    got = decode(r.content, max_bytes=20_000_000, max_seconds=120).duration
    # Speech takes about 1/speed as long (the pieces' lead-in and tail scale too).
    assert 0.7 < got * speed / base < 1.4, (speed, base, got)


@pytest.mark.parametrize("speed", [0.2, 4.5, 0])
def test_speed_outside_range_is_refused_before_any_audio(openai_client, speed: float) -> None:
    import openai

    with pytest.raises(openai.UnprocessableEntityError) as info:
        openai_client.audio.speech.create(model="tts-1", voice="alloy", input="Hi there.", speed=speed)
    assert info.value.body["code"] == "invalid_speed"  # type: ignore[index]
