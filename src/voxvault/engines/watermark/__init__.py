"""The voxvault audio watermark (issue 4): see ``watermarker.py`` for the API and docs/watermark.md.

``Watermarker().embed(audio, sr, payload)`` marks a file; ``.embedder(payload, sr).process(chunk, offset)``
marks a stream chunk by chunk; ``.detect(audio, sr)`` returns a :class:`Detection`.
"""

from voxvault.engines.watermark.detect import FALSE_ALARM_BOUND, MAX_CRC_CHECKS, Detection
from voxvault.engines.watermark.embed import StreamEmbedder, Strength
from voxvault.engines.watermark.layout import FRAME_SECONDS
from voxvault.engines.watermark.watermarker import DEFAULT_KEY, MIN_SECONDS, Watermarker

__all__ = [
    "DEFAULT_KEY",
    "FALSE_ALARM_BOUND",
    "FRAME_SECONDS",
    "MAX_CRC_CHECKS",
    "MIN_SECONDS",
    "Detection",
    "Strength",
    "StreamEmbedder",
    "Watermarker",
]
