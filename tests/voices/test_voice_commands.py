"""``voxvault voices show | adapt | rollback | revoke | rm`` and the ticket refusals of ``enroll`` and
``voices renew``, on the fake engines: what an operator reads, and one-line refusals with exit status 2.

test_cli_voices.py is the enrollment path end to end on the real models; a voice here is written as
enrollment writes it (conftest ``make_voice``)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from tests.conftest import FAKE_ENGINES
from typer.testing import CliRunner

from voxvault.cli import app
from voxvault.config import Settings
from voxvault.service import VoxVault
from voxvault.store.models import Voice

runner = CliRunner()


@pytest.fixture
def local(vv: VoxVault, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> VoxVault:
    """The CLI's VoxVault on a fresh data dir, on the session's fake engines."""
    own = VoxVault(Settings(data_dir=tmp_path / "data", cache_dir=tmp_path / "cache", **FAKE_ENGINES))
    own.engines = vv.engines
    monkeypatch.setattr("voxvault.cli_voices._vv", lambda: own)
    monkeypatch.setenv("VOXVAULT_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.chdir(tmp_path)
    return own


def _json(output: str) -> Any:
    return json.loads(output)


def test_a_voice_is_shown_adapted_rolled_back_revoked_and_erased(
    local: VoxVault, make_voice: Callable[..., str]
) -> None:
    vid = make_voice(local)
    shown = runner.invoke(app, ["voices", "show", vid])
    assert shown.exit_code == 0, shown.output
    assert (_json(shown.stdout)["voice_id"], _json(shown.stdout)["status"]) == (vid, "active")
    style = local.voice_registry.style_for(vid, None)

    adapted = runner.invoke(app, ["voices", "adapt", vid, "--method", "search", "-n", "1"])
    assert adapted.exit_code == 0, adapted.output
    report = _json(adapted.stdout[adapted.stdout.index("{") :])  # after the progress bar
    assert (report["status"], report["iteration"]) == ("succeeded", 1)
    assert report["stop_reason"] == "max_iterations" and "similarity" in report["best"]
    with local.db.session() as s:
        row = s.get(Voice, vid)
        assert row is not None and row.previous_style_blob is not None  # the style before, kept

    rolled = runner.invoke(app, ["voices", "rollback", vid])
    assert rolled.exit_code == 0 and f"voice {vid} rolled back to its previous style" in rolled.stdout
    assert np.array_equal(local.voice_registry.style_for(vid, None), style)

    revoked = runner.invoke(app, ["voices", "revoke", vid])
    assert revoked.exit_code == 0 and f"voice {vid} revoked" in revoked.stdout
    assert _json(runner.invoke(app, ["voices", "show", vid]).stdout)["status"] == "revoked"
    refused = runner.invoke(app, ["voices", "adapt", vid, "--method", "search", "-n", "1"])
    assert refused.exit_code == 2 and "Traceback" not in refused.output

    erased = runner.invoke(app, ["voices", "rm", vid, "--yes"])
    assert erased.exit_code == 0, erased.output
    assert f"voice {vid} erased (" in erased.stdout and "stored objects" in erased.stdout
    gone = runner.invoke(app, ["voices", "show", vid])
    assert gone.exit_code == 2 and "[voice_not_found]" in gone.stderr


def test_rolling_back_a_voice_never_adapted_is_refused(
    local: VoxVault, make_voice: Callable[..., str]
) -> None:
    vid = make_voice(local)
    result = runner.invoke(app, ["voices", "rollback", vid])
    assert result.exit_code == 2 and "[no_previous_style]" in result.stderr


def test_ticket_and_file_refusals_name_the_path(local: VoxVault, tmp_path: Path) -> None:
    (tmp_path / "s.wav").write_bytes(b"RIFF")
    not_json = tmp_path / "garbage.json"
    not_json.write_text("{nope")
    no_ticket = runner.invoke(app, ["enroll", "-c", "s.wav", "s.wav", "--ticket", str(not_json)])
    assert no_ticket.exit_code == 2
    assert "[invalid_ticket]" in no_ticket.stderr and "no consent ticket here" in no_ticket.stderr

    other = tmp_path / "other.json"
    other.write_text(json.dumps({"consent_id": "c"}))  # JSON, but not what 'consent start' writes
    wrong = runner.invoke(app, ["voices", "renew", "v", "-c", "s.wav", "--ticket", str(other)])
    assert wrong.exit_code == 2 and "not a consent ticket" in wrong.stderr

    started = runner.invoke(app, ["consent", "start", "-s", "Sam Taylor", "-o", "Acme", "-p", "tests"])
    assert started.exit_code == 0, started.output
    consent_id = _json(Path("voxvault-consent.json").read_text())["consent_id"]
    missing = runner.invoke(app, ["enroll", "--consent", "absent.wav", "s.wav"])
    assert missing.exit_code == 2
    assert "[invalid_audio]" in missing.stderr and "absent.wav: cannot read the file" in missing.stderr
    assert Path("voxvault-consent.json").exists()  # a refused file does not spend the code

    shown = runner.invoke(app, ["consent", "show", consent_id])
    assert shown.exit_code == 0 and _json(shown.stdout)["status"] == "pending"
    unknown = runner.invoke(app, ["consent", "show", "no-such-consent"])
    assert unknown.exit_code == 2 and "[consent_not_found]" in unknown.stderr
