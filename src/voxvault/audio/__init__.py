"""Audio I/O: bounded decoding of uploads, encoding (whole files and streams), resampling, loudness.

Names load on first use (PEP 562): loudness pulls in SciPy's signal module (about a second), which the CLI
does not need to list voices or to check a batch file.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from voxvault.audio.io import (
        CONTENT_TYPES,
        FILE_EXTENSIONS,
        FORMATS,
        DecodedAudio,
        StreamEncoder,
        decode,
        encode,
        resample,
    )
    from voxvault.audio.loudness import (
        StreamNormalizer,
        integrated_loudness,
        limit_peaks,
        loudness_gain_db,
        normalize_loudness,
    )

_WHERE = {
    "CONTENT_TYPES": "io",
    "FILE_EXTENSIONS": "io",
    "FORMATS": "io",
    "DecodedAudio": "io",
    "StreamEncoder": "io",
    "decode": "io",
    "encode": "io",
    "resample": "io",
    "StreamNormalizer": "loudness",
    "integrated_loudness": "loudness",
    "limit_peaks": "loudness",
    "loudness_gain_db": "loudness",
    "normalize_loudness": "loudness",
}

__all__ = [
    "CONTENT_TYPES",
    "FILE_EXTENSIONS",
    "FORMATS",
    "DecodedAudio",
    "StreamEncoder",
    "StreamNormalizer",
    "decode",
    "encode",
    "integrated_loudness",
    "limit_peaks",
    "loudness_gain_db",
    "normalize_loudness",
    "resample",
]


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value
