"""What an operator reads from ``voxvault keys`` and ``voxvault audit`` without ``--json``: the key table
(never a secret), a key made in a named project, the rotation report, an audit export to a file.

test_governance_cli.py checks the JSON forms and the refusals; these are the human forms."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from voxvault.cli import app
from voxvault.cli_common import console
from voxvault.service import VoxVault

runner = CliRunner()


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    d = tmp_path / "data"
    for var in [v for v in os.environ if v.startswith("VOXVAULT_")]:
        monkeypatch.delenv(var)
    monkeypatch.setenv("VOXVAULT_DATA_DIR", str(d))
    monkeypatch.setenv("VOXVAULT_CACHE_DIR", str(tmp_path / "cache"))
    return d


def test_keys_list_is_a_table_without_secrets(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The CLI's console fixes its width when first imported (COLUMNS, or 80 off a terminal): set it here.
    monkeypatch.setattr(console, "_width", 200)  # a wide terminal: the table
    args = ["-s", "speech:create", "--voice", "alpha", "--name", "studio", "--expires", "2w"]
    made = runner.invoke(app, ["keys", "create", *args])
    assert made.exit_code == 0, made.output
    secret = made.stdout.strip()
    # the secret alone on stdout (for scripts), what it is on stderr
    assert "shown once" in made.stderr and "scopes speech:create" in made.stderr
    assert "voices alpha" in made.stderr and "expires 20" in made.stderr
    assert runner.invoke(app, ["keys", "create", "-s", "admin", "--name", "ops"]).exit_code == 0

    listed = runner.invoke(app, ["keys", "list"])
    assert listed.exit_code == 0, listed.output
    assert secret not in listed.output
    rows = {
        cells[3]: cells
        for cells in ([c.strip() for c in line.split("│")] for line in listed.stdout.splitlines())
        if len(cells) > 6
    }
    assert set(rows) == {"studio", "ops"}
    assert (rows["studio"][5], rows["studio"][6]) == ("alpha", "active")
    assert (rows["ops"][5], rows["ops"][6]) == ("all", "active")  # no voice limit
    ids = [k["id"] for k in json.loads(runner.invoke(app, ["keys", "list", "--json"]).stdout)]
    assert sorted(cells[1] for cells in rows.values()) == sorted(ids)

    # An 80-column terminal gets one block per key: every id whole (what `keys revoke` takes), no secret.
    monkeypatch.setattr(console, "_width", 80)
    narrow = runner.invoke(app, ["keys", "list"])
    assert narrow.exit_code == 0, narrow.output
    assert secret not in narrow.output and "…" not in narrow.stdout
    heads = [line.split() for line in narrow.stdout.splitlines() if line and not line.startswith(" ")]
    assert sorted(head[0] for head in heads) == sorted(ids)
    assert {head[1] for head in heads} == {"studio", "ops"}
    assert "scopes speech:create · voices alpha" in narrow.stdout


def test_a_key_is_made_in_the_project_named(data_dir: Path, make_vv: Callable[..., VoxVault]) -> None:
    vv = make_vv(data_dir)
    org_id, _ = vv.keys.ensure_default_project()
    project = vv.keys.create_project(org_id, "podcasts")
    made = runner.invoke(app, ["keys", "create", "-s", "voices:read", "--project", project, "--json"])
    assert made.exit_code == 0, made.output
    info = json.loads(made.stdout)
    assert info["project_id"] == project
    assert vv.keys.authenticate(info["key"]).project_id == project


def test_rotate_master_reports_what_it_rewrapped(data_dir: Path, make_vv: Callable[..., VoxVault]) -> None:
    vv = make_vv(data_dir)
    vv.blobs.put("voices/v/style", vv.envelope.seal(b"style", "voices/v/style"))
    old = vv.key_manager.current_kid
    result = runner.invoke(app, ["keys", "rotate-master"])
    assert result.exit_code == 0, result.output
    text = " ".join(result.stdout.split())
    assert "new master key" in text and str(data_dir / "master.key") in text and old not in text
    assert "re-wrapped 1, already current 0, not sealed 0, failed 0" in text
    assert "every sealed object uses the current key" in text


def test_audit_export_to_a_file_says_how_many_entries(data_dir: Path) -> None:
    for name in ("a", "b"):
        assert runner.invoke(app, ["keys", "create", "-s", "admin", "--name", name]).exit_code == 0
    out = data_dir.parent / "audit.jsonl"
    result = runner.invoke(app, ["audit", "export", "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert f"wrote 2 entries to {out}" in " ".join(result.stderr.split())
    entries = [json.loads(line) for line in out.read_text().splitlines()]
    assert [e["action"] for e in entries] == ["key.created", "key.created"]
    verified = runner.invoke(app, ["audit", "verify", "--json"])
    assert verified.exit_code == 0 and json.loads(verified.stdout)["checked"] == 2
