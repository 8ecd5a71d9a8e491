"""What a newcomer meets first: where data goes by default, and a missing optional extra as one line."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from tests.conftest import MODEL_CACHE


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VOXVAULT_")}
    env.update(XDG_DATA_HOME=str(tmp_path / "xdg"), HOME=str(tmp_path / "home"), **extra)
    return env


def test_python_api_in_another_directory_uses_the_per_user_data_dir(tmp_path: Path) -> None:
    elsewhere = tmp_path / "project"
    elsewhere.mkdir()
    code = "from voxvault import VoxVault; vv = VoxVault(); vv.db; print(vv.settings.data_dir)"
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=elsewhere, env=_env(tmp_path), capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    assert Path(out.stdout.strip()) == tmp_path / "xdg" / "voxvault"
    assert (tmp_path / "xdg" / "voxvault" / "voxvault.db").is_file()
    assert list(elsewhere.iterdir()) == []  # no ./data left behind


def test_data_dir_is_overridable(tmp_path: Path) -> None:
    code = "from voxvault.config import Settings; print(Settings().data_dir)"
    env = _env(tmp_path, VOXVAULT_DATA_DIR=str(tmp_path / "mine"))
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert Path(out.stdout.strip()) == tmp_path / "mine"


@pytest.mark.parametrize(
    ("setting", "module", "extra"),
    [
        ("VOXVAULT_DATABASE_URL=postgresql://nobody@127.0.0.1:1/none", "psycopg", "postgres"),
        ("VOXVAULT_BLOB_URL=s3://bucket/prefix", "boto3", "s3"),
    ],
)
def test_serve_without_an_extra_says_which_in_one_line(
    tmp_path: Path, setting: str, module: str, extra: str
) -> None:
    # The extra is hidden from this interpreter as if it were not installed (None in sys.modules).
    hide = tmp_path / "hide"
    hide.mkdir()
    (hide / "sitecustomize.py").write_text(f"import sys\nsys.modules[{module!r}] = None\n")
    name, value = setting.split("=", 1)
    env = _env(
        tmp_path,
        PYTHONPATH=str(hide),
        VOXVAULT_DATA_DIR=str(tmp_path / "data"),
        VOXVAULT_CACHE_DIR=str(MODEL_CACHE),
        COLUMNS="300",
        **{name: value},
    )
    out = subprocess.run(
        [sys.executable, "-m", "voxvault.cli", "serve", "--port", "1"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 2
    assert "Traceback" not in out.stderr
    errors = [line for line in out.stderr.splitlines() if line.startswith("error")]
    assert len(errors) == 1, out.stderr
    assert "[missing_dependency]" in errors[0] and f"voxvault[{extra}]" in errors[0] and module in errors[0]
