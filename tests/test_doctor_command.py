"""``voxvault doctor`` (README: 'loads every engine, prints versions and timings') on the fake engines: every
engine listed with its load time, a timed sample, what stays loaded; an engine that cannot load is
reported beside the others and the command exits 1."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from voxvault.cli import app

runner = CliRunner()


def test_doctor_reports_each_engine_a_sample_and_what_stays_loaded(fake_cli: Path) -> None:
    result = runner.invoke(app, ["doctor", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert set(report["engines"]) == {"tts", "speaker", "vad", "asr"}
    for info in report["engines"].values():
        assert info["ok"] is True and info["load_s"] >= 0 and info["name"]
    sample = report["engines"]["tts"]["sample"]
    assert sample["audio_s"] > 0
    assert sample["rtf"] == pytest.approx(sample["synth_s"] / sample["audio_s"], rel=0.01, abs=0.002)
    assert any(state["kind"] == "tts" for state in report["loaded_engines"])
    assert report["versions"]["voxvault"] and "fastapi" in report["versions"]
    assert report["master_key"]["warning"]  # the key file sits in the data folder by default
    assert "password" not in json.dumps(report["settings"])  # the public settings only

    table = runner.invoke(app, ["doctor"])
    assert table.exit_code == 0, table.output
    rows = [line for line in table.stdout.splitlines() if line.startswith("│ ")]
    for kind in ("tts", "speaker", "vad", "asr"):
        assert any(row.split("│")[1].strip() == kind and "│ yes" in row for row in rows), kind
    assert "loaded engine" in table.stdout and "never" in table.stdout  # the default TTS is never unloaded
    assert "warning" in table.stderr and "master" in table.stderr


def test_an_engine_that_cannot_load_is_named_and_the_others_still_checked(
    fake_cli: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VOXVAULT_SPEAKER_ENGINE", "no-such-encoder")
    result = runner.invoke(app, ["doctor", "--json"])
    assert result.exit_code == 1
    engines = json.loads(result.stdout)["engines"]
    assert engines["speaker"]["ok"] is False and "no-such-encoder" in engines["speaker"]["error"]
    assert engines["tts"]["ok"] and engines["vad"]["ok"] and engines["asr"]["ok"]
    assert "sample" in engines["tts"]
