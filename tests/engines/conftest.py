"""Engine fixtures shared by the Kokoro tests (onnxruntime and PyTorch), each loaded once per run."""

from __future__ import annotations

from pathlib import Path

import pytest

from voxvault.engines.kokoro import KokoroEngine


@pytest.fixture(scope="session")
def float_engine(model_cache: Path) -> KokoroEngine:
    """onnxruntime on the dequantised graph: the reference the other precisions and PyTorch are held to."""
    return KokoroEngine(model_cache, precision="float")


@pytest.fixture(scope="session")
def int8_engine(model_cache: Path) -> KokoroEngine:
    """int8 with the fused kernels where a compiler is found (what serves by default on CPU)."""
    return KokoroEngine(model_cache, precision="int8")


@pytest.fixture(scope="session")
def int8_plain(model_cache: Path) -> KokoroEngine:
    """int8 on the graph as shipped (no fused kernels)."""
    return KokoroEngine(model_cache, precision="int8", kernels="off")
