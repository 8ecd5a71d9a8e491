"""The CLI and the app import nothing heavy: ``voxvault --help``, ``voxvault voices`` and a bad batch file
answer at once instead of loading PyTorch (seconds) first. Checked in a fresh interpreter per module."""

from __future__ import annotations

import subprocess
import sys

import pytest

# Loaded by the engines and jobs that need them, never by an import.
HEAVY = ("torch", "onnxruntime", "ray", "boto3", "psycopg")
# The CLI, the Python API and the items-file check also leave SciPy's signal module (pyloudnorm) alone.
CLI_HEAVY = (*HEAVY, "scipy.signal")


@pytest.mark.parametrize(
    ("module", "heavy"),
    [
        ("voxvault.cli", CLI_HEAVY),
        ("voxvault", CLI_HEAVY),
        ("voxvault.service", CLI_HEAVY),
        ("voxvault.jobs.spec", CLI_HEAVY),
        ("voxvault.api.app", HEAVY),
    ],
)
def test_import_loads_no_heavy_module(module: str, heavy: tuple[str, ...]) -> None:
    code = f"import sys, {module}; print(' '.join(m for m in {heavy!r} if m in sys.modules))"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert out.stdout.strip() == "", f"importing {module} loaded {out.stdout.strip()}"
