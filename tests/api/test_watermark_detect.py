"""Every output is watermarked with its generation id; detection traces it back (HTTP and CLI)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

pytestmark = pytest.mark.slow

TEXT = "This sentence is long enough to carry a full watermark frame, and then a little more speech."


@pytest.fixture(scope="module")
def marked_mp3(client) -> tuple[bytes, str]:  # type: ignore[no-untyped-def]
    r = client.post("/v1/audio/speech", json={"input": TEXT, "voice": "kumo", "response_format": "mp3"})
    assert r.status_code == 200
    return r.content, r.headers["x-generation-id"]


def test_speech_output_traces_back_to_its_generation(client, marked_mp3) -> None:
    data, generation_id = marked_mp3
    r = client.post("/v1/watermark/detect", files={"file": ("out.mp3", data, "audio/mpeg")})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["present"] is True
    assert body["confidence"] > 0.5
    assert body["generation"]["generation_id"] == generation_id
    assert body["generation"]["voice_id"] == "kumo"


def test_unmarked_speech_is_absent(client) -> None:
    clips = sorted((Path(__file__).resolve().parents[3] / "shared/testdata/speakers").glob("en_*.wav"))
    if not clips:
        pytest.skip("../shared/testdata/speakers is missing")
    r = client.post("/v1/watermark/detect", files={"file": ("h.wav", clips[0].read_bytes(), "audio/wav")})
    assert r.status_code == 200
    assert r.json()["present"] is False
    assert r.json()["payload"] is None


@pytest.mark.parametrize(
    ("payload", "status", "code"),
    [
        (b"this is not audio at all" * 20, 415, "invalid_audio"),
        (None, 400, "audio_too_short"),
    ],
)
def test_bad_detection_input_is_a_clear_4xx(
    client, vv, payload: bytes | None, status: int, code: str
) -> None:
    if payload is None:
        payload = vv.speak("Hi.", format="wav").audio  # well under 1.5 s
    r = client.post("/v1/watermark/detect", files={"file": ("x.bin", payload, "application/octet-stream")})
    assert r.status_code == status, r.text
    assert r.json()["error"]["code"] == code


def test_detect_without_file_field(client) -> None:
    r = client.post("/v1/watermark/detect", files={"other": ("x", b"abc", "text/plain")})
    assert r.status_code == 422
    assert r.json()["error"]["code"] == "missing_file"


def test_cli_detect_json_gives_same_payload_for_every_copy(vv, marked_mp3, tmp_path, monkeypatch) -> None:
    from voxvault.cli import app

    data, _ = marked_mp3
    monkeypatch.setenv("VOXVAULT_DATA_DIR", str(vv.settings.data_dir))
    monkeypatch.setenv("VOXVAULT_CACHE_DIR", str(vv.settings.resolved_cache_dir))
    payloads = []
    for name in ("a.mp3", "b.mp3"):
        (tmp_path / name).write_bytes(data)
        result = CliRunner().invoke(app, ["detect", str(tmp_path / name), "--json"])
        assert result.exit_code == 0, result.output
        obj = json.loads(result.output.strip().splitlines()[-1])
        assert obj["present"] is True
        payloads.append(obj["payload"])
    assert payloads[0] == payloads[1] is not None


def test_cli_detect_on_missing_file_is_one_clear_line(tmp_path) -> None:
    from voxvault.cli import app

    result = CliRunner().invoke(app, ["detect", str(tmp_path / "nope.wav")])
    assert result.exit_code == 2
    assert "file_not_found" in result.output
    assert "Traceback" not in result.output
