"""The CLI and the app import nothing heavy: ``voxvault --help``, ``voxvault voices`` and a bad flag or file
answer at once instead of loading PyTorch, onnxruntime, Whisper or the database first (issue 26, item 4).
Checked in a fresh interpreter per case, by the modules it has loaded."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

# Loaded by the engines and jobs that need them, never by an import: the models' runtimes, Whisper,
# the watermark's SciPy code and the optional backends.
HEAVY = (
    "torch",
    "onnxruntime",
    "faster_whisper",
    "ctranslate2",
    "voxvault.engines.watermark",
    "ray",
    "boto3",
    "psycopg",
)
# The CLI, the Python API and the items-file check also leave SciPy's signal module (pyloudnorm) alone.
CLI_HEAVY = (*HEAVY, "scipy.signal")
# Commands that need no database do not import SQLAlchemy or Alembic (1.3 s of CPU for `voices` before).
NO_DB = (*CLI_HEAVY, "sqlalchemy", "alembic")


@pytest.mark.parametrize(
    ("module", "heavy"),
    [
        ("voxvault.cli", NO_DB),
        ("voxvault", CLI_HEAVY),
        ("voxvault.service", CLI_HEAVY),
        ("voxvault.jobs.spec", NO_DB),
        ("voxvault.api.app", HEAVY),
    ],
)
def test_import_loads_no_heavy_module(module: str, heavy: tuple[str, ...]) -> None:
    code = f"import sys, {module}; print(' '.join(m for m in {heavy!r} if m in sys.modules))"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert out.stdout.strip() == "", f"importing {module} loaded {out.stdout.strip()}"


# Runs the console entry with argv, then reports the heavy modules it loaded on the last line of stderr.
RUN_CLI = """
import sys
from voxvault.cli import main
heavy = sys.argv[1].split(",")
sys.argv = ["voxvault", *sys.argv[2:]]
try:
    main()
except SystemExit as exc:
    code = exc.code
print("LOADED " + " ".join(m for m in heavy if m in sys.modules), file=sys.stderr)
sys.exit(code)
"""


@pytest.mark.parametrize(
    ("args", "status", "expected"),
    [
        (["--help"], 0, "voices"),
        (["voices"], 0, "tebukuro"),  # no database yet: the presets, without opening one
        (["voices", "--json"], 0, '"kind": "preset"'),
        (["say", "Hello.", "--speed", "99"], 2, "[invalid_speed]"),
        (["say", "Hello.", "--format", "xyz"], 2, "[unsupported_format]"),
        (["transcribe", "{not_audio}"], 2, "[invalid_audio]"),  # refused before Whisper loads
        (["transcribe", "{missing}"], 2, "[invalid_audio]"),
        (["detect", "{missing}"], 2, "[file_not_found]"),
        (["batch", "run", "{missing}", "--out", "{tmp}/out"], 2, "error"),
    ],
)
def test_cli_answers_without_heavy_modules(
    tmp_path: Path, args: list[str], status: int, expected: str
) -> None:
    not_audio = tmp_path / "notes.wav"
    not_audio.write_text("these are not samples")
    names = {"not_audio": not_audio, "missing": tmp_path / "missing.wav", "tmp": tmp_path}
    argv = [a.format(**names) for a in args]
    env = {k: v for k, v in os.environ.items() if not k.startswith("VOXVAULT_")}
    env.update(VOXVAULT_DATA_DIR=str(tmp_path / "data"), COLUMNS="200")
    out = subprocess.run(
        [sys.executable, "-c", RUN_CLI, ",".join(NO_DB), *argv],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    *stderr, loaded = out.stderr.splitlines()
    assert loaded == "LOADED ", f"voxvault {' '.join(argv)} loaded {loaded[7:]}"
    assert out.returncode == status, out.stderr
    assert expected in out.stdout + "\n".join(stderr)
    assert "Traceback" not in out.stderr
    # The master key warning belongs to serve, doctor and the key commands, not to every command.
    assert "master key" not in out.stderr


def test_voices_on_an_existing_database_loads_no_model_and_no_alembic(tmp_path: Path) -> None:
    from voxvault.store.db import Database

    data = tmp_path / "data"
    data.mkdir()
    Database(f"sqlite:///{data / 'voxvault.db'}").migrate()  # an install that has run before
    env = {k: v for k, v in os.environ.items() if not k.startswith("VOXVAULT_")}
    env.update(VOXVAULT_DATA_DIR=str(data), COLUMNS="200")
    heavy = (*CLI_HEAVY, "alembic")  # SQLAlchemy reads the cloned voices; the schema is current already
    out = subprocess.run(
        [sys.executable, "-c", RUN_CLI, ",".join(heavy), "voices"],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    *_, loaded = out.stderr.splitlines()
    assert loaded == "LOADED ", f"voxvault voices loaded {loaded[7:]}"
    assert out.returncode == 0 and "kumo" in out.stdout and "master key" not in out.stderr
