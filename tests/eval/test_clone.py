"""``voxvault eval clone``: per-speaker rows and a summary per method, both fine-tuning methods compared."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tests.conftest import needs_testdata, speaker_clips
from typer.testing import CliRunner

from voxvault.audio.io import decode, encode
from voxvault.cli import app
from voxvault.engines.kernels import compiler

pytestmark = [pytest.mark.slow, needs_testdata]


@pytest.fixture
def clip_dir(tmp_path: Path, model_cache: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """One real speaker, 12 s of it (enrol on 60 %, judge on the rest)."""
    monkeypatch.setenv("VOXVAULT_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("VOXVAULT_CACHE_DIR", str(model_cache))
    audio = decode(speaker_clips()[0], max_bytes=50_000_000, max_seconds=600, target_sr=16_000)
    folder = tmp_path / "speakers"
    folder.mkdir()
    (folder / "one.wav").write_bytes(encode(audio.samples[: 12 * 16_000], 16_000, "wav"))
    return folder


def test_eval_reports_both_fine_tuning_methods(clip_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "clone.json"
    result = CliRunner().invoke(
        app,
        ["eval", "clone", str(clip_dir), "--json", str(out), "--finetune-iterations", "1",
         "--method", "gradient", "--method", "search", "--method", "decoder"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    row = report["speakers"][0]
    assert row["finetuned"]["method"] == "gradient" and row["finetuned"]["iterations"] == 1
    assert row["finetuned_search"]["method"] == "search"
    assert (
        row["finetuned_decoder"]["method"] == "decoder"
        and len(row["finetuned_decoder"]["train_similarity"]) == 1
    )
    # The instant clone as enrollment makes it (decoder prior + step where the fused graph runs), judged
    # beside the step without the prior, the style alone, the step from the spoken clone embedding and the
    # clone at its style's own pitch (the speaker's pitch is matched)
    if compiler() is not None:
        assert {"style_only", "step_only", "spoken_embedding", "unpitched"} <= set(row["instant"])
        assert 0.0 < report["summary"]["instant"]["step_only_secs_mean"] <= 1.0
        assert 0.0 < report["summary"]["instant"]["spoken_embedding_secs_mean"] <= 1.0
        assert 0.0 < report["summary"]["instant"]["unpitched_secs_mean"] <= 1.0
        assert 0.5 < row["instant"]["pitch_factor"] < 2.0
    summary = report["summary"]
    for method in ("preset", "instant", "finetuned", "finetuned_search", "finetuned_decoder"):
        assert 0.0 < summary[method]["secs_mean"] <= 1.0 and summary[method]["wer_mean"] >= 0.0
    assert "instant" in result.output and "preset" in result.output  # the summary table


def test_eval_refuses_an_unknown_method(clip_dir: Path) -> None:
    result = CliRunner().invoke(app, ["eval", "clone", str(clip_dir), "--method", "annealing"])
    assert result.exit_code == 2
    assert "unknown method" in result.output and "Traceback" not in result.output
