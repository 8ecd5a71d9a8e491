"""Every way to get speech out of voxvault makes exactly one generation record, one ``speech.created``
audit entry, and audio whose watermark names that record (issue 26: one generation service).

Each path below is driven as its user drives it (Python API, ``voxvault say``, the OpenAI route whole and
as server-sent events, every ElevenLabs shape including both WebSockets, the voice preview, a batch
item). Then, for that one output: a single new ``generations`` row, a single ``speech.*`` audit entry
naming it, the row's ``output_sha256`` equal to the bytes the user got, and ``POST /v1/watermark/detect``
on those bytes naming the same generation.
"""

from __future__ import annotations

import base64
import hashlib
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

from voxvault.store.models import Generation

pytestmark = pytest.mark.slow

# Long enough to carry a whole watermark frame with room to spare (as tests/api/test_watermark_detect.py).
TEXT = "This sentence is long enough to carry a full watermark frame, and then a little more speech."
VOICE = "kumo"
ELEVEN = f"/v1/text-to-speech/{VOICE}"


def _wait(check: Callable[[], bool], timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.05)
    return check()


# ----------------------------------------------------------------------------------------- the paths
def python_api(ctx: dict[str, Any]) -> bytes:
    return bytes(ctx["vv"].speak(TEXT, voice=VOICE, format="mp3").audio)


def cli_say(ctx: dict[str, Any]) -> bytes:
    from voxvault.cli import app

    vv, tmp, monkeypatch = ctx["vv"], ctx["tmp_path"], ctx["monkeypatch"]
    monkeypatch.setenv("VOXVAULT_DATA_DIR", str(vv.settings.data_dir))
    monkeypatch.setenv("VOXVAULT_CACHE_DIR", str(vv.settings.resolved_cache_dir))
    monkeypatch.setenv("VOXVAULT_TTS_ENGINE", vv.settings.tts_engine)  # the session's engine (fake or real)
    out = tmp / "said.mp3"
    result = CliRunner().invoke(app, ["say", TEXT, "--voice", VOICE, "--output", str(out)])
    assert result.exit_code == 0, result.output
    return out.read_bytes()


def openai_whole(ctx: dict[str, Any]) -> bytes:
    body = {"model": "tts-1", "input": TEXT, "voice": VOICE, "response_format": "mp3"}
    r = ctx["client"].post("/v1/audio/speech", json=body)
    assert r.status_code == 200, r.text
    return bytes(r.content)


def openai_sse(ctx: dict[str, Any]) -> bytes:
    body = {"input": TEXT, "voice": VOICE, "response_format": "mp3", "stream_format": "sse"}
    audio = b""
    with ctx["client"].stream("POST", "/v1/audio/speech", json=body) as r:
        assert r.status_code == 200
        for line in r.iter_lines():
            if line.startswith("data: "):
                event = json.loads(line[6:])
                if event["type"] == "speech.audio.delta":
                    audio += base64.b64decode(event["audio"])
    return audio


def eleven_convert(ctx: dict[str, Any]) -> bytes:
    r = ctx["client"].post(ELEVEN, json={"text": TEXT})
    assert r.status_code == 200, r.text
    return bytes(r.content)


def eleven_stream(ctx: dict[str, Any]) -> bytes:
    with ctx["client"].stream("POST", f"{ELEVEN}/stream", json={"text": TEXT}) as r:
        assert r.status_code == 200
        return b"".join(r.iter_bytes())


def eleven_with_timestamps(ctx: dict[str, Any]) -> bytes:
    r = ctx["client"].post(f"{ELEVEN}/with-timestamps", json={"text": TEXT})
    assert r.status_code == 200, r.text
    assert r.json()["alignment"]["characters"]
    return base64.b64decode(r.json()["audio_base64"])


def eleven_stream_with_timestamps(ctx: dict[str, Any]) -> bytes:
    with ctx["client"].stream("POST", f"{ELEVEN}/stream/with-timestamps", json={"text": TEXT}) as r:
        assert r.status_code == 200
        return b"".join(base64.b64decode(json.loads(line)["audio_base64"]) for line in r.iter_lines() if line)


def eleven_websocket(ctx: dict[str, Any]) -> bytes:
    audio = b""
    with ctx["client"].websocket_connect(f"{ELEVEN}/stream-input?xi_api_key={ctx['key']}") as ws:
        ws.send_json({"text": " "})
        for word in TEXT.split(" "):
            ws.send_json({"text": word + " "})
        ws.send_json({"text": ""})
        while not (msg := ws.receive_json()).get("isFinal"):
            audio += base64.b64decode(msg["audio"])
        assert ws.receive()["code"] == 1000
    return audio


def eleven_multi_context(ctx: dict[str, Any]) -> bytes:
    audio = b""
    with ctx["client"].websocket_connect(f"{ELEVEN}/multi-stream-input?xi_api_key={ctx['key']}") as ws:
        ws.send_json({"text": " ", "context_id": "one"})
        ws.send_json({"text": TEXT, "context_id": "one"})
        ws.send_json({"context_id": "one", "flush": True})
        ws.send_json({"context_id": "one", "close_context": True})
        while not (msg := ws.receive_json()).get("isFinal"):
            audio += base64.b64decode(msg["audio"])
        ws.send_json({"close_socket": True})
        while ws.receive()["type"] != "websocket.close":
            pass
    return audio


def voice_preview(ctx: dict[str, Any]) -> bytes:
    r = ctx["client"].get(f"/v1/voices/{VOICE}/preview")
    assert r.status_code == 200, r.text
    return bytes(r.content)


def batch_item(ctx: dict[str, Any]) -> bytes:
    from voxvault.jobs.batch import run_batch
    from voxvault.jobs.spec import parse_items
    from voxvault.jobs.worker import WorkerOptions

    out: Path = ctx["tmp_path"] / "batch"
    row = {"id": "only", "text": TEXT, "voice": VOICE, "format": "mp3"}
    spec = parse_items((json.dumps(row) + "\n").encode(), kind="jsonl")
    result = run_batch(ctx["vv"], spec, str(out), options=WorkerOptions(default_voice=VOICE))
    assert result.counts.done == 1, result
    return (out / "audio" / "only.mp3").read_bytes()


PATHS: dict[str, Callable[[dict[str, Any]], bytes]] = {
    "python_api": python_api,
    "cli_say": cli_say,
    "openai_whole": openai_whole,
    "openai_sse": openai_sse,
    "elevenlabs_convert": eleven_convert,
    "elevenlabs_stream": eleven_stream,
    "elevenlabs_with_timestamps": eleven_with_timestamps,
    "elevenlabs_stream_with_timestamps": eleven_stream_with_timestamps,
    "elevenlabs_websocket": eleven_websocket,
    "elevenlabs_multi_context": eleven_multi_context,
    "voice_preview": voice_preview,
    "batch_item": batch_item,
}


# ----------------------------------------------------------------------------------------- the check
def _rows_after(vv: Any, watermark_id: int) -> list[Generation]:
    with vv.db.session() as s:
        rows = s.scalars(select(Generation).where(Generation.watermark_id > watermark_id)).all()
        s.expunge_all()
        return list(rows)


def _speech_entries(vv: Any, seq: int) -> list[dict[str, Any]]:
    return [e for e in vv.audit.entries(since_seq=seq) if e["action"].startswith("speech.")]


@pytest.mark.parametrize("path", list(PATHS))
def test_each_output_is_one_record_one_audit_entry_and_marked_with_it(
    path: str,
    vv: Any,
    client: Any,
    admin_key: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with vv.db.session() as s:
        before = int(s.scalar(select(func.max(Generation.watermark_id))) or 0)
    seq = vv.audit.head()[0]

    audio = PATHS[path](
        {"vv": vv, "client": client, "key": admin_key, "tmp_path": tmp_path, "monkeypatch": monkeypatch}
    )

    # A socket's record is finished after it closes (in a worker thread): wait for its audit entry.
    assert _wait(lambda: bool(_speech_entries(vv, seq))), f"{path}: no speech audit entry"
    rows = _rows_after(vv, before)
    assert len(rows) == 1, f"{path}: {len(rows)} generation records for one output"
    row = rows[0]
    entries = _speech_entries(vv, seq)
    assert [(e["action"], e["details"]["generation_id"]) for e in entries] == [("speech.created", row.id)]
    assert entries[0]["details"]["watermark_id"] == row.watermark_id
    assert row.output_sha256 == hashlib.sha256(audio).hexdigest(), f"{path}: record names other bytes"
    assert row.duration_s > 1.5

    r = client.post("/v1/watermark/detect", files={"file": ("out.mp3", audio, "audio/mpeg")})
    assert r.status_code == 200, r.text
    found = r.json()
    assert found["present"] is True, f"{path}: no watermark in the output"
    assert found["generation"]["generation_id"] == row.id
