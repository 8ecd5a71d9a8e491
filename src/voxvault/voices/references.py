"""What a renewal's recording is judged against: the voice's own audio, file by file, not only its pool.

Renewal (``POST /v1/consents/{id}/verify``) used to compare the new recording with the voice's stored GE2E
embedding alone, the one encoder the project's clones are fitted to: a clone of the voice (made from its
own output or from the speaker's public clips) could renew a revoked or expired voice. It now passes the
same per-file GE2E + CAM++ check as enrollment (:func:`voxvault.voices.identity.check_each_file`), against:

- the consent recording the voice was enrolled with (kept, sealed, in its evidence zip; it was itself
  judged against every sample file), and
- every sample file still retained (``retain_samples_days``).

Later renewals' recordings are not references: a chain of renewals each close to the last could drift.
"""

from __future__ import annotations

import io
import zipfile

from sqlalchemy import select

from voxvault.errors import VoxError
from voxvault.store.db import Database
from voxvault.store.models import Consent
from voxvault.voices.lifecycle import VoiceRegistry, voice_prefix

ENROLLMENT_RECORDING = "enrollment recording"


def recording_of(evidence: bytes) -> bytes:
    """The recording, exactly as uploaded, from a consent evidence zip (``recording.<ext>``)."""
    with zipfile.ZipFile(io.BytesIO(evidence)) as zf:
        names = [n for n in zf.namelist() if n.startswith("recording.")]
        if len(names) != 1:
            raise ValueError("consent evidence without exactly one recording")
        return zf.read(names[0])


def renewal_references(db: Database, registry: VoiceRegistry, voice_id: str) -> list[tuple[str, bytes]]:
    """(label, audio bytes) of each file a renewal must match; 409 when the voice has none left."""
    prefix = voice_prefix(voice_id)
    with db.session() as s:
        first = s.scalars(
            select(Consent.id)
            .where(Consent.evidence_blob.startswith(f"{prefix}consents/"), Consent.verified_at.is_not(None))
            .order_by(Consent.verified_at, Consent.id)
            .limit(1)
        ).first()
    out: list[tuple[str, bytes]] = []
    if first is not None:
        out.append((ENROLLMENT_RECORDING, recording_of(registry.get_sealed(voice_id, f"consents/{first}"))))
    samples = sorted(
        (k[len(prefix) :] for k in registry.blobs.list(f"{prefix}samples/")),
        key=lambda what: int(what.rsplit("/", 1)[-1]) if what.rsplit("/", 1)[-1].isdigit() else 0,
    )
    out += [(f"retained {what}", registry.get_sealed(voice_id, what)) for what in samples]
    if not out:
        raise VoxError(
            "voice_not_ready",
            f"voice {voice_id!r} keeps no recording to judge a renewal against; enroll it again",
            409,
        )
    return out
