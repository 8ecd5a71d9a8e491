"""Spoken text is recorded by a keyed hash, not a plain SHA-256 (audit finding 9).

With a plain SHA-256 in every ``speech.created`` entry, anyone holding ``audit:read`` could confirm a
guessed text ("was 'Transfer the money to account 12345' said?") by hashing it themselves.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from voxvault.config import Settings
from voxvault.governance.text_hash import TEXT_KEY_BLOB
from voxvault.service import VoxVault
from voxvault.synthesis.streaming import SpeechSession

pytestmark = pytest.mark.slow
TEXT = "Transfer the money to account one two three."


def _last_speech(vv: VoxVault) -> dict[str, object]:
    entries = [e for e in vv.audit.entries() if e["action"] == "speech.created"]
    return dict(entries[-1]["details"])


def test_a_guessed_text_cannot_be_confirmed_from_the_audit_log(vv: VoxVault) -> None:
    speech = vv.speak(TEXT, voice="alpha", format="pcm")
    details = _last_speech(vv)
    assert details["watermark_id"] == speech.watermark_id
    assert details["text_sha256"] != hashlib.sha256(TEXT.encode()).hexdigest()
    assert details["text_hash"] == "hmac-sha256"
    # The operator, holding the key, still can.
    assert details["text_sha256"] == vv.text_hasher.hexdigest(TEXT)
    assert vv.text_hasher.hexdigest(TEXT + " ") != details["text_sha256"]
    assert speech.watermark_id is not None
    record = vv.provenance.generation(speech.watermark_id)
    assert record is not None and record["text_sha256"] == details["text_sha256"]


def test_the_text_key_is_sealed_outside_the_database_and_survives_a_restart(
    vv: VoxVault, tmp_path: Path
) -> None:
    own = VoxVault(Settings(data_dir=tmp_path / "d", cache_dir=vv.settings.resolved_cache_dir))
    digest = own.text_hasher.hexdigest(TEXT)
    sealed = own.blobs.get(TEXT_KEY_BLOB)
    assert sealed[:4] == b"VXE1" and own.text_hasher.key() not in sealed
    again = VoxVault(Settings(data_dir=tmp_path / "d", cache_dir=vv.settings.resolved_cache_dir))
    assert again.text_hasher.hexdigest(TEXT) == digest
    other = VoxVault(Settings(data_dir=tmp_path / "other", cache_dir=vv.settings.resolved_cache_dir))
    assert other.text_hasher.hexdigest(TEXT) != digest  # each installation has its own key


def test_a_websocket_session_records_its_text_keyed_too(vv: VoxVault) -> None:
    session = SpeechSession(vv.pipeline, vv.catalog.resolve("alpha"))
    segments = ["Hello there, ", "how are you?"]
    for segment in segments:
        assert session.prepare(segment) is not None
    assert session.text_sha256 == vv.text_hasher.hexdigest("".join(segments))
