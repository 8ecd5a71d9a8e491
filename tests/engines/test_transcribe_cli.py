"""``voxvault transcribe``: real files in, text / JSON / SRT out; bad input is one line, exit code 2."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from tests.conftest import SPEAKERS, needs_testdata
from typer.testing import CliRunner

from voxvault.cli import app
from voxvault.engines.asr import word_error_rate

pytestmark = [pytest.mark.slow, needs_testdata]

JAMES = "We have also started contemplating the possibility of moving back to Colorado."


@pytest.fixture
def env(tmp_path: Path, model_cache: Path) -> dict[str, str]:
    return {"VOXVAULT_DATA_DIR": str(tmp_path / "data"), "VOXVAULT_CACHE_DIR": str(model_cache)}


def test_text_json_and_srt(env: dict[str, str], tmp_path: Path) -> None:
    runner = CliRunner()
    james, andrew = SPEAKERS / "en_james.wav", SPEAKERS / "en_andrew.wav"
    r = runner.invoke(app, ["transcribe", "--model", "tiny.en", "-f", "json", str(james)], env=env)
    assert r.exit_code == 0, r.output
    body = json.loads(r.stdout)
    assert word_error_rate(JAMES, body["text"]) <= 0.1 and body["language"] == "english"
    assert body["words"][-1]["word"].lower().strip(".") == "colorado" and body["segments"]

    out = tmp_path / "out"
    args = ["transcribe", "--model", "tiny.en", "-f", "srt", "-o", str(out), str(james), str(andrew)]
    r = runner.invoke(app, args, env=env)
    assert r.exit_code == 0, r.output
    assert sorted(p.name for p in out.iterdir()) == ["en_andrew.srt", "en_james.srt"]
    assert "mosquito" in (out / "en_andrew.srt").read_text().lower()


def test_diarize_json_and_rttm(env: dict[str, str], tmp_path: Path) -> None:
    """Two real voices joined (James then Karen): two speakers, James's words on the first."""
    from voxvault.audio.io import decode, encode

    def voice(name: str) -> np.ndarray:
        return decode(SPEAKERS / f"{name}.wav", max_bytes=10_000_000, max_seconds=60, target_sr=16000).samples

    james, karen = voice("en_james"), voice("en_karen")
    mix = np.concatenate([james, np.zeros(8000, np.float32), karen])
    path = tmp_path / "two.wav"
    path.write_bytes(encode(mix, 16000, "wav"))
    runner = CliRunner()
    r = runner.invoke(
        app, ["transcribe", "--model", "tiny.en", "--diarize", "-f", "json", str(path)], env=env
    )
    assert r.exit_code == 0, r.output
    body = json.loads(r.stdout)
    assert {t["speaker"] for t in body["speakers"]} == {"speaker_0", "speaker_1"}
    colorado = next(w for w in body["words"] if w["word"].lower().strip(".") == "colorado")
    assert colorado["speaker"] == "speaker_0" and body["words"][-1]["speaker"] == "speaker_1"

    r = runner.invoke(app, ["transcribe", "-f", "rttm", str(path)], env=env)
    assert r.exit_code == 0, r.output
    lines = [line.split() for line in r.stdout.splitlines()]
    assert lines and all(f[0] == "SPEAKER" and f[1] == "two" and len(f) == 10 for f in lines)
    assert {f[7] for f in lines} == {"speaker_0", "speaker_1"}
    assert float(lines[0][3]) < 1.0 and float(lines[-1][3]) > len(james) / 16000 - 0.5


@pytest.mark.parametrize(
    ("args", "code"),
    [
        (["-f", "docx"], "unsupported_format"),
        (["--model", "large"], "unsupported_model"),
        (["--diarize", "-f", "srt"], "unsupported_format"),
    ],
)
def test_bad_options_fail_in_one_line(env: dict[str, str], args: list[str], code: str) -> None:
    r = CliRunner().invoke(app, ["transcribe", *args, str(SPEAKERS / "en_james.wav")], env=env)
    assert r.exit_code == 2 and code in r.output and "Traceback" not in r.output


def test_not_audio(env: dict[str, str], tmp_path: Path) -> None:
    bogus = tmp_path / "notes.wav"
    bogus.write_text("not audio at all " * 50)
    r = CliRunner().invoke(app, ["transcribe", "--model", "tiny.en", str(bogus)], env=env)
    assert r.exit_code == 2 and "invalid_audio" in r.output
