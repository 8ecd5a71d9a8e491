"""Audio I/O: bounded decoding of uploads, encoding (whole files and streams), resampling, loudness."""

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
