"""Fused onnxruntime kernels, compiled once per machine with the system C compiler and cached.

onnxruntime's CPU kernels for the element-wise chains in Kokoro's vocoder are scalar and take one memory
pass per node; ``fused.c`` does the Snake activation (``x + sin(alpha x)^2 / alpha``), and the adaptive
instance norm in front of it, in one vectorised pass per row. No PyPI package ships onnxruntime's C
headers, so ``include/onnxruntime_c_api.h`` comes from Debian's ``libonnxruntime-dev`` (see
``include/README.md``); the kernels ask for C API version 21, which every onnxruntime since 1.21 provides.

Without a C compiler, or if the build fails, ``kernel_library`` returns None and the engine runs the plain
graph: the kernels only make synthesis faster, never possible.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

logger = logging.getLogger(__name__)

HERE = Path(__file__).resolve().parent
SOURCE = HERE / "fused.c"
HEADER = HERE / "include" / "onnxruntime_c_api.h"
# No -march=native: fused.c carries x86 target clones (AVX-512, AVX2+FMA, baseline) picked at load time,
# so a cache directory shared between machines never holds code a CPU cannot run.
FLAGS = ("-O3", "-fPIC", "-shared", "-fno-math-errno", "-std=c11")
COMPILE_TIMEOUT_S = 120.0


def compiler() -> str | None:
    """The C compiler to use: ``$CC``, else ``cc``, else ``gcc``; None when there is none."""
    wanted = os.environ.get("CC")
    if wanted:
        return shutil.which(wanted)
    return shutil.which("cc") or shutil.which("gcc")


def _build_key(cc: str) -> str:
    try:
        version = subprocess.run(
            [cc, "--version"], capture_output=True, text=True, timeout=30, check=False
        ).stdout
    except (OSError, subprocess.SubprocessError):
        version = ""
    digest = hashlib.sha256()
    flags = " ".join(FLAGS)
    parts = (SOURCE.read_bytes(), HEADER.read_bytes(), cc.encode(), version.encode(), flags.encode())
    for part in parts:
        digest.update(hashlib.sha256(part).digest())
    return digest.hexdigest()[:16]


def kernel_library(cache_dir: Path) -> Path | None:
    """Path of the compiled kernel library (built on first use); None if it cannot be built."""
    cc = compiler()
    if cc is None:
        logger.warning("no C compiler found (set CC); Kokoro runs without fused kernels")
        return None
    target = Path(cache_dir) / f"voxvault-kernels-{_build_key(cc)}.so"
    if target.is_file():
        return target
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".kernels-", suffix=".so", dir=target.parent)
        os.close(fd)
    except OSError as exc:
        logger.warning("cannot write the fused kernels into %s (%s); running without them", cache_dir, exc)
        return None
    try:
        result = subprocess.run(
            [cc, *FLAGS, "-I", str(HEADER.parent), str(SOURCE), "-o", tmp, "-lm"],
            capture_output=True,
            text=True,
            timeout=COMPILE_TIMEOUT_S,
            check=False,
        )
        if result.returncode != 0:
            logger.warning(
                "building the fused kernels with %s failed (exit %d); running without them: %s",
                cc,
                result.returncode,
                result.stderr.strip()[-500:],
            )
            return None
        os.replace(tmp, target)
    except (OSError, subprocess.SubprocessError) as exc:
        logger.warning("building the fused kernels failed (%s); running without them", type(exc).__name__)
        return None
    finally:
        Path(tmp).unlink(missing_ok=True)
    logger.info("built fused kernels %s", target.name)
    return target
