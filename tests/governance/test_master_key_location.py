"""Issue 29, finding 7: the master key can live away from the data, and sitting beside it is reported.

A copy of the data dir opens nothing when the key is kept elsewhere (a file outside it, the environment
or a KMS behind the ``KeyManager`` interface); a key file inside the data dir is warned about at start.
"""

from __future__ import annotations

import base64
import logging
import os
import shutil
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from voxvault.config import Settings
from voxvault.errors import VoxError
from voxvault.service import VoxVault


def _vv(data: Path, **overrides: object) -> VoxVault:
    return VoxVault(Settings(data_dir=data, cache_dir=data / "cache", **overrides))  # type: ignore[arg-type]


def _seal_something(vv: VoxVault) -> bytes:
    secret = b"a speaker's embedding, say" * 4
    vv.blobs.put("voices/v1/embedding", vv.envelope.seal(secret, "voice:v1:embedding"))
    return secret


def test_a_key_file_in_the_data_dir_is_warned_about_once_at_server_start(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from fastapi.testclient import TestClient

    from voxvault.api.app import create_app

    vv = _vv(tmp_path / "data")
    with caplog.at_level(logging.WARNING):
        _seal_something(vv)  # using the key (any CLI command) says nothing: the warning is for the operator
    assert not [r for r in caplog.records if "inside the data dir" in r.getMessage()]
    location = vv.key_location
    assert location.source == "file" and location.inside_data_dir
    assert (tmp_path / "data" / "master.key").exists()
    app = create_app(vv=vv, warm_up=False)
    with caplog.at_level(logging.WARNING, logger="voxvault.api.app"), TestClient(app):
        pass  # the server starts (and stops): one warning in its log
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert [m for m in warnings if "inside the data dir" in m and "VOXVAULT_MASTER_KEY_FILE" in m] == [
        location.warning
    ], warnings


def test_a_key_file_outside_the_data_dir_and_a_stolen_data_dir(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    key_file = tmp_path / "secrets" / "voxvault.key"
    monkeypatch.setenv("VOXVAULT_MASTER_KEY_FILE", str(key_file))
    vv = _vv(tmp_path / "data")
    with caplog.at_level(logging.WARNING, logger="voxvault.service"):
        secret = _seal_something(vv)
    assert key_file.exists() and oct(key_file.stat().st_mode & 0o777) == "0o600"
    assert not (tmp_path / "data" / "master.key").exists()
    assert vv.key_location.warning is None
    assert not [r for r in caplog.records if "inside the data dir" in r.getMessage()]
    assert vv.envelope.open(vv.blobs.get("voices/v1/embedding"), "voice:v1:embedding") == secret

    # The data dir copied elsewhere, without the key: nothing sealed opens there.
    shutil.copytree(tmp_path / "data", tmp_path / "stolen")
    monkeypatch.delenv("VOXVAULT_MASTER_KEY_FILE")
    thief = _vv(tmp_path / "stolen")
    with pytest.raises(VoxError) as info:
        thief.envelope.open(thief.blobs.get("voices/v1/embedding"), "voice:v1:embedding")
    assert info.value.code == "key_unavailable"


def test_a_key_in_the_environment(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VOXVAULT_MASTER_KEY", base64.b64encode(os.urandom(32)).decode())  # bare base64
    vv = _vv(tmp_path / "data")
    with caplog.at_level(logging.WARNING, logger="voxvault.service"):
        secret = _seal_something(vv)
    assert vv.key_location.source == "env" and vv.key_location.warning is None
    assert not (tmp_path / "data" / "master.key").exists()
    assert vv.envelope.open(vv.blobs.get("voices/v1/embedding"), "voice:v1:embedding") == secret
    assert not [r for r in caplog.records if "inside the data dir" in r.getMessage()]


class FakeKms:
    """A KMS stand-in behind the ``KeyManager`` protocol: the key never leaves it; calls are counted."""

    current_kid = "kms-1"

    def __init__(self) -> None:
        self._key = AESGCM(os.urandom(32))
        self.calls = 0

    def wrap(self, dek: bytes) -> tuple[str, bytes, bytes]:
        self.calls += 1
        nonce = os.urandom(12)
        return self.current_kid, nonce, self._key.encrypt(nonce, dek, b"kms")

    def unwrap(self, kid: str, nonce: bytes, wrapped: bytes) -> bytes:
        self.calls += 1
        return self._key.decrypt(nonce, wrapped, b"kms")


def test_a_kms_behind_the_key_manager_interface(tmp_path: Path) -> None:
    kms = FakeKms()
    settings = Settings(data_dir=tmp_path / "data", cache_dir=tmp_path / "cache")
    vv = VoxVault(settings, key_manager=kms)
    secret = _seal_something(vv)
    assert vv.envelope.open(vv.blobs.get("voices/v1/embedding"), "voice:v1:embedding") == secret
    assert kms.calls == 2 and vv.key_location.source == "custom"
    assert not (tmp_path / "data" / "master.key").exists()


def test_the_cli_warns_on_key_commands_once_and_not_on_voices(tmp_path: Path) -> None:
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if not k.startswith("VOXVAULT_")}
    env.update(VOXVAULT_DATA_DIR=str(tmp_path / "data"), COLUMNS="300")

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        cli = [sys.executable, "-m", "voxvault.cli", *args]
        return subprocess.run(cli, env=env, capture_output=True, text=True, timeout=300, check=True)

    keys = run("keys", "list")  # opens the database and the key file: the operator is told
    assert keys.stderr.count("inside the data dir") == 1, keys.stderr
    voices = run("voices")  # the database exists now: cloned voices are read, and no warning
    assert "kumo" in voices.stdout and "inside the data dir" not in voices.stderr, voices.stderr
