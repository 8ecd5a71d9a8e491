"""``voxvault consent start`` -> ``voxvault enroll --consent rec.wav samples/*`` -> ``voxvault voices rm``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from voxvault.audio.io import encode
from voxvault.cli import app
from voxvault.config import Settings
from voxvault.service import VoxVault

pytestmark = pytest.mark.slow
SAMPLES = (
    "Every morning I walk down to the market and buy fresh bread and a little cheese for breakfast.",
    "She said the weather would stay cold and windy for the rest of the week, so we stayed inside.",
    "We planted tomatoes, beans and sunflowers in the garden behind the old stone house last spring.",
)


@pytest.fixture
def local(vv: VoxVault, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> VoxVault:
    """The CLI's VoxVault on a fresh data dir, sharing the session's loaded engines."""
    # the reader is the kumo preset (a stand-in for a live speaker): the synthetic-speech detector is off
    own = VoxVault(
        Settings(
            data_dir=tmp_path / "data",
            cache_dir=vv.settings.resolved_cache_dir,
            consent_synthetic_speech=False,
        )
    )
    own.engines = vv.engines
    monkeypatch.setattr("voxvault.cli_voices._vv", lambda: own)
    monkeypatch.setenv("VOXVAULT_DATA_DIR", str(tmp_path / "data"))  # what the CLI's own Settings() reads
    monkeypatch.chdir(tmp_path)
    return own


def write_speech(vv: VoxVault, text: str, path: Path) -> Path:
    # Without the watermark: a live speaker's reading (marked audio is refused as synthetic_audio).
    speech = vv.pipeline.render(vv.pipeline.prepare(text, vv.catalog.resolve("kumo"), fmt="pcm"))
    path.write_bytes(encode(speech.samples, speech.sample_rate, path.suffix.lstrip(".")))
    return path


def test_consent_enroll_list_and_erase_from_the_command_line(local: VoxVault, tmp_path: Path) -> None:
    runner = CliRunner()
    started = runner.invoke(
        app,
        ["consent", "start", "--speaker", "Sam Taylor", "--org", "Acme Studios", "--purpose", "audiobooks"],
    )
    assert started.exit_code == 0, started.output
    ticket = json.loads((tmp_path / "voxvault-consent.json").read_text())
    assert ticket["challenge"] in started.output.replace("\n", " ")
    assert (tmp_path / "voxvault-consent.json").stat().st_mode & 0o077 == 0  # the code is private

    rec = write_speech(local, ticket["script"], tmp_path / "rec.wav")
    samples = [write_speech(local, t, tmp_path / f"s{i}.flac") for i, t in enumerate(SAMPLES)]
    enrolled = runner.invoke(
        app, ["enroll", "--consent", str(rec), "--name", "Sam", *map(str, samples), "--json"]
    )
    assert enrolled.exit_code == 0, enrolled.output
    voice = json.loads(enrolled.output)
    assert voice["status"] == "active" and voice["name"] == "Sam"
    assert not (tmp_path / "voxvault-consent.json").exists()  # the spent ticket is removed

    listed = runner.invoke(app, ["voices", "--json"])
    assert listed.exit_code == 0
    assert any(v["id"] == voice["voice_id"] and v["kind"] == "cloned" for v in json.loads(listed.output))
    assert local.speak("Hello.", voice=voice["voice_id"], format="pcm").duration > 0.3

    removed = runner.invoke(app, ["voices", "rm", voice["voice_id"], "--yes"])
    assert removed.exit_code == 0, removed.output
    # Only the installation's own keys remain (audit chain: finding 5; text hash: finding 9).
    assert [k for k in local.blobs.list("") if not k.startswith(("audit/", "keys/"))] == []
    again = runner.invoke(app, ["voices", "rm", voice["voice_id"], "--yes"])
    assert again.exit_code == 2 and "[voice_not_found]" in again.output


def test_cli_refusals_print_their_code(local: VoxVault, tmp_path: Path) -> None:
    runner = CliRunner()
    missing = runner.invoke(app, ["enroll", "--consent", "rec.wav", "s.wav"])
    assert missing.exit_code == 2 and "[invalid_ticket]" in missing.output
    assert runner.invoke(app, ["consent", "start", "-s", "Sam", "-o", "Acme", "-p", "tests"]).exit_code == 0
    silence = tmp_path / "silence.wav"
    silence.write_bytes(encode(np.zeros(24_000 * 12, dtype=np.float32), 24_000, "wav"))
    noise = tmp_path / "rec.wav"
    noise.write_bytes(
        encode(np.random.default_rng(0).normal(0, 0.1, 24_000 * 5).astype(np.float32), 24_000, "wav")
    )
    refused = runner.invoke(app, ["enroll", "--consent", str(noise), str(silence)])
    assert refused.exit_code == 2 and "[no_speech]" in refused.output and "recording" in refused.output
    assert "Traceback" not in refused.output
    swept = runner.invoke(app, ["voices", "sweep"])
    assert swept.exit_code == 0 and "0 voice(s) marked expired" in swept.output
