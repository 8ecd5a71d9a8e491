"""Issue 29, finding 6: a speaker's name and consent statement are sealed in the database, and erasure
leaves no byte of them (nor of their sealed form) in the SQLite file or its WAL.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from voxvault.config import Settings
from voxvault.service import VoxVault
from voxvault.store.db import Database
from voxvault.store.models import Consent, Voice, utcnow
from voxvault.voices.consent import statement_text

NAME = "Grace Brewster Murray Hopper"
STATEMENT = statement_text(NAME, "Remington Rand", "the COBOL audiobook")
VOICE_NAME = "grace-hopper-narration"


def _consent_and_voice(vv: VoxVault) -> tuple[str, str]:
    _, project = vv.keys.ensure_default_project()
    now = utcnow()
    with vv.db.session() as s:
        consent = Consent(
            project_id=project,
            speaker_name=NAME,
            purpose="the COBOL audiobook",
            organization_name="Remington Rand",
            script=STATEMENT + " My code is seven four nine.",
            challenge_hash="0" * 64,
            challenge_expires_at=now,
            status="verified",
            expires_at=now + dt.timedelta(days=30),
        )
        s.add(consent)
        s.flush()
        voice = Voice(
            project_id=project,
            name=VOICE_NAME,
            kind="cloned",
            status="active",
            engine="kokoro",
            consent_id=consent.id,
            expires_at=consent.expires_at,
        )
        s.add(voice)
        s.flush()
        return consent.id, voice.id


def _raw(vv: VoxVault, consent_id: str, voice_id: str) -> tuple[str, str, str]:
    """The stored values as the database holds them (no ORM, no decryption)."""
    with vv.db.engine.connect() as conn:
        name, script = conn.execute(
            text("SELECT speaker_name, script FROM consents WHERE id = :i"), {"i": consent_id}
        ).one()
        (voice_name,) = conn.execute(text("SELECT name FROM voices WHERE id = :i"), {"i": voice_id}).one()
    return str(name), str(script), str(voice_name)


def _sqlite_files(vv: VoxVault) -> bytes:
    """The database file and its WAL as they are on disk now (connections still open)."""
    db = Path(vv.settings.data_dir) / "voxvault.db"
    return b"".join(p.read_bytes() for p in (db, db.with_name("voxvault.db-wal")) if p.exists())


@pytest.fixture
def sqlite_vv(tmp_path: Path) -> Iterator[VoxVault]:
    vv = VoxVault(Settings(data_dir=tmp_path / "data", cache_dir=tmp_path / "cache"))
    yield vv
    vv.db.dispose()


def test_personal_fields_are_sealed_in_the_database(any_vv: VoxVault) -> None:
    consent_id, voice_id = _consent_and_voice(any_vv)
    with any_vv.db.session() as s:  # the application reads them in clear
        consent, voice = s.get(Consent, consent_id), s.get(Voice, voice_id)
        assert consent is not None and voice is not None
        assert (consent.speaker_name, voice.name) == (NAME, VOICE_NAME)
        assert consent.script.startswith(STATEMENT)
    for stored in _raw(any_vv, consent_id, voice_id):
        assert stored.startswith("vxe1:") and NAME not in stored and "Hopper" not in stored
    if any_vv.db.dialect == "sqlite":
        files = _sqlite_files(any_vv)
        assert b"Hopper" not in files and STATEMENT[:30].encode() not in files


def test_erasure_leaves_no_byte_of_the_name_or_the_statement(sqlite_vv: VoxVault) -> None:
    vv = sqlite_vv
    consent_id, voice_id = _consent_and_voice(vv)
    with vv.db.session() as s:
        row = s.get(Consent, consent_id)
        assert row is not None
        row.scores = {"voice_id": voice_id}
    sealed = _raw(vv, consent_id, voice_id)
    before = _sqlite_files(vv)
    assert all(value[20:60].encode() in before for value in sealed)  # the sealed values are on disk

    vv.voice_registry.erase(voice_id, None, actor="test")
    after = _sqlite_files(vv)
    assert b"Hopper" not in after and STATEMENT[:30].encode() not in after
    leftovers = [value[:12] for value in sealed if value[20:60].encode() in after]
    assert not leftovers, f"sealed personal fields still in the database files: {leftovers}"
    wal = Path(vv.settings.data_dir) / "voxvault.db-wal"
    assert not wal.exists() or wal.stat().st_size == 0  # checkpointed and truncated


def test_rows_an_earlier_version_wrote_in_clear_are_sealed_at_start(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    bare = Database(f"sqlite:///{data / 'voxvault.db'}")  # what an earlier version wrote: plain text
    bare.migrate()
    first = VoxVault(Settings(data_dir=data, cache_dir=tmp_path / "cache"))
    first.__dict__["db"] = bare  # that version's database handle: no envelope attached
    consent_id, voice_id = _consent_and_voice(first)
    assert _raw(first, consent_id, voice_id)[0] == NAME
    bare.dispose()

    upgraded = VoxVault(Settings(data_dir=data, cache_dir=tmp_path / "cache"))
    try:
        assert all(v.startswith("vxe1:") for v in _raw(upgraded, consent_id, voice_id))
        assert b"Hopper" not in _sqlite_files(upgraded)
        with upgraded.db.session() as s:
            consent = s.get(Consent, consent_id)
            assert consent is not None and consent.speaker_name == NAME
    finally:
        upgraded.db.dispose()


def test_master_key_rotation_rewraps_the_sealed_fields(sqlite_vv: VoxVault, tmp_path: Path) -> None:
    import base64

    from voxvault.governance.crypto import Envelope
    from voxvault.governance.rotation import rotate_master_key

    vv = sqlite_vv
    consent_id, voice_id = _consent_and_voice(vv)
    old_kid = vv.key_manager.current_kid
    rotation = rotate_master_key(vv.key_manager, vv.envelope, vv.blobs, vv.audit, db=vv.db)
    assert rotation.new_kid and rotation.new_kid != old_kid and rotation.report.rewrapped >= 5
    for stored in _raw(vv, consent_id, voice_id):
        assert Envelope.key_id(base64.b64decode(stored[len("vxe1:") :])) == rotation.new_kid
    # Only the new key left: the fields still open.
    key_file = Path(vv.settings.data_dir) / "master.key"
    newest = [line for line in key_file.read_text().splitlines() if line.startswith(rotation.new_kid)]
    only_new = VoxVault(
        Settings(data_dir=vv.settings.data_dir, cache_dir=tmp_path / "cache", master_key=newest[0])  # type: ignore[arg-type]
    )
    try:
        with only_new.db.session() as s:
            consent = s.get(Consent, consent_id)
            assert consent is not None and consent.speaker_name == NAME
    finally:
        only_new.db.dispose()
