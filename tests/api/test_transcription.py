"""Speech to text over HTTP, the feature's acceptance path on real Whisper: the official ``openai`` and
``elevenlabs`` SDKs unchanged hear the right words, timings, language, translation and speakers. Formats,
refusals, limits, scopes and audit: tests/api/test_transcription_errors.py (fake transcriber).

Uses tiny.en (``gpt-4o-mini-transcribe``) where the model does not matter, base only for translation and
``whisper-1``; both load once per test session (the registry of the session's VoxVault).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.api.conftest import TINY, three_turns, wav_bytes
from tests.conftest import needs_testdata

from voxvault.audio.io import encode
from voxvault.engines.asr import word_error_rate

pytestmark = [pytest.mark.slow, needs_testdata]

JAMES = "We have also started contemplating the possibility of moving back to Colorado."


@pytest.fixture(scope="module")
def james_mp3(james: Path) -> bytes:
    from voxvault.audio.io import decode

    audio = decode(james, max_bytes=10_000_000, max_seconds=60)
    return encode(audio.samples, audio.sample_rate, "mp3")


# ------------------------------------------------------------------------------------------- OpenAI SDK
def test_openai_json(openai_client, james: Path) -> None:
    with james.open("rb") as f:
        result = openai_client.audio.transcriptions.create(model=TINY, file=f)
    assert word_error_rate(JAMES, result.text) <= 0.1


def test_openai_verbose_json_with_words_and_segments(openai_client, james_mp3: bytes) -> None:
    result = openai_client.audio.transcriptions.create(
        model=TINY,
        file=("james.mp3", james_mp3, "audio/mpeg"),
        response_format="verbose_json",
        timestamp_granularities=["word", "segment"],
        language="en",
    )
    assert result.language == "english" and 4.0 < result.duration < 5.5
    assert word_error_rate(JAMES, result.text) <= 0.1
    words = result.words
    assert [w.word.lower().strip(".,") for w in words][-2:] == ["to", "colorado"]
    assert all(0 <= w.start <= w.end <= result.duration + 0.1 for w in words)
    assert [w.start for w in words] == sorted(w.start for w in words)
    assert (
        result.segments and result.segments[0].start >= 0 and result.segments[-1].end <= result.duration + 0.1
    )


def test_openai_stream(openai_client, james: Path) -> None:
    events = list(openai_client.audio.transcriptions.create(model=TINY, file=james, stream=True))
    kinds = [e.type for e in events]
    assert kinds[-1] == "transcript.text.done" and "transcript.text.delta" in kinds
    deltas = "".join(e.delta for e in events if e.type == "transcript.text.delta")
    assert deltas == events[-1].text and word_error_rate(JAMES, deltas) <= 0.1


def test_openai_whisper_1_is_base_and_detects_the_language(openai_client, james: Path) -> None:
    result = openai_client.audio.transcriptions.create(
        model="whisper-1", file=james, response_format="verbose_json"
    )
    assert result.language == "english"
    assert word_error_rate(JAMES, result.text) <= 0.1


def test_openai_translation(openai_client, james: Path) -> None:
    result = openai_client.audio.translations.create(model="whisper-1", file=james)
    assert "colorado" in result.text.lower()


# ------------------------------------------------------------------------------------------- ElevenLabs
@pytest.fixture(scope="module")
def eleven(live_server: str, admin_key: str):  # type: ignore[no-untyped-def]
    elevenlabs = pytest.importorskip("elevenlabs")
    return elevenlabs.ElevenLabs(base_url=live_server, api_key=admin_key)


def test_elevenlabs_sdk_convert(eleven, james: Path, vv, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(vv.settings, "asr_model", "tiny.en")
    with james.open("rb") as f:
        result = eleven.speech_to_text.convert(model_id="scribe_v1", file=f, language_code="eng")
    assert result.language_code == "eng" and 0 < result.language_probability <= 1
    assert word_error_rate(JAMES, result.text) <= 0.1
    words = [w for w in result.words if w.type == "word"]
    spaces = [w for w in result.words if w.type == "spacing"]
    assert len(spaces) == len(words) - 1 and all(s.text == " " for s in spaces)
    assert words[-1].text.lower().strip(".") == "colorado"
    assert all(w.start is not None and w.end is not None and w.start <= w.end for w in result.words)
    assert [w.start for w in words] == sorted(w.start for w in words)


def test_elevenlabs_diarize_labels_each_word_with_its_speaker(
    client, vv, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    """James, then Andrew, then James again (0.5 s silences): two speaker_ids, in that order."""
    monkeypatch.setattr(vv.settings, "asr_model", "tiny.en")
    mix, andrew_span = three_turns()
    r = client.post(
        "/v1/speech-to-text",
        data={"model_id": "scribe_v1", "diarize": "true"},
        files={"file": ("mix.wav", wav_bytes(mix), "audio/wav")},
    )
    assert r.status_code == 200, r.text
    words = [w for w in r.json()["words"] if w["type"] == "word"]
    ids = [w["speaker_id"] for w in words]
    assert set(ids) == {"speaker_0", "speaker_1"}
    inside = [w["speaker_id"] for w in words if andrew_span[0] + 0.3 < w["start"] < andrew_span[1] - 0.3]
    outside = [w["speaker_id"] for w in words if w["end"] < andrew_span[0] or w["start"] > andrew_span[1]]
    assert inside and set(inside) == {"speaker_1"} and outside and set(outside) == {"speaker_0"}
