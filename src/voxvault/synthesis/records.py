"""Generation records: one row per synthesis, created before audio exists so its id can be watermarked.

The row never holds the text or the audio: only their digests (the text's keyed, see
governance/text_hash.py; the audit entry's ``text_hash`` names how), the text length, the voice, the
key, duration and latency. Finishing a generation also writes the audit entry for it.
"""

from __future__ import annotations

from dataclasses import dataclass

from voxvault.governance.audit import AuditTrail
from voxvault.store.db import Database
from voxvault.store.models import Generation
from voxvault.synthesis.pipeline import PreparedSpeech


@dataclass(frozen=True)
class GenerationTicket:
    id: str
    watermark_id: int


class GenerationLog:
    def __init__(self, db: Database, audit: AuditTrail, text_hash: str = "sha256") -> None:
        self.db = db
        self.audit = audit
        self.text_hash = text_hash  # what PreparedSpeech.text_sha256 holds, e.g. hmac-sha256

    def begin(self, prepared: PreparedSpeech, key_id: str | None) -> GenerationTicket:
        with self.db.session() as s:
            row = Generation(
                voice_id=prepared.voice.voice_id,
                key_id=key_id,
                text_sha256=prepared.text_sha256,
                text_chars=prepared.text_chars,
                format=prepared.format,
                duration_s=0.0,
                latency_ms=0.0,
            )
            s.add(row)
            s.flush()
            return GenerationTicket(row.id, row.watermark_id)

    def finish(
        self,
        ticket: GenerationTicket,
        *,
        output_sha256: str,
        duration_s: float,
        latency_ms: float,
        key_id: str | None,
        prepared: PreparedSpeech,
        completed: bool = True,
    ) -> None:
        with self.db.session() as s:
            row = s.get(Generation, ticket.watermark_id)
            if row is not None:
                row.output_sha256 = output_sha256
                row.duration_s = duration_s
                row.latency_ms = latency_ms
        self.audit.record(
            "speech.created" if completed else "speech.cancelled",
            actor=key_id,
            target=prepared.voice.voice_id,
            details={
                "generation_id": ticket.id,
                "watermark_id": ticket.watermark_id,
                "text_sha256": prepared.text_sha256,
                "text_hash": self.text_hash,
                "text_chars": prepared.text_chars,
                "output_sha256": output_sha256,
                "format": prepared.format,
                "duration_s": round(duration_s, 3),
                "latency_ms": round(latency_ms, 1),
            },
        )
