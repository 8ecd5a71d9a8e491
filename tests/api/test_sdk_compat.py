"""The calls the official ``openai`` and ``elevenlabs`` SDKs make, unchanged, against a live voxvault."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from voxvault.audio import decode

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def openai_client(live_server: str, admin_key: str) -> Any:
    openai = pytest.importorskip("openai")
    return openai.OpenAI(base_url=live_server + "/v1", api_key=admin_key, max_retries=0)


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
