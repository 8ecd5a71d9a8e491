"""Provenance: read the watermark in a file and trace it back to the generation that made it.

The watermark carries the generation record's integer id; the record names the voice, key, time,
format and the SHA-256 of the output. The record is only disclosed to callers allowed to see it
(audit scope, same organisation as the key that made the output, or the operator organisation).
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any

from voxvault.audio import decode
from voxvault.errors import VoxError
from voxvault.governance.audit import AuditTrail
from voxvault.store.db import Database
from voxvault.store.models import Generation

if TYPE_CHECKING:
    from voxvault.engines.watermark import Watermarker

DETECT_SAMPLE_RATE = 16000
MIN_DETECT_SECONDS = 1.5


class Provenance:
    def __init__(
        self, marker: Watermarker, db: Database, audit: AuditTrail, *, max_bytes: int, max_seconds: float
    ) -> None:
        self.marker = marker
        self.db = db
        self.audit = audit
        self.max_bytes = max_bytes
        self.max_seconds = max_seconds

    def detect_bytes(self, data: bytes) -> dict[str, Any]:
        """Decode an uploaded file (bounded) and look for the mark."""
        audio = decode(
            data, max_bytes=self.max_bytes, max_seconds=self.max_seconds, target_sr=DETECT_SAMPLE_RATE
        )
        if audio.duration < MIN_DETECT_SECONDS:
            raise VoxError(
                "audio_too_short",
                f"need at least {MIN_DETECT_SECONDS} s of audio to look for a watermark; "
                f"got {audio.duration:.2f} s",
            )
        det = self.marker.detect(audio.samples, audio.sample_rate)
        result: dict[str, Any] = det.to_dict()
        result["duration_s"] = round(audio.duration, 3)
        result["input_sha256"] = hashlib.sha256(data).hexdigest()
        return result

    def generation(self, watermark_id: int) -> dict[str, Any] | None:
        with self.db.session() as s:
            row = s.get(Generation, watermark_id)
            if row is None:
                return None
            return {
                "generation_id": row.id,
                "watermark_id": row.watermark_id,
                "voice_id": row.voice_id,
                "key_id": row.key_id,
                "created_at": row.created_at.isoformat(),
                "format": row.format,
                "duration_s": row.duration_s,
                "output_sha256": row.output_sha256,
                "text_sha256": row.text_sha256,
                "text_chars": row.text_chars,
            }

    def _detection_target(self, result: dict[str, Any]) -> str:
        """What was checked: the generation the mark traces to, else the mark's payload, else the file."""
        if result["present"]:
            record = result.get("generation") or self.generation(int(result["payload"]))
            if record is not None:
                return f"generation:{record['generation_id']}"
            return f"watermark:{result['payload']}"
        return f"file:sha256:{str(result['input_sha256'])[:16]}"

    def record_detection(self, result: dict[str, Any], actor: str | None) -> None:
        self.audit.record(
            "watermark.detected",
            actor=actor,
            target=self._detection_target(result),
            details={
                "present": result["present"],
                "confidence": result["confidence"],
                "input_sha256": result["input_sha256"],
            },
        )
