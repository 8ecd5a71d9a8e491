"""The decoder style biases as one flat vector: how the shipped Jacobian and decoder prior store their shapes
and split a flat vector back into named biases (both index the same 58 biases, in ``names`` order)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

# Decoder adaptation's pull toward the shipped weights, per squared unit of change (here, not in
# decoder_adaptation, so the API can show the default without importing PyTorch).
DEFAULT_L2 = 1e-3


def shape_arrays(shapes: Sequence[tuple[int, ...]]) -> dict[str, NDArray[np.int64]]:
    """``ranks`` and ``dims`` arrays that ``shapes_of`` reads back (an ``.npz`` holds no tuples)."""
    return {
        "ranks": np.array([len(x) for x in shapes], dtype=np.int64),
        "dims": np.array([d for x in shapes for d in x], dtype=np.int64),
    }


def shapes_of(archive: Mapping[str, Any]) -> tuple[tuple[int, ...], ...]:
    flat = [int(x) for x in archive["dims"]]
    shapes, at = [], 0
    for rank in (int(r) for r in archive["ranks"]):
        shapes.append(tuple(flat[at : at + rank]))
        at += rank
    return tuple(shapes)


def split(
    flat: NDArray[np.float32], names: Sequence[str], shapes: Sequence[tuple[int, ...]]
) -> dict[str, NDArray[np.float32]]:
    """Per bias name, its part of ``flat`` in its shape."""
    out, at = {}, 0
    for name, shape in zip(names, shapes, strict=True):
        size = int(np.prod(shape))
        out[name] = flat[at : at + size].reshape(shape)
        at += size
    return out
