"""The calls the official ``openai`` and ``elevenlabs`` SDKs make, unchanged, against a live voxvault."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from voxvault.audio import decode

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def eleven(live_server: str, admin_key: str) -> Any:
    elevenlabs = pytest.importorskip("elevenlabs")
    return elevenlabs.ElevenLabs(base_url=live_server, api_key=admin_key)


# ------------------------------------------------------------------------------------------- models
def test_openai_models_list_and_retrieve(openai_client: Any) -> None:
    ids = [m.id for m in openai_client.models.list()]
    assert {"tts-1", "tts-1-hd", "gpt-4o-mini-tts", "whisper-1"} <= set(ids)
    assert openai_client.models.retrieve("tts-1").id == "tts-1"
    import openai

    with pytest.raises(openai.NotFoundError):
        openai_client.models.retrieve("no-such-model")


def test_elevenlabs_models_list_is_a_bare_list(eleven: Any) -> None:
    models = eleven.models.list()
    tts = [m for m in models if m.can_do_text_to_speech]
    assert "eleven_flash_v2_5" in {m.model_id for m in tts}
    assert all(m.languages and m.languages[0].language_id == "en" for m in tts)


def test_models_shape_follows_the_auth_header(live_server: str, admin_key: str) -> None:
    xi = httpx.get(live_server + "/v1/models", headers={"xi-api-key": admin_key})
    bearer = httpx.get(live_server + "/v1/models", headers={"authorization": f"Bearer {admin_key}"})
    forced = httpx.get(live_server + "/v1/models?shape=openai", headers={"xi-api-key": admin_key})
    assert isinstance(xi.json(), list)
    assert bearer.json()["object"] == "list"
    assert forced.json()["object"] == "list"


# ------------------------------------------------------------------------------------------- voices
@pytest.mark.parametrize("voice", ["marin", "cedar"])
def test_new_openai_voice_names_speak(openai_client: Any, voice: str) -> None:
    r = openai_client.audio.speech.create(model="gpt-4o-mini-tts", voice=voice, input="Hello there.")
    assert decode(r.content, max_bytes=10_000_000, max_seconds=60).duration > 0.5


def test_elevenlabs_voice_list_carries_category_labels_and_preview(eleven: Any, admin_key: str) -> None:
    voices = eleven.voices.get_all().voices
    kumo = next(v for v in voices if v.voice_id == "kumo")
    assert kumo.category == "premade"
    assert kumo.labels["gender"] == "male"
    assert kumo.description
    assert kumo.settings is not None and kumo.settings.speed == 1.0
    assert kumo.preview_url and kumo.preview_url.endswith("/v1/voices/kumo/preview")
    clip = httpx.get(kumo.preview_url, headers={"xi-api-key": admin_key}, timeout=60)
    assert clip.status_code == 200
    assert clip.headers["x-generation-id"]  # recorded (and so watermarked) like every output
    assert 1.0 < decode(clip.content, max_bytes=10_000_000, max_seconds=60).duration < 10.0


def test_elevenlabs_v2_voice_search_and_pages(eleven: Any) -> None:
    first = eleven.voices.search(page_size=2, category="premade", sort="name", sort_direction="asc")
    assert [v.name for v in first.voices] == ["alpha", "gongitsune"]
    assert first.has_more and first.total_count == 5
    seen = [v.voice_id for v in first.voices]
    token = first.next_page_token
    while token:
        page = eleven.voices.search(
            page_size=2, category="premade", sort="name", sort_direction="asc", next_page_token=token
        )
        seen += [v.voice_id for v in page.voices]
        token = page.next_page_token
    assert seen == ["alpha", "gongitsune", "kumo", "nezumi", "tebukuro"]
    found = eleven.voices.search(search="storyteller")
    assert [v.voice_id for v in found.voices] == ["gongitsune"]


def test_elevenlabs_bad_page_token_is_a_400(live_server: str, admin_key: str) -> None:
    r = httpx.get(live_server + "/v2/voices?next_page_token=zzz", headers={"xi-api-key": admin_key})
    assert r.status_code == 400
    assert r.json()["error"]["code"] == "invalid_page_token"


def test_elevenlabs_user_and_subscription(eleven: Any) -> None:
    user = eleven.user.get()
    assert user.user_id and user.subscription.status == "active"
    sub = eleven.user.subscription.get()
    assert sub.character_limit >= 1000
    assert sub.can_use_instant_voice_cloning is True


def test_elevenlabs_voice_settings_default_and_per_voice(
    eleven: Any, live_server: str, admin_key: str
) -> None:
    default = eleven.voices.settings.get_default()
    assert default.speed == 1.0 and default.stability is not None
    assert eleven.voices.settings.get("alpha").similarity_boost == default.similarity_boost
    unknown = httpx.get(f"{live_server}/v1/voices/nobody/settings", headers={"xi-api-key": admin_key})
    assert unknown.status_code == 404 and "nobody" in unknown.text


# ------------------------------------------------------------------------------------------- timestamps
def _words(chars: list[str], starts: list[float]) -> list[tuple[str, float]]:
    """Pipecat's way: characters joined into words at spaces, each word at its first character's time."""
    words, current, at = [], "", 0.0
    for ch, t in zip(chars, starts, strict=True):
        if ch == " ":
            if current:
                words.append((current, at))
            current = ""
        else:
            if not current:
                at = t
            current += ch
    if current:
        words.append((current, at))
    return words


TIMED_TEXT = "Meet me at 10:30 near the old bridge. Bring two umbrellas, because rain is coming."


def test_elevenlabs_convert_with_timestamps(eleven: Any) -> None:
    r = eleven.text_to_speech.convert_with_timestamps("kumo", text=TIMED_TEXT, output_format="mp3_44100_128")
    import base64

    audio = decode(base64.b64decode(r.audio_base_64), max_bytes=20_000_000, max_seconds=120)
    al = r.alignment
    assert "".join(al.characters) == TIMED_TEXT  # the text as sent, character for character
    assert al.character_start_times_seconds == sorted(al.character_start_times_seconds)
    assert all(
        e >= s for s, e in zip(al.character_start_times_seconds, al.character_end_times_seconds, strict=True)
    )
    assert al.character_end_times_seconds[-1] <= audio.duration + 0.05
    assert al.character_end_times_seconds[-1] > 0.6 * audio.duration
    spoken = "".join(r.normalized_alignment.characters)
    assert "ten thirty" in spoken.lower()  # as spoken


def test_elevenlabs_stream_with_timestamps_is_ndjson_with_absolute_times(eleven: Any) -> None:
    import base64

    chunks = list(
        eleven.text_to_speech.stream_with_timestamps("kumo", text=TIMED_TEXT, output_format="pcm_16000")
    )
    assert len(chunks) >= 2
    pcm = b"".join(base64.b64decode(c.audio_base_64) for c in chunks if c.audio_base_64)
    duration = len(pcm) / 2 / 16000
    chars: list[str] = []
    starts: list[float] = []
    for c in chunks:
        if c.alignment is not None:
            chars += c.alignment.characters
            starts += c.alignment.character_start_times_seconds
    words = _words(chars, starts)
    assert [w for w, _ in words] == TIMED_TEXT.split()  # no word glued across chunks
    times = [t for _, t in words]
    assert times == sorted(times) and times[-1] < duration
    assert times[-1] > duration / 2  # times run from the start of the whole audio, not of each chunk


# ------------------------------------------------------------------------------------------- formats
@pytest.mark.parametrize(
    ("output_format", "container", "rate"),
    [
        ("mp3_22050_32", "mp3", 22050),
        ("pcm_44100", None, 44100),
        ("pcm_8000", None, 8000),
        ("pcm_32000", None, 32000),
    ],
)
def test_elevenlabs_output_formats(eleven: Any, output_format: str, container: str | None, rate: int) -> None:
    data = b"".join(eleven.text_to_speech.convert("alpha", text=TIMED_TEXT, output_format=output_format))
    if container is None:
        duration = len(data) / 2 / rate
        assert 3.0 < duration < 15.0
        return
    audio = decode(data, max_bytes=20_000_000, max_seconds=120)
    assert audio.source_sample_rate == rate
    kbps = len(data) * 8 / audio.duration / 1000
    assert 28 < kbps < 36  # its real bitrate (the default would be 96)


@pytest.mark.parametrize("output_format", ["ulaw_8000", "alaw_8000"])
def test_elevenlabs_telephony_formats(eleven: Any, output_format: str) -> None:
    import io

    import av
    import numpy as np

    data = b"".join(eleven.text_to_speech.stream("alpha", text=TIMED_TEXT, output_format=output_format))
    assert len(data) / 8000 > 3.0  # one byte per sample at 8 kHz, no header
    muxer = "mulaw" if output_format.startswith("ulaw") else "alaw"
    with av.open(io.BytesIO(data), format=muxer, options={"sample_rate": "8000"}) as c:
        samples = np.concatenate([f.to_ndarray().reshape(-1) for f in c.decode(audio=0)])
    assert np.abs(samples).max() > 3000  # speech, not silence


@pytest.mark.parametrize(
    ("path", "output_format", "code"),
    [
        ("stream", "ulaw_16000", "invalid_sample_rate"),
        ("stream", "opus_48000_320", "invalid_bitrate"),
        ("stream", "pcm_16000_64", "invalid_bitrate"),
        ("stream/with-timestamps", "mp3_1234_32", "invalid_sample_rate"),
        ("with-timestamps", "ogg_vorbis", "unsupported_format"),
    ],
)
def test_bad_output_format_is_refused_before_any_audio(
    live_server: str, admin_key: str, path: str, output_format: str, code: str
) -> None:
    r = httpx.post(
        f"{live_server}/v1/text-to-speech/alpha/{path}?output_format={output_format}",
        json={"text": "Hello."},
        headers={"xi-api-key": admin_key},
    )
    assert r.status_code == 400, r.text
    assert r.json()["error"]["code"] == code


# ------------------------------------------------------------------------------------------- realtime
def test_elevenlabs_realtime_helper_with_the_ws_override(eleven: Any, live_server: str) -> None:
    """The SDK's convert_realtime always rewrites the base URL to wss://; without a TLS proxy in front,
    point its (private) WebSocket base at ws:// as docs/clients.md shows."""
    eleven.text_to_speech._ws_base_url = live_server.replace("http://", "ws://")

    def words() -> Any:
        yield from ["Hello ", "from the ", "realtime ", "helper. ", "It streams ", "as text arrives."]

    data = b"".join(
        eleven.text_to_speech.convert_realtime("alpha", text=words(), output_format="mp3_44100_64")
    )
    assert 1.5 < decode(data, max_bytes=10_000_000, max_seconds=60).duration < 10.0


# ------------------------------------------------------------------------------------------- custom voices
SPEAKERS = __import__("pathlib").Path(__file__).resolve().parents[2].parent / "shared/testdata/speakers"


def test_elevenlabs_add_voice_starts_a_consent_and_makes_no_voice(eleven: Any, vv, admin_key: str) -> None:  # type: ignore[no-untyped-def]
    clips = sorted(SPEAKERS.glob("en_*.wav"))[:1]
    if not clips:
        pytest.skip("../shared/testdata/speakers is missing")
    project = vv.keys.authenticate(admin_key).project_id
    before = len(vv.voice_registry.list(project))
    with clips[0].open("rb") as f:
        r = eleven.voices.ivc.create(name="Sam Taylor", files=[f], description="audiobook narration")
    assert r.requires_verification is True and not r.voice_id
    extra = r.model_extra or {}
    consent = vv.consents.view(extra["consent_id"], project)
    assert consent.status == "pending"
    assert consent.speaker_name == "Sam Taylor" and consent.purpose == "audiobook narration"
    assert "Sam Taylor" in extra["script"] and extra["enroll_url"].endswith("/enroll")
    assert len(vv.voice_registry.list(project)) == before  # nothing speaks without the verified consent


def test_elevenlabs_add_voice_without_files_is_a_422(live_server: str, admin_key: str) -> None:
    r = httpx.post(
        live_server + "/v1/voices/add",
        data={"name": "x"},
        files={"other": ("a", b"1")},
        headers={"xi-api-key": admin_key},
    )
    assert r.status_code == 422 and r.json()["error"]["code"] == "missing_field"


def test_openai_custom_voice_calls_are_refused_with_the_way_to_consent(openai_client: Any) -> None:
    import openai

    with pytest.raises(openai.BadRequestError) as info:
        openai_client.audio.voice_consents.create(name="Sam", language="en-US", recording=b"RIFF....")
    assert info.value.body["code"] == "consent_flow_required"  # type: ignore[index]
    assert "/v1/consents" in info.value.body["message"]  # type: ignore[index]
    with pytest.raises(openai.BadRequestError):
        openai_client.audio.voices.create(name="Sam", consent="cons_123", audio_sample=b"RIFF....")
