"""``voxvault keys ...`` on the local database and key file, no server running."""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from voxvault.cli import app
from voxvault.governance.crypto import Envelope
from voxvault.service import VoxVault

runner = CliRunner()


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    d = tmp_path / "data"
    monkeypatch.setenv("VOXVAULT_DATA_DIR", str(d))
    monkeypatch.setenv("VOXVAULT_CACHE_DIR", str(tmp_path / "cache"))
    for var in (
        "VOXVAULT_MASTER_KEY",
        "VOXVAULT_DATABASE_URL",
        "VOXVAULT_BLOB_URL",
        "VOXVAULT_MASTER_KEY_FILE",
    ):
        monkeypatch.delenv(var, raising=False)
    return d


def test_create_list_revoke(data_dir: Path, make_vv: Callable[..., VoxVault]) -> None:
    created = runner.invoke(
        app,
        [
            "keys",
            "create",
            "--scope",
            "speech:create",
            "-s",
            "voices:read",
            "--voice",
            "alpha",
            "--expires",
            "30d",
            "--name",
            "ci",
            "--json",
        ],
    )
    assert created.exit_code == 0, created.output
    info = json.loads(created.stdout)
    vv = make_vv(data_dir)
    principal = vv.keys.authenticate(info["key"])
    assert principal.scopes == {"speech:create", "voices:read"} and principal.voice_ids == {"alpha"}

    listed = runner.invoke(app, ["keys", "list", "--json"])
    assert listed.exit_code == 0
    assert info["key"] not in listed.output
    assert [(k["id"], k["state"]) for k in json.loads(listed.stdout)] == [(info["id"], "active")]

    plain = runner.invoke(app, ["keys", "create", "--scope", "admin"])
    assert plain.exit_code == 0
    secret = plain.stdout.strip()
    assert vv.keys.authenticate(secret).has("admin")

    revoked = runner.invoke(app, ["keys", "revoke", info["id"]])
    assert revoked.exit_code == 0 and "revoked" in revoked.output
    assert vv.keys.get(info["id"]).state == "revoked"
    actions = [(e["action"], e["actor"]) for e in vv.audit.entries()]
    assert actions == [("key.created", "cli"), ("key.created", "cli"), ("key.revoked", "cli")]


@pytest.mark.parametrize(
    ("args", "code"),
    [
        (["keys", "create", "--scope", "root"], "invalid_scope"),
        (["keys", "create", "--scope", "admin", "--expires", "someday"], "invalid_expiry"),
        (["keys", "create", "--scope", "admin", "--project", "nope"], "project_not_found"),
        (["keys", "revoke", "nope"], "key_not_found"),
        (["audit", "verify", "--anchor", "12"], "invalid_anchor"),
    ],
)
def test_mistakes_are_one_line_with_their_code(data_dir: Path, args: list[str], code: str) -> None:
    result = runner.invoke(app, args)
    assert result.exit_code == 2
    assert f"[{code}]" in result.output and "Traceback" not in result.output


def test_rotate_master_rewraps_every_blob(data_dir: Path, make_vv: Callable[..., VoxVault]) -> None:
    vv = make_vv(data_dir)
    secrets = {f"voices/v{i}/embedding": os.urandom(1024) for i in range(3)}
    for key, data in secrets.items():
        vv.blobs.put(key, vv.envelope.seal(data, key))
    old = vv.key_manager.current_kid

    result = runner.invoke(app, ["keys", "rotate-master", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["rewrapped"] == 3 and report["failed"] == 0 and report["new_kid"] != old
    for key, data in secrets.items():
        sealed = vv.blobs.get(key)
        assert Envelope.key_id(sealed) == report["new_kid"]
        assert vv.envelope.open(sealed, key) == data  # the running instance reloads the key file
    key_lines = [
        line for line in (data_dir / "master.key").read_text().splitlines() if not line.startswith("#")
    ]
    assert [line.split(":")[0] for line in key_lines] == [old, report["new_kid"]]
    assert any(e["action"] == "master_key.rotated" for e in vv.audit.entries())
    assert runner.invoke(app, ["audit", "verify"]).exit_code == 0


def test_rotate_master_with_env_key(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch, make_vv: Callable[..., VoxVault]
) -> None:
    first = f"a:{base64.b64encode(os.urandom(32)).decode()}"
    monkeypatch.setenv("VOXVAULT_MASTER_KEY", first)
    vv = make_vv(data_dir, master_key=first)
    vv.blobs.put("voices/v/style", vv.envelope.seal(b"style", "voices/v/style"))

    printed = runner.invoke(app, ["keys", "rotate-master"])
    assert printed.exit_code == 0 and "--rewrap-only" in printed.output
    new_pair = printed.stdout.strip()
    assert new_pair.count(":") == 1 and len(base64.b64decode(new_pair.split(":")[1])) == 32
    assert Envelope.key_id(vv.blobs.get("voices/v/style")) == "a"  # nothing changed yet

    monkeypatch.setenv("VOXVAULT_MASTER_KEY", f"{first},{new_pair}")
    done = runner.invoke(app, ["keys", "rotate-master", "--rewrap-only", "--json"])
    assert done.exit_code == 0, done.output
    assert json.loads(done.stdout)["rewrapped"] == 1
    assert Envelope.key_id(vv.blobs.get("voices/v/style")) == new_pair.split(":")[0]
