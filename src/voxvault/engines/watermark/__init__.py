"""The voxvault audio watermark: see :mod:`voxvault.engines.watermark.core` and docs/watermark.md."""

from voxvault.engines.watermark.core import (
    FALSE_ALARM_BOUND,
    FRAME_SECONDS,
    MIN_SECONDS,
    Detection,
    StreamEmbedder,
    Watermarker,
)

__all__ = ["FALSE_ALARM_BOUND", "FRAME_SECONDS", "MIN_SECONDS", "Detection", "StreamEmbedder", "Watermarker"]
