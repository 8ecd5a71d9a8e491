"""Envelope encryption: sealed objects open only in their place, under a loaded key; rotation re-wraps."""

from __future__ import annotations

import base64
import os
import stat
from pathlib import Path

import numpy as np
import pytest

from voxvault.errors import VoxError
from voxvault.governance.audit import AuditTrail
from voxvault.governance.crypto import MAGIC, Envelope, LocalKeyManager, new_master_key
from voxvault.governance.rotation import rewrap_all, rotate_master_key
from voxvault.store.blobs import LocalBlobStore
from voxvault.store.db import Database


def _env_value(*pairs: tuple[str, bytes]) -> str:
    return ",".join(f"{kid}:{base64.b64encode(key).decode()}" for kid, key in pairs)


@pytest.fixture
def envelope() -> Envelope:
    return Envelope(LocalKeyManager.from_env_value(_env_value(("k1", os.urandom(32)))))


def test_seal_hides_plaintext_and_opens_back(envelope: Envelope) -> None:
    embedding = np.random.default_rng(0).standard_normal(256).astype(np.float32).tobytes()
    sealed = envelope.seal(embedding, "voice:v1:embedding")
    assert sealed.startswith(MAGIC)
    assert embedding[:32] not in sealed
    assert envelope.open(sealed, "voice:v1:embedding") == embedding
    # Two seals of the same data differ (fresh data key and nonces).
    assert envelope.seal(embedding, "voice:v1:embedding") != sealed


def test_blob_moved_to_another_record_or_tampered_fails(envelope: Envelope) -> None:
    sealed = envelope.seal(b"style bytes", "voice:v1:style")
    with pytest.raises(VoxError) as moved:
        envelope.open(sealed, "voice:v2:style")
    assert moved.value.code == "corrupt_object"
    flipped = bytearray(sealed)
    flipped[-5] ^= 1
    with pytest.raises(VoxError) as tampered:
        envelope.open(bytes(flipped), "voice:v1:style")
    assert tampered.value.code == "corrupt_object"


@pytest.mark.parametrize(
    "blob", [b"", b"VXE1", b"plain audio bytes", MAGIC + b"\x05abc", MAGIC + b"\xff" * 10]
)
def test_garbage_is_refused_cleanly(envelope: Envelope, blob: bytes) -> None:
    with pytest.raises(VoxError) as err:
        envelope.open(blob, "x")
    assert err.value.code == "corrupt_object"


def test_unknown_master_key_is_reported() -> None:
    sealed = Envelope(LocalKeyManager.from_env_value(_env_value(("old", os.urandom(32))))).seal(b"x", "a")
    other = Envelope(LocalKeyManager.from_env_value(_env_value(("new", os.urandom(32)))))
    with pytest.raises(VoxError) as err:
        other.open(sealed, "a")
    assert err.value.code == "key_unavailable"


@pytest.mark.parametrize("value", ["", "k1:notbase64!!", f"k1:{base64.b64encode(b'short').decode()}"])
def test_bad_master_key_settings_are_refused(value: str) -> None:
    with pytest.raises(VoxError) as err:
        LocalKeyManager.from_env_value(value)
    assert err.value.code == "invalid_master_key"


def test_env_value_last_key_is_current() -> None:
    km = LocalKeyManager.from_env_value(_env_value(("a", os.urandom(32)), ("b", os.urandom(32))))
    assert km.current_kid == "b"
    assert Envelope.key_id(Envelope(km).seal(b"x", "y")) == "b"


def test_key_file_is_created_private_and_reused(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "master.key"
    km = LocalKeyManager.from_file(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    sealed = Envelope(km).seal(b"secret", "here")
    assert Envelope(LocalKeyManager.from_file(path)).open(sealed, "here") == b"secret"


def test_rewrap_changes_only_the_key_header(tmp_path: Path) -> None:
    path = tmp_path / "master.key"
    km = LocalKeyManager.from_file(path)
    env = Envelope(km)
    sealed = env.seal(b"payload" * 100, "voice:v:style")
    old_kid = Envelope.key_id(sealed)
    kid, key = new_master_key()
    km.append_to_file(kid, key)
    rewrapped = env.rewrap(sealed)  # no associated data needed
    assert Envelope.key_id(rewrapped) == kid != old_kid
    assert rewrapped[-len(b"payload") * 50 :] == sealed[-len(b"payload") * 50 :]  # ciphertext untouched
    # A process that loaded the file before the rotation picks the new key up from the file.
    assert Envelope(LocalKeyManager.from_file(path)).open(rewrapped, "voice:v:style") == b"payload" * 100


def test_running_process_sees_rotation_made_elsewhere(tmp_path: Path) -> None:
    path = tmp_path / "master.key"
    server = Envelope(LocalKeyManager.from_file(path))
    cli = LocalKeyManager.from_file(path)
    kid, key = new_master_key()
    cli.append_to_file(kid, key)
    sealed_by_cli = Envelope(cli).seal(b"new data", "a")
    assert server.open(sealed_by_cli, "a") == b"new data"
    assert Envelope.key_id(server.seal(b"more", "b")) == kid


def test_rotation_rewraps_every_sealed_blob_and_is_audited(tmp_path: Path) -> None:
    path = tmp_path / "master.key"
    km = LocalKeyManager.from_file(path)
    env = Envelope(km)
    blobs = LocalBlobStore(tmp_path / "blobs")
    payloads = {f"voices/v{i}/style": os.urandom(64) for i in range(5)}
    for k, data in payloads.items():
        blobs.put(k, env.seal(data, k))
    blobs.put("misc/readme", b"not sealed")
    db = Database(f"sqlite:///{tmp_path / 'db.sqlite'}")
    db.migrate()
    audit = AuditTrail(db)

    rotation = rotate_master_key(km, env, blobs, audit, actor="test")
    assert rotation.new_kid is not None
    report = rotation.report
    assert (report.rewrapped, report.already_current, report.not_sealed, report.failed) == (5, 0, 1, [])
    assert report.remaining_kids == {}
    fresh = Envelope(LocalKeyManager.from_file(path))
    for k, data in payloads.items():
        sealed = blobs.get(k)
        assert Envelope.key_id(sealed) == rotation.new_kid
        assert fresh.open(sealed, k) == data
    assert not list((tmp_path / "blobs").rglob(".*.tmp"))  # nothing half-written left behind
    entry = list(audit.entries())[-1]
    assert entry["action"] == "master_key.rotated" and entry["details"]["rewrapped"] == 5

    again = rewrap_all(env, blobs)
    assert (again.rewrapped, again.already_current) == (0, 5)


def test_rotation_with_env_key_needs_rewrap_only(tmp_path: Path) -> None:
    km = LocalKeyManager.from_env_value(_env_value(("a", os.urandom(32))))
    blobs = LocalBlobStore(tmp_path / "blobs")
    db = Database(f"sqlite:///{tmp_path / 'db.sqlite'}")
    db.migrate()
    with pytest.raises(VoxError) as err:
        rotate_master_key(km, Envelope(km), blobs, AuditTrail(db))
    assert err.value.code == "master_key_from_env"


def test_unreadable_blob_is_counted_as_failed_not_fatal(tmp_path: Path) -> None:
    km = LocalKeyManager.from_env_value(_env_value(("a", os.urandom(32)), ("b", os.urandom(32))))
    blobs = LocalBlobStore(tmp_path / "blobs")
    foreign = Envelope(LocalKeyManager.from_env_value(_env_value(("zz", os.urandom(32))))).seal(b"x", "k")
    blobs.put("foreign", foreign)
    report = rewrap_all(Envelope(km), blobs)
    assert report.failed == ["foreign"] and report.remaining_kids == {"zz": 1}
    assert blobs.get("foreign") == foreign
