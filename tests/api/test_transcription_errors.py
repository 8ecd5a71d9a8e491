"""Speech to text over HTTP, the plumbing: every response format, scopes, audit and logs, and every kind of
bad input refused with a clear 4xx before any work starts. On the fake transcriber and diarizer
(``transcriber_engine = "fake"``: Whisper's options, windows and refusals, made-up words); what Whisper
hears is judged in tests/api/test_transcription.py.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest
from tests.api.conftest import TINY, three_turns, wav_bytes
from tests.conftest import needs_testdata

from voxvault.engines.whisper import SAMPLE_RATE

pytestmark = [needs_testdata]


# ------------------------------------------------------------------------------------------- OpenAI SDK
def test_openai_srt_vtt_and_text_say_what_json_says(openai_client, james: Path) -> None:
    heard = openai_client.audio.transcriptions.create(model=TINY, file=james).text
    assert len(heard.split()) >= 5
    srt = openai_client.audio.transcriptions.create(model=TINY, file=james, response_format="srt")
    lines = str(srt).strip().splitlines()
    assert lines[0] == "1" and lines[1].startswith("00:00:0") and " --> 00:00:0" in lines[1]
    assert lines[2].strip() == heard.strip()
    vtt = openai_client.audio.transcriptions.create(model=TINY, file=james, response_format="vtt")
    assert str(vtt).startswith("WEBVTT\n\n00:00:0") and "." in str(vtt).splitlines()[2]
    assert str(vtt).splitlines()[3].strip() == heard.strip()
    text = openai_client.audio.transcriptions.create(model=TINY, file=james, response_format="text")
    assert str(text).strip() == heard.strip() and not str(text).lstrip().startswith("{")


def test_openai_errors_surface_in_the_sdk(openai_client, james: Path) -> None:
    import openai

    with pytest.raises(openai.BadRequestError) as info:
        openai_client.audio.transcriptions.create(model=TINY, file=james, response_format="docx")  # type: ignore[arg-type]
    assert info.value.body["code"] == "unsupported_format"  # type: ignore[index]


# ------------------------------------------------------------------------------------------- raw HTTP
def _post(client, path: str = "/v1/audio/transcriptions", data=None, file=None, headers=None):  # type: ignore[no-untyped-def]
    files = {"file": file} if file is not None else {"dummy": ("x.txt", b"x", "text/plain")}
    return client.post(path, data=data or {"model": TINY}, files=files, headers=headers or {})


@pytest.mark.parametrize(
    ("upload", "status", "code"),
    [
        (("a.wav", b"", "audio/wav"), 422, "invalid_audio"),
        (("a.txt", b"this is not audio, it is a text file " * 40, "text/plain"), 415, "invalid_audio"),
        (("a.wav", wav_bytes(np.zeros(3 * SAMPLE_RATE, np.float32)), "audio/wav"), 422, "silent_audio"),
        (("a.wav", wav_bytes(np.full(SAMPLE_RATE, 0.1, np.float32), channels=12), "audio/wav"), 422,
         "too_many_channels"),
        (("a.wav", b"RIFF\x24\x00\x00\x00WAVEfmt " + b"\x00" * 200, "audio/wav"), 415, "invalid_audio"),
    ],
)  # fmt: skip
def test_bad_audio_is_refused(client, upload, status: int, code: str) -> None:
    r = _post(client, file=upload)
    assert r.status_code == status, r.text
    assert r.json()["error"]["code"] == code


@pytest.mark.parametrize(
    ("data", "status", "code"),
    [
        ({"model": TINY, "response_format": "docx"}, 400, "unsupported_format"),
        ({"model": "gpt-5-ears"}, 400, "unsupported_model"),
        ({"model": TINY, "temperature": "hot"}, 400, "invalid_temperature"),
        ({"model": TINY, "temperature": "1.5"}, 400, "invalid_temperature"),
        ({"model": TINY, "language": "de"}, 400, "unsupported_language"),
        ({"model": "whisper-1", "language": "xx"}, 400, "unsupported_language"),
        ({"model": TINY, "timestamp_granularities[]": "phoneme"}, 400, "invalid_request"),
        ({"model": TINY, "stream": "maybe"}, 400, "invalid_request"),
    ],
)
def test_bad_parameters_are_refused(
    client, james: Path, data: dict[str, str], status: int, code: str
) -> None:
    r = _post(client, data=data, file=("james.wav", james.read_bytes(), "audio/wav"))
    assert r.status_code == status, r.text
    assert r.json()["error"]["code"] == code


def test_missing_file_and_huge_upload(client, vv) -> None:  # type: ignore[no-untyped-def]
    r = _post(client)
    assert r.status_code == 422 and r.json()["error"]["code"] == "missing_file"
    too_big = vv.settings.max_upload_bytes + 1
    r = client.post(
        "/v1/audio/transcriptions",
        content=b"x" * 16,
        headers={"content-type": "multipart/form-data; boundary=x", "content-length": str(too_big)},
    )
    assert r.status_code == 413 and r.json()["error"]["code"] == "upload_too_large"


def test_too_long_audio_is_refused(client, vv, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(vv.settings, "asr_max_seconds", 2.0)
    r = _post(client, file=("a.wav", wav_bytes(np.full(3 * SAMPLE_RATE, 0.1, np.float32)), "audio/wav"))
    assert r.status_code == 413 and r.json()["error"]["code"] == "audio_too_long"


def test_needs_the_transcribe_scope_and_audits_metadata_only(client, anon_client, vv, james: Path) -> None:  # type: ignore[no-untyped-def]
    org, project = vv.keys.ensure_default_project()
    speaker_only = vv.keys.create(org_id=org, project_id=project, scopes=["speech:create"]).secret
    upload = ("james.wav", james.read_bytes(), "audio/wav")
    r = _post(anon_client, file=upload, headers={"Authorization": f"Bearer {speaker_only}"})
    assert r.status_code == 403 and r.json()["error"]["code"] == "insufficient_scope"
    listener = vv.keys.create(org_id=org, project_id=project, scopes=["speech:transcribe"]).secret
    r = _post(anon_client, file=upload, headers={"Authorization": f"Bearer {listener}"})
    assert r.status_code == 200, r.text
    tid = r.headers["x-transcription-id"]
    entries = [e for e in vv.audit.entries() if e.get("target") == tid]
    assert len(entries) == 1 and entries[0]["action"] == "transcription.created"
    details = json.dumps(entries[0]["details"]).lower()
    assert entries[0]["details"]["completed"] is True and entries[0]["details"]["audio_s"] > 4
    heard = set(r.json()["text"].lower().split())
    assert heard and not any(word in details for word in heard)


def test_logs_carry_no_transcript(client, james: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG):
        r = _post(client, file=("james.wav", james.read_bytes(), "audio/wav"))
    assert r.status_code == 200
    heard = set(r.json()["text"].lower().split())
    assert len(heard) >= 3 and not any(word in caplog.text.lower() for word in heard)


# ------------------------------------------------------------------------------------------- ElevenLabs
def test_elevenlabs_character_timestamps(client, james: Path, vv, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(vv.settings, "asr_model", "tiny.en")
    r = client.post(
        "/v1/speech-to-text",
        data={"model_id": "scribe_v1", "timestamps_granularity": "character"},
        files={"file": ("james.wav", james.read_bytes(), "audio/wav")},
    )
    assert r.status_code == 200, r.text
    word = next(w for w in r.json()["words"] if w["type"] == "word")
    assert "".join(c["text"] for c in word["characters"]) == word["text"]
    assert word["characters"][0]["start"] == word["start"]


def test_elevenlabs_diarize_labels_every_word(client, vv, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    """James, Andrew, James (0.5 s silences), two speakers asked for: each word has a speaker_id, both
    used, the first word the first speaker's (which voice is whose is judged on real models)."""
    monkeypatch.setattr(vv.settings, "asr_model", "tiny.en")
    mix, andrew_span = three_turns()
    r = client.post(
        "/v1/speech-to-text",
        data={"model_id": "scribe_v1", "diarize": "true", "num_speakers": "2"},
        files={"file": ("mix.wav", wav_bytes(mix), "audio/wav")},
    )
    assert r.status_code == 200, r.text
    words = [w for w in r.json()["words"] if w["type"] == "word"]
    ids = [w["speaker_id"] for w in words]
    assert set(ids) == {"speaker_0", "speaker_1"} and ids[0] == "speaker_0"
    assert words[-1]["end"] > andrew_span[1]


@pytest.mark.parametrize(
    ("data", "status", "code"),
    [
        ({}, 422, "missing_field"),
        ({"model_id": "scribe_v9"}, 400, "unsupported_model"),
        ({"model_id": "scribe_v1", "timestamps_granularity": "syllable"}, 400, "invalid_request"),
        ({"model_id": "scribe_v1", "num_speakers": "40"}, 400, "invalid_num_speakers"),
        (
            {"model_id": "scribe_v1", "cloud_storage_url": "https://h.example/a.wav"},
            400,
            "unsupported_source",
        ),
        ({"model_id": "scribe_v1", "diarize": "true", "num_speakers": "0"}, 400, "invalid_num_speakers"),
    ],
)
def test_elevenlabs_bad_parameters(client, james: Path, data: dict[str, str], status: int, code: str) -> None:
    r = client.post(
        "/v1/speech-to-text", data=data, files={"file": ("j.wav", james.read_bytes(), "audio/wav")}
    )
    assert r.status_code == status, r.text
    assert r.json()["error"]["code"] == code


def test_a_refusal_after_the_stream_started_is_an_error_event(  # type: ignore[no-untyped-def]
    client, vv, monkeypatch: pytest.MonkeyPatch
) -> None:
    from voxvault.engines import whisper as whisper_mod

    monkeypatch.setattr(whisper_mod, "WINDOW_S", 2.0)
    monkeypatch.setattr(whisper_mod, "MARGIN_S", 0.5)
    monkeypatch.setattr(whisper_mod, "DECODE_BLOCK_S", 1.0)
    monkeypatch.setattr(vv.settings, "asr_max_seconds", 4.0)
    tone = 0.1 * np.sin(2 * np.pi * 220 * np.arange(6 * SAMPLE_RATE) / SAMPLE_RATE).astype(np.float32)
    r = _post(client, data={"model": TINY, "stream": "true"}, file=("a.wav", wav_bytes(tone), "audio/wav"))
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
    events = [json.loads(line[6:]) for line in r.text.splitlines() if line.startswith("data: ")]
    assert events[-1]["type"] == "error" and events[-1]["error"]["code"] == "audio_too_long"
    assert not any(e["type"] == "transcript.text.done" for e in events)
    tid = r.headers["x-transcription-id"]
    [entry] = [e for e in vv.audit.entries() if e.get("target") == tid]
    assert entry["details"]["completed"] is False and entry["details"]["error"] == "audio_too_long"


def test_gate_refuses_past_the_queue_and_after_waiting() -> None:
    from voxvault.api.transcription_gate import TranscriptionGate
    from voxvault.errors import VoxError

    gate = TranscriptionGate(running=1, waiting=1)
    gate.admit()
    gate.run()
    gate.admit()  # one may wait
    with pytest.raises(VoxError) as info:
        gate.admit()  # the queue is full
    assert (info.value.code, info.value.status) == ("server_busy", 429)
    with pytest.raises(VoxError) as info:
        gate.run(wait_s=0.05)  # the slot stays busy
    assert info.value.code == "server_busy"
    gate.done(started=False)
    gate.done(started=True)
    gate.admit()
    gate.run(wait_s=0.05)  # free again
    gate.done(started=True)


def test_a_file_that_is_not_audio_is_refused_before_whisper_loads(tmp_path: Path, settings) -> None:  # type: ignore[no-untyped-def]
    """A refused upload costs no model load (the security fuzz saw +291 MB for a refused first request)."""
    from fastapi.testclient import TestClient

    from voxvault.api.app import create_app
    from voxvault.service import VoxVault

    fresh = VoxVault(settings.model_copy(update={"data_dir": tmp_path}))
    org_id, project_id = fresh.keys.ensure_default_project()
    key = fresh.keys.create(org_id=org_id, project_id=project_id, scopes=["admin"], name="t").secret
    with TestClient(create_app(vv=fresh, warm_up=False), headers={"Authorization": f"Bearer {key}"}) as c:
        r = _post(c, file=("a.txt", b"this is not audio, it is a text file " * 40, "text/plain"))
    assert r.status_code == 415, r.text
    assert r.json()["error"]["code"] == "invalid_audio"
    assert not fresh.engines.loaded("transcriber")


def test_a_short_silent_file_is_refused_before_whisper_loads(tmp_path: Path, settings) -> None:  # type: ignore[no-untyped-def]
    from fastapi.testclient import TestClient

    from voxvault.api.app import create_app
    from voxvault.service import VoxVault

    fresh = VoxVault(settings.model_copy(update={"data_dir": tmp_path}))
    org_id, project_id = fresh.keys.ensure_default_project()
    key = fresh.keys.create(org_id=org_id, project_id=project_id, scopes=["admin"], name="t").secret
    silent = wav_bytes(np.zeros(2 * SAMPLE_RATE, np.float32))
    with TestClient(create_app(vv=fresh, warm_up=False), headers={"Authorization": f"Bearer {key}"}) as c:
        r = _post(c, file=("a.wav", silent, "audio/wav"))
        truncated = _post(c, file=("b.wav", silent[:100], "audio/wav"))
    for answer in (r, truncated):
        assert answer.status_code == 422, answer.text
        assert answer.json()["error"]["code"] == "silent_audio"
    assert not fresh.engines.loaded("transcriber")


def test_a_failed_diarization_is_audited_as_not_completed(  # type: ignore[no-untyped-def]
    client, vv, james: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Diarization is part of the request: it runs inside the transcription slot, before the audit entry."""
    from voxvault.errors import VoxError

    class Broken:
        def diarize(self, *args: object) -> list[object]:
            raise VoxError("invalid_audio", "no speakers could be told apart", 422)

    monkeypatch.setattr(vv.engines, "diarizer", lambda: Broken())
    r = client.post(
        "/v1/speech-to-text",
        data={"model_id": "scribe_v1", "diarize": "true"},
        files={"file": ("james.wav", james.read_bytes(), "audio/wav")},
    )
    assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_audio"
    [entry] = [e for e in vv.audit.entries() if e.get("action") == "transcription.created"][-1:]
    assert entry["details"]["completed"] is False and entry["details"]["error"] == "invalid_audio"
