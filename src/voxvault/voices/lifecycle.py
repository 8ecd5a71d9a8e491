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
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np
from numpy.typing import NDArray
from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from voxvault.cloning.cloner import ClonedVoice
from voxvault.cloning.instant_decoder import INSTANT_DECODER_BLOB
from voxvault.engines.base import AdaptedWeights, FloatArray
from voxvault.errors import VoxError
from voxvault.governance.audit import AuditTrail
from voxvault.governance.crypto import Envelope
from voxvault.store.blobs import BlobStore
from voxvault.store.db import Database
from voxvault.store.models import Consent, Voice, utcnow
from voxvault.voices.consent import ERASED, ConsentService

log = logging.getLogger(__name__)

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


# -- Voice.meta: its typed shape, read and written only here ------------------------------------------------
@dataclass(frozen=True)
class Adaptation:
    """What the voice's last adaptation job made (merged into the ``conditioning`` the API shows)."""

    adapt_job: str
    similarity: float
    recall: float
    rolled_back: bool = False
    # served vs trained runtime's similarity on unseen sentences, and which speaks it (RuntimeChoice)
    runtime: dict[str, Any] | None = None


@dataclass(frozen=True)
class Conditioning:
    """How the voice's style (and decoder weights) were made; ``GET /v1/voices/{id}`` shows its JSON."""

    method: str  # instant_map | preset_blend (enrollment), finetuned | decoder (adaptation)
    weights: dict[str, float] = field(default_factory=dict)
    decoder_step: bool = False  # enrollment gave the voice its own decoder biases
    pitch_factor: float | None = None  # the factor on the F0 contour that gives the speaker's pitch
    adaptation: Adaptation | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "method": self.method,
            "weights": self.weights,
            "decoder_step": self.decoder_step,
            "pitch_factor": self.pitch_factor,
        }
        return out if self.adaptation is None else {**out, **asdict(self.adaptation)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Conditioning:
        adaptation = None
        if data.get("adapt_job") is not None:
            adaptation = Adaptation(
                adapt_job=str(data["adapt_job"]),
                similarity=float(data.get("similarity", 0.0)),
                recall=float(data.get("recall", 0.0)),
                rolled_back=bool(data.get("rolled_back", False)),
                runtime=data.get("runtime"),
            )
        factor = data.get("pitch_factor")
        return cls(
            method=str(data.get("method", "")),
            weights=dict(data.get("weights") or {}),
            decoder_step=bool(data.get("decoder_step", False)),
            pitch_factor=None if factor is None else float(factor),
            adaptation=adaptation,
        )


@dataclass(frozen=True)
class DecoderState:
    """Which decoder-weight blobs (names under the voice's prefix) the voice speaks with; None: shipped."""

    current: str | None = None
    previous: str | None = None  # what rollback swaps back to
    runtime: dict[str, dict[str, Any]] = field(default_factory=dict)  # blob -> RuntimeChoice.to_dict()

    def as_trained(self, what: str) -> bool:
        return bool((self.runtime.get(what) or {}).get("as_trained"))

    def to_json(self) -> dict[str, Any]:
        return {"current": self.current, "previous": self.previous, "runtime": self.runtime}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> DecoderState:
        return cls(data.get("current"), data.get("previous"), dict(data.get("runtime") or {}))


@dataclass(frozen=True)
class VoiceMeta:
    """``Voice.meta``: the enrollment's scores, how the voice was made, and its decoder weights."""

    scores: dict[str, Any] = field(default_factory=dict)  # EnrollmentChecks.to_json()
    conditioning: Conditioning | None = None
    samples: int = 0
    decoder: DecoderState = field(default_factory=DecoderState)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"scores": self.scores}
        if self.conditioning is not None:
            out["conditioning"] = self.conditioning.to_json()
        return {**out, "samples": self.samples, "decoder": self.decoder.to_json()}

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None) -> VoiceMeta:
        data = data or {}
        conditioning = data.get("conditioning")
        return cls(
            scores=dict(data.get("scores") or {}),
            conditioning=Conditioning.from_json(conditioning) if conditioning else None,
            samples=int(data.get("samples") or 0),
            decoder=DecoderState.from_json(data.get("decoder") or {}),
        )


# -- typed results -----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class VoiceConsent:
    consent_id: str
    status: str
    speaker_name: str
    organization: str
    purpose: str
    verified_at: dt.datetime | None
    expires_at: dt.datetime | None


@dataclass(frozen=True)
class VoiceView:
    """A cloned voice as ``GET /v1/voices/{id}`` shows it (``asdict`` is that JSON's source)."""

    voice_id: str
    name: str
    kind: str
    status: str
    engine: str
    created_at: dt.datetime | None
    updated_at: dt.datetime | None
    expires_at: dt.datetime | None
    revoked_at: dt.datetime | None
    consent: VoiceConsent | None
    retention: dict[str, Any]
    scores: dict[str, Any]
    conditioning: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Erasure:
    """What erasing a voice deleted (``DELETE /v1/voices/{id}``)."""

    voice_id: str
    status: str
    blobs_deleted: int
    consents_scrubbed: int
    outputs_deleted: int
    batch_items_scrubbed: int
    exported_outputs_left: int

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Sweep:
    """What a housekeeping sweep changed: voices marked expired, voices whose kept samples were deleted."""

    expired: int
    samples_deleted: int


@dataclass(frozen=True)
class NewVoice:
    """A voice enrollment has verified, as the registry stores it."""

    id: str
    project_id: str
    name: str
    engine: str
    consent_id: str
    expires_at: dt.datetime | None
    embedding: FloatArray
    clone: ClonedVoice
    samples: Sequence[bytes]  # raw sample files, sealed and kept only when ``samples_until`` is set
    samples_until: dt.datetime | None
    scores: dict[str, Any]  # EnrollmentChecks.to_json()


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

    def get(self, voice_id: str, project_id: str | None) -> VoiceView:
        row, consent = self._load(voice_id, project_id)
        return self.describe(row, consent)

    def exists(self, voice_id: str) -> bool:
        with self.db.session() as s:
            return s.get(Voice, voice_id) is not None

    @staticmethod
    def describe(row: Voice, consent: Consent | None) -> VoiceView:
        meta = VoiceMeta.from_json(row.meta)
        return VoiceView(
            voice_id=row.id,
            name=row.name,
            kind=row.kind,
            status=effective_status(row, consent),
            engine=row.engine,
            created_at=row.created_at,
            updated_at=row.updated_at,
            expires_at=row.expires_at,
            revoked_at=row.revoked_at,
            consent=None
            if consent is None
            else VoiceConsent(
                consent_id=consent.id,
                status=consent.status,
                speaker_name=consent.speaker_name,
                organization=consent.organization_name,
                purpose=consent.purpose,
                verified_at=consent.verified_at,
                expires_at=consent.expires_at,
            ),
            retention=row.retention or {},
            scores=meta.scores,
            conditioning={} if meta.conditioning is None else meta.conditioning.to_json(),
        )

    def list(self, project_id: str | None) -> list[VoiceView]:
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
        decoder = VoiceMeta.from_json(row.meta).decoder
        what = decoder.current
        if not what:
            return None
        key = blob_key(voice_id, what)
        with self._adapted_lock:
            hit = self._adapted.get(key)
            if hit is not None:
                self._adapted.move_to_end(key)
                return hit
        adapted = unpack_deltas(key, self.get_sealed(voice_id, what))
        if decoder.as_trained(what):
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
    def create(
        self, voice: NewVoice, *, at: dt.datetime, within: Callable[[Session], None]
    ) -> dict[str, Any]:
        """Seal the voice's payloads under its prefix, then write its row in one transaction with
        ``within`` (enrollment: the consent turning ``verified``); returns the retention record.

        The caller removes the blobs (``delete_all_blobs``) if this raises, and writes the audit entries.
        """
        clone, now = voice.clone, at
        embedding_key = self.put_sealed(voice.id, "embedding", array_bytes(voice.embedding))
        style_key = self.put_sealed(voice.id, "style", array_bytes(clone.style))
        if clone.decoder is not None:  # the voice's own decoder biases (cloning/instant_decoder.py)
            self.put_sealed(voice.id, INSTANT_DECODER_BLOB, pack_deltas(dict(clone.decoder)))
        if voice.samples_until is not None:
            for i, data in enumerate(voice.samples):
                self.put_sealed(voice.id, f"samples/{i}", data)
            kept: dict[str, Any] = {
                "kept": True,
                "count": len(voice.samples),
                "until": voice.samples_until.isoformat(),
            }
        else:
            kept = {"kept": False, "count": len(voice.samples), "deleted_at": now.isoformat()}
        retention: dict[str, Any] = {
            "samples": kept,
            "embedding": {"kept": True, "until": "erasure"},
            "style": {"kept": True, "until": "erasure"},
            "consent_evidence": {"kept": True, "until": "erasure"},
        }
        if clone.decoder is not None:
            retention["decoder"] = {"kept": True, "until": "erasure"}
        factor = clone.pitch_factor
        meta = VoiceMeta(
            scores=voice.scores,
            conditioning=Conditioning(
                method=clone.method,
                weights=clone.weights,
                decoder_step=clone.decoder is not None,
                pitch_factor=None if factor is None else round(factor, 4),
            ),
            samples=len(voice.samples),
            decoder=DecoderState(current=INSTANT_DECODER_BLOB if clone.decoder is not None else None),
        )
        with self.db.session() as s:
            within(s)
            s.add(
                Voice(
                    id=voice.id,
                    project_id=voice.project_id,
                    name=voice.name,
                    kind="cloned",
                    status="active",
                    engine=voice.engine,
                    consent_id=voice.consent_id,
                    embedding_blob=embedding_key,
                    style_blob=style_key,
                    meta=meta.to_json(),
                    retention=retention,
                    created_at=now,
                    updated_at=now,
                    expires_at=voice.expires_at,
                )
            )
        return retention

    def adopt_adaptation(
        self,
        voice_id: str,
        project_id: str | None,
        *,
        style: FloatArray,
        adaptation: Adaptation,
        decoder: str | None,
        within: Callable[[Session], None],
    ) -> None:
        """Switch the voice to an adapted style (and decoder blob ``decoder``; None: shipped), keeping what it
        had for rollback, in one transaction with ``within`` (the job turning ``succeeded``). A decoder blob
        no longer current nor previous is deleted."""
        previous = self.style_for(voice_id, project_id)
        prev_key = self.put_sealed(voice_id, "style-previous", array_bytes(previous))
        style_key = self.put_sealed(voice_id, "style", array_bytes(style))
        dropped: str | None = None
        with self.db.session() as s:
            row = s.get(Voice, voice_id)
            if row is not None:
                row.style_blob, row.previous_style_blob = style_key, prev_key
                meta = VoiceMeta.from_json(row.meta)
                old = meta.decoder
                kept = {decoder, old.current}
                runtimes = {k: v for k, v in old.runtime.items() if k in kept}
                if decoder is not None and adaptation.runtime is not None:
                    runtimes[decoder] = adaptation.runtime
                if old.previous not in (None, decoder, old.current):
                    dropped = old.previous
                method = "decoder" if decoder else "finetuned"
                base = meta.conditioning or Conditioning(method=method)
                row.meta = replace(
                    meta,
                    decoder=DecoderState(current=decoder, previous=old.current, runtime=runtimes),
                    conditioning=replace(base, method=method, adaptation=adaptation),
                ).to_json()
            within(s)
        if dropped is not None:
            self.blobs.delete(blob_key(voice_id, dropped))
            self.forget_adapted(voice_id)

    def roll_back(self, voice_id: str, project_id: str | None, *, actor: str | None) -> VoiceView:
        """Swap the current and the previous style and decoder weights (rolling back twice restores the
        adapted ones)."""
        current = self.style_for(voice_id, project_id)
        with self.db.session() as s:
            row = s.get(Voice, voice_id)
            has_previous = row is not None and row.previous_style_blob is not None
        if not has_previous:
            raise VoxError(
                "no_previous_style", f"voice {voice_id!r} has no earlier style to roll back to", 409
            )
        previous = array_from_bytes(self.get_sealed(voice_id, "style-previous"))
        self.put_sealed(voice_id, "style", array_bytes(previous))
        self.put_sealed(voice_id, "style-previous", array_bytes(current))
        with self.db.session() as s:
            row = s.get(Voice, voice_id)
            if row is not None:
                meta = VoiceMeta.from_json(row.meta)
                cond = meta.conditioning
                if cond is not None and cond.adaptation is not None:
                    flipped = replace(cond.adaptation, rolled_back=not cond.adaptation.rolled_back)
                    cond = replace(cond, adaptation=flipped)
                old = meta.decoder
                row.meta = replace(
                    meta, conditioning=cond, decoder=replace(old, current=old.previous, previous=old.current)
                ).to_json()
        self.audit.record("voice.style_rolled_back", actor=actor, target=voice_id, details={})
        return self.get(voice_id, project_id)

    def rename(self, voice_id: str, project_id: str | None, name: str, *, actor: str | None) -> VoiceView:
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

    def revoke(self, voice_id: str, project_id: str | None, *, actor: str | None) -> VoiceView:
        """The speaker withdraws consent: the voice stops speaking at once; its data stays until erasure."""
        self._load(voice_id, project_id)
        now = utcnow()
        with self.db.session() as s:
            row = s.get(Voice, voice_id)
            assert row is not None
            already = row.status == "revoked"
            row.status = "revoked"
            row.revoked_at = row.revoked_at or now
            ConsentService.revoke_in(s, row.consent_id, now)
        if not already:
            self.audit.record("voice.revoked", actor=actor, target=voice_id)
        return self.get(voice_id, project_id)

    def renew(
        self, voice_id: str, project_id: str | None, consent_id: str, *, actor: str | None
    ) -> VoiceView:
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
            ConsentService.supersede_in(s, row.consent_id)
            row.consent_id = consent_id
            row.expires_at = consent.expires_at
            row.status = "active"
            row.revoked_at = None
        self.audit.record("voice.renewed", actor=actor, target=voice_id, details={"consent_id": consent_id})
        return self.get(voice_id, project_id)

    def erase(self, voice_id: str, project_id: str | None, *, actor: str | None) -> Erasure:
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
            ConsentService.scrub_in(s, linked, now)
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
        return Erasure(
            voice_id=voice_id,
            status="erased",
            blobs_deleted=deleted,
            consents_scrubbed=consents,
            outputs_deleted=outputs.outputs_deleted,
            batch_items_scrubbed=outputs.items_scrubbed,
            exported_outputs_left=outputs.exported_left,
        )

    def sweep(self, now: dt.datetime | None = None) -> Sweep:
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
        return Sweep(expired=expired, samples_deleted=samples)
