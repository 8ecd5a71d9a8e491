"""A cloned voice's life after enrollment: read, rename, revoke, renew, expire, erase.

Status is enforced when the voice is used, not by a background job: every synthesis loads the voice row,
so a revocation or an expiry takes effect on the very next request. Payloads (embedding, style, consent
evidence, retained samples) live in the blob store, sealed with the envelope key and bound to their place
by associated data ``voice:<id>:<what>``; rows only hold their keys.

Erasure deletes every blob under ``voices/<id>/`` (embedding, style, adapted decoder weights, samples,
every consent's evidence; decrypted copies held in memory are dropped too), every stored output spoken
with the voice (batch clips, through the ``erase_outputs`` hook the service wires to the batch module),
clears the row's payload columns and names, scrubs the linked consents, and leaves the row as an
``erased`` tombstone (so the id is never reused and answers 404) plus an audit entry.
"""

from __future__ import annotations

import datetime as dt
import io
import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from numpy.typing import NDArray
from sqlalchemy import or_, select

from voxvault.engines.base import AdaptedWeights, FloatArray
from voxvault.errors import VoxError
from voxvault.governance.audit import AuditTrail
from voxvault.governance.crypto import Envelope
from voxvault.store.blobs import BlobStore
from voxvault.store.db import Database
from voxvault.store.models import Consent, Voice, utcnow

log = logging.getLogger(__name__)

ERASED = "[erased]"
ADAPTED_CACHE = 8  # voices whose decrypted adapted weights stay in memory (150 kB each for the biases)


def voice_prefix(voice_id: str) -> str:
    return f"voices/{voice_id}/"


def blob_key(voice_id: str, what: str) -> str:
    return f"{voice_prefix(voice_id)}{what}"


def aad(voice_id: str, what: str) -> str:
    return f"voice:{voice_id}:{what}"


def array_bytes(array: FloatArray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(array, dtype=np.float32), allow_pickle=False)
    return buf.getvalue()


def array_from_bytes(data: bytes) -> FloatArray:
    return np.asarray(np.load(io.BytesIO(data), allow_pickle=False), dtype=np.float32)


def pack_deltas(deltas: Mapping[str, NDArray[Any]]) -> bytes:
    """Adapted-weight deltas as float16 in an ``.npz`` (small next to the weights; float16 keeps ~1e-6)."""
    buf = io.BytesIO()
    np.savez(buf, **{name: np.asarray(d, dtype=np.float16) for name, d in deltas.items()})  # type: ignore[arg-type]
    return buf.getvalue()


def unpack_deltas(name: str, data: bytes) -> AdaptedWeights:
    with np.load(io.BytesIO(data), allow_pickle=False) as archive:
        deltas = {key: archive[key].astype(np.float32) for key in archive.files}
    if not deltas or not all(np.all(np.isfinite(d)) for d in deltas.values()):
        raise VoxError("adapted_weights_corrupt", "the voice's adapted weights are unreadable", 409)
    return AdaptedWeights(name=name, deltas=deltas)


def effective_status(row: Voice, consent: Consent | None, now: dt.datetime | None = None) -> str:
    """What the voice is *now*: a stored ``active`` past its expiry reads ``expired``."""
    now = now or utcnow()
    if row.status in ("erased", "revoked", "pending"):
        return row.status
    if consent is not None and consent.status == "revoked":
        return "revoked"
    if row.status == "expired" or (row.expires_at is not None and row.expires_at <= now):
        return "expired"
    return row.status


@dataclass(frozen=True)
class ClonedVoice:
    id: str
    name: str
    status: str
    expires_at: dt.datetime | None


@dataclass(frozen=True)
class OutputErasure:
    """What erasing a voice did to the outputs made with it (batch clips)."""

    outputs_deleted: int = 0
    items_scrubbed: int = 0
    exported_left: int = 0  # files in folders/buckets the user exported to: theirs, not deleted


class VoiceRegistry:
    """Cloned voices of a project. ``project_id=None`` means the local operator (CLI, Python API)."""

    def __init__(
        self,
        db: Database,
        blobs: BlobStore,
        envelope: Envelope,
        audit: AuditTrail,
        erase_outputs: Callable[[str], OutputErasure] | None = None,
    ) -> None:
        self.db = db
        self.blobs = blobs
        self.envelope = envelope
        self.audit = audit
        self.erase_outputs = erase_outputs
        self._adapted: OrderedDict[str, AdaptedWeights] = OrderedDict()
        self._adapted_lock = threading.Lock()

    # -- sealed payloads ----------------------------------------------------------------------------------
    def put_sealed(self, voice_id: str, what: str, data: bytes) -> str:
        key = blob_key(voice_id, what)
        self.blobs.put(key, self.envelope.seal(data, aad(voice_id, what)))
        return key

    def get_sealed(self, voice_id: str, what: str) -> bytes:
        return self.envelope.open(self.blobs.get(blob_key(voice_id, what)), aad(voice_id, what))

    def delete_all_blobs(self, voice_id: str) -> int:
        keys = list(self.blobs.list(voice_prefix(voice_id)))
        for key in keys:
            self.blobs.delete(key)
        return len(keys)

    # -- reading ------------------------------------------------------------------------------------------
    def _load(self, voice_id: str, project_id: str | None) -> tuple[Voice, Consent | None]:
        with self.db.session() as s:
            row = s.get(Voice, voice_id)
            consent = s.get(Consent, row.consent_id) if row is not None and row.consent_id else None
        if (
            row is None
            or row.kind != "cloned"
            or row.status == "erased"
            or (project_id is not None and row.project_id != project_id)
        ):
            raise VoxError("voice_not_found", f"no voice {voice_id!r}; GET /v1/voices lists the voices", 404)
        return row, consent

    def get(self, voice_id: str, project_id: str | None) -> dict[str, Any]:
        row, consent = self._load(voice_id, project_id)
        return self.describe(row, consent)

    def exists(self, voice_id: str) -> bool:
        with self.db.session() as s:
            return s.get(Voice, voice_id) is not None

    @staticmethod
    def describe(row: Voice, consent: Consent | None) -> dict[str, Any]:
        meta = dict(row.meta or {})
        return {
            "voice_id": row.id,
            "name": row.name,
            "kind": row.kind,
            "status": effective_status(row, consent),
            "engine": row.engine,
            "created_at": row.created_at,
            "updated_at": row.updated_at,
            "expires_at": row.expires_at,
            "revoked_at": row.revoked_at,
            "consent": None
            if consent is None
            else {
                "consent_id": consent.id,
                "status": consent.status,
                "speaker_name": consent.speaker_name,
                "organization": consent.organization_name,
                "purpose": consent.purpose,
                "verified_at": consent.verified_at,
                "expires_at": consent.expires_at,
            },
            "retention": row.retention or {},
            "scores": meta.get("scores", {}),
            "conditioning": meta.get("conditioning", {}),
        }

    def list(self, project_id: str | None) -> list[dict[str, Any]]:
        with self.db.session() as s:
            query = select(Voice).where(Voice.kind == "cloned", Voice.status != "erased")
            if project_id is not None:
                query = query.where(Voice.project_id == project_id)
            rows = list(s.scalars(query.order_by(Voice.created_at)))
            consents = {
                c.id: c
                for c in s.scalars(
                    select(Consent).where(Consent.id.in_([r.consent_id for r in rows if r.consent_id]))
                )
            }
        return [self.describe(r, consents.get(r.consent_id or "")) for r in rows]

    def style_for(self, voice_id: str, project_id: str | None) -> FloatArray:
        """The style to speak with, after the consent checks; raises 403/404 when the voice may not speak."""
        self._speakable(voice_id, project_id)
        return array_from_bytes(self.get_sealed(voice_id, "style"))

    def speaking_parts(
        self, voice_id: str, project_id: str | None
    ) -> tuple[FloatArray, AdaptedWeights | None]:
        """Style and adapted decoder weights to speak with, after the consent checks (one row read)."""
        row = self._speakable(voice_id, project_id)
        return array_from_bytes(self.get_sealed(voice_id, "style")), self._adapted_of(row)

    def _speakable(self, voice_id: str, project_id: str | None) -> Voice:
        """The voice's row when it may speak now; 403 revoked/expired, 404 unknown, 409 not ready."""
        row, consent = self._load(voice_id, project_id)
        status = effective_status(row, consent)
        if status == "revoked":
            raise VoxError(
                "consent_revoked", f"consent for voice {voice_id!r} was revoked; it cannot speak", 403
            )
        if status == "expired":
            raise VoxError(
                "consent_expired",
                f"consent for voice {voice_id!r} expired; renew it with a new consent recording",
                403,
            )
        if status != "active" or row.style_blob is None:
            raise VoxError("voice_not_ready", f"voice {voice_id!r} is not ready to speak", 409)
        return row

    def adapted_for(self, voice_id: str, project_id: str | None) -> AdaptedWeights | None:
        """The voice's adapted decoder weights (``cloning/adapt/decoder.py``), or None.

        Decrypted once and kept for the last few voices; erasing a voice drops its entry.
        """
        return self._adapted_of(self._load(voice_id, project_id)[0])

    def _adapted_of(self, row: Voice) -> AdaptedWeights | None:
        voice_id = row.id
        decoder = (row.meta or {}).get("decoder") or {}
        what = decoder.get("current")
        if not what:
            return None
        key = blob_key(voice_id, what)
        with self._adapted_lock:
            hit = self._adapted.get(key)
            if hit is not None:
                self._adapted.move_to_end(key)
                return hit
        adapted = unpack_deltas(key, self.get_sealed(voice_id, what))
        if ((decoder.get("runtime") or {}).get(what) or {}).get("as_trained"):
            adapted = replace(adapted, as_trained=True)  # measured closer through PyTorch (finetune.py)
        with self._adapted_lock:
            self._adapted[key] = adapted
            while len(self._adapted) > ADAPTED_CACHE:
                self._adapted.popitem(last=False)
        return adapted

    def forget_adapted(self, voice_id: str) -> None:
        """Drop the voice's decrypted adapted weights from memory (erasure, a replaced adaptation)."""
        prefix = voice_prefix(voice_id)
        with self._adapted_lock:
            for key in [k for k in self._adapted if k.startswith(prefix)]:
                del self._adapted[key]

    def embedding_for(self, voice_id: str, project_id: str | None) -> FloatArray:
        row, _ = self._load(voice_id, project_id)
        if row.embedding_blob is None:
            raise VoxError("voice_not_ready", f"voice {voice_id!r} has no embedding", 409)
        return array_from_bytes(self.get_sealed(voice_id, "embedding"))

    # -- changes ------------------------------------------------------------------------------------------
    def rename(
        self, voice_id: str, project_id: str | None, name: str, *, actor: str | None
    ) -> dict[str, Any]:
        name = " ".join((name or "").split())
        if not name or len(name) > 200:
            raise VoxError("invalid_name", "a voice name is 1-200 characters", 422)
        self._load(voice_id, project_id)
        with self.db.session() as s:
            row = s.get(Voice, voice_id)
            assert row is not None
            row.name = name
        self.audit.record("voice.renamed", actor=actor, target=voice_id)
        return self.get(voice_id, project_id)

    def revoke(self, voice_id: str, project_id: str | None, *, actor: str | None) -> dict[str, Any]:
        """The speaker withdraws consent: the voice stops speaking at once; its data stays until erasure."""
        self._load(voice_id, project_id)
        now = utcnow()
        with self.db.session() as s:
            row = s.get(Voice, voice_id)
            assert row is not None
            already = row.status == "revoked"
            row.status = "revoked"
            row.revoked_at = row.revoked_at or now
            if row.consent_id:
                consent = s.get(Consent, row.consent_id)
                if consent is not None and consent.status != "revoked":
                    consent.status = "revoked"
                    consent.revoked_at = now
        if not already:
            self.audit.record("voice.revoked", actor=actor, target=voice_id)
        return self.get(voice_id, project_id)

    def renew(
        self, voice_id: str, project_id: str | None, consent_id: str, *, actor: str | None
    ) -> dict[str, Any]:
        """Attach a newly verified consent (recorded for this voice) and make the voice active again."""
        self._load(voice_id, project_id)
        now = utcnow()
        with self.db.session() as s:
            consent = s.get(Consent, consent_id)
            if consent is None or (project_id is not None and consent.project_id != project_id):
                raise VoxError("consent_not_found", f"no consent {consent_id!r}", 404)
            if consent.status != "verified" or (consent.scores or {}).get("voice_id") != voice_id:
                raise VoxError(
                    "consent_not_verified",
                    "renewal needs a consent verified for this voice (POST /v1/consents/{id}/verify)",
                    409,
                )
            if consent.expires_at is not None and consent.expires_at <= now:
                raise VoxError("consent_expired", "that consent has already expired", 409)
            row = s.get(Voice, voice_id)
            assert row is not None
            if row.consent_id == consent_id:
                raise VoxError("consent_in_use", "that consent is already this voice's consent", 409)
            previous = s.get(Consent, row.consent_id) if row.consent_id else None
            if previous is not None and previous.status == "verified":
                previous.status = "expired"
            row.consent_id = consent_id
            row.expires_at = consent.expires_at
            row.status = "active"
            row.revoked_at = None
        self.audit.record("voice.renewed", actor=actor, target=voice_id, details={"consent_id": consent_id})
        return self.get(voice_id, project_id)

    def erase(self, voice_id: str, project_id: str | None, *, actor: str | None) -> dict[str, Any]:
        """Delete every payload of the voice and scrub its rows; safe to retry after a crash."""
        self._load(voice_id, project_id)
        prefix = voice_prefix(voice_id)
        deleted = self.delete_all_blobs(voice_id)
        now = utcnow()
        with self.db.session() as s:
            row = s.get(Voice, voice_id)
            assert row is not None
            linked = list(
                s.scalars(
                    select(Consent).where(
                        or_(Consent.id == row.consent_id, Consent.evidence_blob.startswith(prefix))
                    )
                )
            )
            linked += [
                c
                for c in s.scalars(select(Consent).where(Consent.project_id == row.project_id))
                if (c.scores or {}).get("voice_id") == voice_id and c not in linked
            ]
            for consent in linked:
                consent.speaker_name = ERASED
                consent.organization_name = ERASED
                consent.purpose = ERASED
                consent.script = ERASED
                consent.scores = {"erased_at": now.isoformat()}
                consent.evidence_blob = None
                if consent.status in ("pending", "verified"):
                    consent.status = "revoked"
                consent.revoked_at = consent.revoked_at or now
                # recording_sha256 stays: it is not the audio, and it keeps refusing replays of it.
            row.name = ERASED
            row.status = "erased"
            row.embedding_blob = None
            row.style_blob = None
            row.previous_style_blob = None
            row.meta = {}
            row.retention = {"erased_at": now.isoformat()}
            row.erased_at = now
            consents = len(linked)
        # Blobs written by a concurrent renewal between the first sweep and the commit go too.
        deleted += self.delete_all_blobs(voice_id)
        self.forget_adapted(voice_id)
        # After the row says erased, no new item can speak with the voice: its outputs go now.
        outputs = self.erase_outputs(voice_id) if self.erase_outputs is not None else OutputErasure()
        self.audit.record(
            "voice.erased",
            actor=actor,
            target=voice_id,
            details={
                "blobs_deleted": deleted,
                "consents": consents,
                "outputs_deleted": outputs.outputs_deleted,
                "items_scrubbed": outputs.items_scrubbed,
                "exported_outputs_left": outputs.exported_left,
            },
        )
        # Old copies of the scrubbed rows must not stay in the database files (SQLite WAL; finding 6).
        self.db.scrub()
        return {
            "voice_id": voice_id,
            "status": "erased",
            "blobs_deleted": deleted,
            "consents_scrubbed": consents,
            "outputs_deleted": outputs.outputs_deleted,
            "batch_items_scrubbed": outputs.items_scrubbed,
            "exported_outputs_left": outputs.exported_left,
        }

    def sweep(self, now: dt.datetime | None = None) -> dict[str, int]:
        """Housekeeping: mark voices past their consent's expiry, delete samples kept past their date."""
        now = now or utcnow()
        expired = samples = 0
        with self.db.session() as s:
            for row in s.scalars(
                select(Voice).where(Voice.kind == "cloned", Voice.status == "active", Voice.expires_at <= now)
            ):
                row.status = "expired"
                expired += 1
            for row in s.scalars(select(Voice).where(Voice.kind == "cloned", Voice.status != "erased")):
                kept = dict((row.retention or {}).get("samples") or {})
                until = kept.get("until")
                if kept.get("kept") and until and dt.datetime.fromisoformat(until) <= now:
                    for key in list(self.blobs.list(blob_key(row.id, "samples/"))):
                        self.blobs.delete(key)
                    row.retention = {
                        **(row.retention or {}),
                        "samples": {
                            "kept": False,
                            "count": kept.get("count", 0),
                            "deleted_at": now.isoformat(),
                        },
                    }
                    samples += 1
        if expired or samples:
            self.audit.record("voice.sweep", details={"expired": expired, "samples_deleted": samples})
        return {"expired": expired, "samples_deleted": samples}
