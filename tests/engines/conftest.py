"""Engine fixtures shared by the Kokoro tests (onnxruntime and PyTorch)."""

from __future__ import annotations

from pathlib import Path

import pytest

from voxvault.engines.kokoro import KokoroEngine


@pytest.fixture(scope="module")
def float_engine(model_cache: Path) -> KokoroEngine:
    """onnxruntime on the dequantised graph: the reference the other precisions and PyTorch are held to."""
    return KokoroEngine(model_cache, precision="float")
