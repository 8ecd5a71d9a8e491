"""``voxvault batch run | status | transcribe`` in this process on the fake engines: what a user reads (the
result line, the failed-items table, the status counts) and the one-line refusals with exit status 2.

test_batch_cli.py runs the same commands as real processes (kill -9 and resume, Ray); these check what
those runs leave unchecked, quickly."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from batch_helpers import check_output, tiny_rows, write_items
from typer.testing import CliRunner

from voxvault.audio import encode
from voxvault.cli import app

runner = CliRunner()


def test_a_run_reports_its_counts_lists_failures_and_status_reads_them(fake_cli: Path) -> None:
    rows = [*tiny_rows(3), {"id": "lost", "text": "Nobody speaks this.", "voice": "nobody"}]
    items = write_items(fake_cli / "items.jsonl", rows)
    out = fake_cli / "out"

    first = runner.invoke(app, ["batch", "run", str(items), "--out", str(out), "--quiet"])
    assert first.exit_code == 1, first.output  # some items failed
    assert "completed_with_errors: 3/4 done (0 skipped, 3 made" in first.stdout
    assert "1 failed" in first.stdout and str(out) in first.stdout
    # the failed items, to stderr, as a table a user can act on
    assert "failed items (re-run to retry)" in first.stderr
    assert "lost" in first.stderr and "voice_not_found" in first.stderr
    check_output(out, {"clip-00", "clip-01", "clip-02"})

    status = runner.invoke(app, ["batch", "status", str(out)])
    assert status.exit_code == 0, status.output
    assert status.stdout.strip() == "completed_with_errors: 3/4 done, 1 failed, 0 pending"

    # Running it again skips what is made and retries the failure (which fails again).
    again = runner.invoke(app, ["batch", "run", str(items), "--out", str(out), "--quiet"])
    assert again.exit_code == 1
    assert "3/4 done (3 skipped, 0 made" in again.stdout
    check_output(out, {"clip-00", "clip-01", "clip-02"})


def test_a_clean_run_exits_0_with_a_progress_bar(fake_cli: Path) -> None:
    items = write_items(fake_cli / "items.jsonl", tiny_rows(2))
    out = fake_cli / "out"
    run = runner.invoke(app, ["batch", "run", str(items), "--out", str(out), "--format", "mp3"])
    assert run.exit_code == 0, run.output
    assert "completed: 2/2 done (0 skipped, 2 made" in run.stdout and "0 failed" in run.stdout
    assert "batch" in run.stdout  # the progress bar's label (not --quiet)
    entries = check_output(out, {"clip-00", "clip-01"})
    assert all(e["path"].endswith(".mp3") for e in entries)


@pytest.mark.parametrize(
    ("args", "code"),
    [
        (["batch", "run", "{items}", "--out", "{out}", "--format", "aiff"], "[unsupported_format]"),
        (["batch", "run", "{items}", "--out", "{out}", "--executor", "dask"], "[invalid_executor]"),
        (["batch", "status", "{out}"], "[not_found]"),
        (["batch", "transcribe", "{items}", "--out", "{out}", "--executor", "dask"], "[invalid_executor]"),
        (["batch", "transcribe", "{missing}", "--out", "{out}"], "[invalid_batch_inputs]"),
        (["batch", "transcribe", "{empty}", "--out", "{out}"], "[invalid_batch_inputs]"),
    ],
)
def test_refusals_are_one_line_with_their_code_and_exit_2(fake_cli: Path, args: list[str], code: str) -> None:
    paths = {
        "items": str(write_items(fake_cli / "items.jsonl", tiny_rows(1))),
        "out": str(fake_cli / "out"),
        "missing": str(fake_cli / "no-such.wav"),
        "empty": str(fake_cli),  # a folder without audio files
    }
    result = runner.invoke(app, [a.format(**paths) for a in args])
    assert result.exit_code == 2, result.output
    assert code in result.stderr and "Traceback" not in result.output
    assert not (fake_cli / "out" / "manifest.jsonl").exists()


def test_transcribe_names_every_problem_with_the_inputs(fake_cli: Path) -> None:
    a, b = fake_cli / "a", fake_cli / "b"
    a.mkdir(), b.mkdir()
    for folder in (a, b):
        (folder / "Take.wav").write_bytes(encode(np.zeros(1600, dtype=np.float32), 16_000, "wav"))
    result = runner.invoke(
        app, ["batch", "transcribe", str(a), str(b / "Take.wav"), str(fake_cli / "gone"), "--out", "o"]
    )
    assert result.exit_code == 2
    assert "[invalid_batch_inputs] 2 problem(s) with the inputs" in result.stderr
    # the first problem is in the one-line message, the others listed below it
    assert "no such file or folder" in result.stderr and "same name as" in result.stderr


def test_transcribe_writes_each_file_and_a_rerun_skips_it(fake_cli: Path) -> None:
    rate = 16_000
    t = np.arange(rate * 2) / rate
    burst = (0.3 * np.sin(2 * np.pi * 220 * t) * (np.sin(2 * np.pi * 1.5 * t) > 0)).astype(np.float32)
    folder = fake_cli / "in"
    folder.mkdir()
    (folder / "one.wav").write_bytes(encode(burst, rate, "wav"))
    out = fake_cli / "out"
    run = runner.invoke(app, ["batch", "transcribe", str(folder), "--out", str(out), "--quiet"])
    assert run.exit_code == 0, run.output
    assert "completed: 1/1 done (0 skipped, 1 made" in run.stdout
    assert {p.name for p in (out / "transcripts").iterdir()} >= {"one.json", "one.srt"}
    again = runner.invoke(app, ["batch", "transcribe", str(folder), "--out", str(out), "--quiet"])
    assert again.exit_code == 0 and "1/1 done (1 skipped, 0 made" in again.stdout
