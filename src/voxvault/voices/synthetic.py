"""Refuse consent audio that a voxvault server synthesised: its own watermark gives it away.

The issue-25 attack suite had voxvault's own clone read the consent script, and the server accepted audio
that carried its own mark. Every consent recording and every sample file is therefore searched for the
watermark with each key that may have made it: this server's key, the built-in key every voxvault server
uses unless configured otherwise, and any key the operator lists (``VOXVAULT_CONSENT_WATERMARK_KEYS``,
other servers of the same operator). A CRC-valid mark (false alarm at most 9.5e-7 per key and file) is a
refusal, ``synthetic_audio``; the generation record it names, when this server has it, is written to the
audit trail as attempted misuse (ids and times only, never audio or text).

Resemble's PerTh mark (Chatterbox) is not searched: ``resemble-perth`` imports torchaudio at module level
(Spectrogram, InverseSpectrogram, TimeStretch), which this project does not install; docs/consent.md.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from voxvault.engines.base import FloatArray
from voxvault.errors import VoxError

if TYPE_CHECKING:
    from voxvault.engines.watermark import Watermarker

log = logging.getLogger(__name__)

#: A clone marks its whole output, so the first stretch of a file is enough; this bounds the cost of
#: searching long sample files (about 0.1 s of detection per second of audio per key).
MAX_SEARCH_S = 30.0
MIN_SEARCH_S = 1.5  # the detector needs about one frame


@dataclass(frozen=True)
class MarkFound:
    """Where a mark was found and what it names: metadata only (safe for the audit trail)."""

    file: str
    key: str  # "server", "builtin" or "listed[i]": never the key itself
    watermark_id: int
    confidence: float
    generation: dict[str, Any] | None  # this server's record for the id, when it has one

    def details(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "file": self.file,
            "key": self.key,
            "watermark_id": self.watermark_id,
            "confidence": round(self.confidence, 4),
        }
        if self.generation is not None:
            g = self.generation
            out["generation"] = {k: g.get(k) for k in ("generation_id", "voice_id", "key_id", "created_at")}
        return out


class SyntheticAudioCheck:
    """Searches 16 kHz audio for the voxvault mark under each key; ``lookup`` maps a mark to its record."""

    def __init__(
        self,
        markers: Sequence[tuple[str, Watermarker]],
        lookup: Callable[[int], dict[str, Any] | None] | None = None,
        *,
        max_search_s: float = MAX_SEARCH_S,
    ) -> None:
        self.markers = list(markers)
        self.lookup = lookup
        self.max_search_s = max_search_s

    def find(self, label: str, audio: FloatArray, rate: int) -> MarkFound | None:
        """The first mark found in the file under any key, or None."""
        x = np.asarray(audio, dtype=np.float32)[: int(self.max_search_s * rate)]
        if len(x) < MIN_SEARCH_S * rate or not np.any(x):
            return None
        t0 = time.perf_counter()
        for name, marker in self.markers:
            det = marker.detect(x, rate)
            if det.present and det.payload is not None:
                record = self.lookup(det.payload) if (self.lookup is not None and name == "server") else None
                log.info("synthetic audio file=%s key=%s id=%d", label, name, det.payload)
                return MarkFound(label, name, int(det.payload), float(det.confidence), record)
        took = time.perf_counter() - t0
        log.debug("watermark search %s: %.2fs over %d keys", label, took, len(self.markers))
        return None

    @staticmethod
    def refusal(found: MarkFound) -> VoxError:
        return VoxError(
            "synthetic_audio",
            f"{found.file}: this audio was synthesised by a voxvault server (it carries the watermark of "
            "generation record "
            f"{found.watermark_id}); consent must be given by the speaker, live, in their own voice",
            422,
            file=found.file,
            measure="watermark",
            value=round(found.confidence, 4),
        )


def watermarkers(
    server_key: bytes, builtin_key: bytes, listed: Sequence[bytes], factory: Callable[[bytes], Watermarker]
) -> list[tuple[str, Watermarker]]:
    """One detector per distinct key, this server's first; names say which key without revealing it."""
    out: list[tuple[str, Watermarker]] = []
    seen: set[bytes] = set()
    named = [("server", server_key), ("builtin", builtin_key)]
    named += [(f"listed[{i}]", k) for i, k in enumerate(listed)]
    for name, key in named:
        if key and key not in seen:
            seen.add(key)
            out.append((name, factory(key)))
    return out
