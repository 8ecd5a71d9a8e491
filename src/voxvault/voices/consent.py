"""Consent requests: the script a speaker reads, its one-time challenge, and the consent's state.

A consent starts ``pending`` with a script that names the speaker, the organisation and the purpose and
ends with a one-time code of random words. The code is returned to the caller once and stored only as a
salted scrypt hash; the enrollment request must echo it (so the service can tell which words to listen
for without keeping them). The code is valid for ten minutes and is spent by the first enrollment attempt
that gets past the request checks, whatever that attempt's outcome (``verified`` or ``refused``), so a
code can never be tried twice.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import re
import secrets
import unicodedata
from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from voxvault.engines.asr import normalize_text
from voxvault.errors import VoxError
from voxvault.governance.audit import AuditTrail
from voxvault.store.db import Database
from voxvault.store.models import Consent, new_id, utcnow
from voxvault.voices.checks import EnrollmentChecks

# Two- and three-syllable nouns, pairwise distinct in sound, all in PocketSphinx's dictionary, none a
# homophone of a common function word. bench/consent_calibration.py measures how well each is heard.
CHALLENGE_WORDS: tuple[str, ...] = (
    "apple", "banana", "river", "garden", "yellow", "pencil", "tiger", "window", "music", "silver",
    "orange", "rocket", "winter", "purple", "island", "doctor", "coffee", "market", "dragon", "planet",
    "forest", "guitar", "monkey", "ocean", "rabbit", "salad", "tomato", "zebra", "lemon", "candle",
    "pillow", "basket", "turtle", "blanket", "violin", "jacket", "mountain", "rainbow", "dolphin", "penguin",
)  # fmt: skip
CHALLENGE_LENGTH = 5
CODE_LEAD_IN = "My one-time code is"
MASK = "<one-time code>"

ERASED = "[erased]"  # what erasure leaves in a personal field
MAX_NAME_CHARS = 200
MAX_PURPOSE_CHARS = 300
_SCRYPT = {"n": 2**14, "r": 8, "p": 1, "dklen": 32}
_ALLOWED = re.compile(r"[\w .,'&()\-/+:]+", re.UNICODE)


def make_challenge(length: int = CHALLENGE_LENGTH) -> list[str]:
    """``length`` distinct words drawn with a CSPRNG (about 26 bits for five words of forty)."""
    pool = list(CHALLENGE_WORDS)
    return [pool.pop(secrets.randbelow(len(pool))) for _ in range(length)]


def statement_text(speaker_name: str, organization: str, purpose: str) -> str:
    return (
        f"I, {speaker_name}, consent to {organization} creating a synthetic copy of my voice for {purpose}."
    )


def build_script(speaker_name: str, organization: str, purpose: str, challenge: list[str]) -> str:
    return f"{statement_text(speaker_name, organization, purpose)} {CODE_LEAD_IN} {' '.join(challenge)}."


def masked_script(speaker_name: str, organization: str, purpose: str) -> str:
    """The script as stored in the database: the code is never kept in clear."""
    return f"{statement_text(speaker_name, organization, purpose)} {CODE_LEAD_IN} {MASK}."


def normalize_challenge(challenge: str) -> str:
    return normalize_text(challenge)


def challenge_digest(consent_id: str, challenge: str) -> str:
    """Salted, deliberately slow hash (scrypt, about 16 MiB and tens of ms) of the normalised code."""
    return hashlib.scrypt(
        normalize_challenge(challenge).encode(), salt=f"voxvault-consent:{consent_id}".encode(), **_SCRYPT
    ).hex()


def _clean_field(value: str, field: str, limit: int) -> str:
    text = unicodedata.normalize("NFC", (value or "").strip())
    text = re.sub(r"\s+", " ", text).rstrip(".")
    if not text:
        raise VoxError("invalid_consent_request", f"{field} must not be empty", 422, field=field)
    if len(text) > limit:
        raise VoxError(
            "invalid_consent_request", f"{field} is longer than {limit} characters", 422, field=field
        )
    if not _ALLOWED.fullmatch(text) or not any(ch.isalpha() for ch in text):
        raise VoxError(
            "invalid_consent_request",
            f"{field} must be words that can be read aloud (letters, digits, spaces, basic punctuation)",
            422,
            field=field,
        )
    return text


@dataclass(frozen=True)
class ConsentTicket:
    """What the caller gets once: the script to read and the code, which the service does not keep."""

    consent_id: str
    script: str
    challenge: str
    challenge_expires_at: dt.datetime
    expires_at: dt.datetime
    speaker_name: str
    organization: str
    purpose: str


@dataclass(frozen=True)
class ConsentView:
    """A consent as the API shows it (the code itself is never shown again)."""

    consent_id: str
    status: str
    speaker_name: str
    organization: str
    purpose: str
    script: str
    created_at: dt.datetime
    challenge_expires_at: dt.datetime
    expires_at: dt.datetime | None
    verified_at: dt.datetime | None
    revoked_at: dt.datetime | None
    voice_id: str | None
    refusal: dict[str, Any] | None
    scores: dict[str, Any]
    evidence_kept: bool

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def consent_view(row: Consent) -> ConsentView:
    scores = dict(row.scores or {})
    return ConsentView(
        consent_id=row.id,
        status=row.status,
        speaker_name=row.speaker_name,
        organization=row.organization_name,
        purpose=row.purpose,
        script=row.script,
        created_at=row.created_at,
        challenge_expires_at=row.challenge_expires_at,
        expires_at=row.expires_at,
        verified_at=row.verified_at,
        revoked_at=row.revoked_at,
        voice_id=scores.get("voice_id"),
        refusal=scores.get("refusal"),
        scores=scores.get("checks", {}),
        evidence_kept=row.evidence_blob is not None,
    )


class ConsentService:
    """Create consents and move them through their states: the only code that changes a consent row.

    Enrollment runs the checks and asks this service to spend, refuse or verify; the voice registry asks
    it to revoke, supersede or scrub the consents of a voice inside the registry's own transaction (the
    ``*_in`` methods take that session).
    """

    def __init__(
        self, db: Database, audit: AuditTrail, *, challenge_ttl_s: float = 600.0, max_days: int = 1825
    ) -> None:
        self.db = db
        self.audit = audit
        self.challenge_ttl = dt.timedelta(seconds=challenge_ttl_s)
        self.max_days = max_days

    def create(
        self,
        *,
        project_id: str,
        speaker_name: str,
        organization: str,
        purpose: str,
        expires_at: dt.datetime | None = None,
        expires_in_days: float | None = None,
        actor: str | None = None,
    ) -> ConsentTicket:
        speaker = _clean_field(speaker_name, "speaker_name", MAX_NAME_CHARS)
        org = _clean_field(organization, "organization", MAX_NAME_CHARS)
        why = _clean_field(purpose, "purpose", MAX_PURPOSE_CHARS)
        now = utcnow()
        expiry = self._expiry(now, expires_at, expires_in_days)
        challenge = make_challenge()
        consent_id = new_id()
        row = Consent(
            id=consent_id,
            project_id=project_id,
            speaker_name=speaker,
            organization_name=org,
            purpose=why,
            script=masked_script(speaker, org, why),
            challenge_hash=challenge_digest(consent_id, " ".join(challenge)),
            status="pending",
            challenge_expires_at=now + self.challenge_ttl,
            expires_at=expiry,
            created_at=now,
        )
        with self.db.session() as s:
            s.add(row)
        self.audit.record(
            "consent.created",
            actor=actor,
            target=consent_id,
            details={
                "expires_at": expiry.isoformat(),
                "challenge_expires_at": row.challenge_expires_at.isoformat(),
            },
        )
        return ConsentTicket(
            consent_id=consent_id,
            script=build_script(speaker, org, why, challenge),
            challenge=" ".join(challenge),
            challenge_expires_at=row.challenge_expires_at,
            expires_at=expiry,
            speaker_name=speaker,
            organization=org,
            purpose=why,
        )

    def _expiry(self, now: dt.datetime, expires_at: dt.datetime | None, days: float | None) -> dt.datetime:
        if (expires_at is None) == (days is None):
            raise VoxError(
                "invalid_consent_request",
                "give the consent's expiry as expires_at or expires_in_days",
                422,
                field="expires_at",
            )
        if days is not None:
            if not 0 < days <= self.max_days:
                raise VoxError(
                    "invalid_consent_request",
                    f"expires_in_days must be between 0 and {self.max_days}",
                    422,
                    field="expires_in_days",
                )
            return now + dt.timedelta(days=days)
        assert expires_at is not None
        if expires_at.tzinfo is None:
            raise VoxError(
                "invalid_consent_request",
                "expires_at needs a time zone (e.g. 2030-01-01T00:00:00Z)",
                422,
                field="expires_at",
            )
        expiry = expires_at.astimezone(dt.UTC)
        if expiry <= now + self.challenge_ttl:
            raise VoxError(
                "invalid_consent_request", "expires_at must be in the future", 422, field="expires_at"
            )
        if expiry > now + dt.timedelta(days=self.max_days):
            raise VoxError(
                "invalid_consent_request",
                f"a consent can last at most {self.max_days} days",
                422,
                field="expires_at",
            )
        return expiry

    def get(self, consent_id: str, project_id: str | None) -> Consent:
        """The consent, or 404 (also for another tenant's consent: ids do not leak across tenants)."""
        with self.db.session() as s:
            row = s.get(Consent, consent_id)
        if row is None or (project_id is not None and row.project_id != project_id):
            raise VoxError("consent_not_found", f"no consent {consent_id!r}", 404)
        return row

    def view(self, consent_id: str, project_id: str | None) -> ConsentView:
        return consent_view(self.get(consent_id, project_id))

    def check_open(self, consent_id: str, project_id: str | None, *, actor: str | None = None) -> Consent:
        """Refuse a consent whose code was spent or has expired, before any upload is read."""
        row = self.get(consent_id, project_id)
        if row.status != "pending" or row.recording_sha256 is not None:
            raise VoxError(
                "challenge_used",
                "this consent's one-time code has already been used; start a new consent",
                409,
                status_now=row.status,
            )
        if row.challenge_expires_at <= utcnow():
            with self.db.session() as s:
                s.execute(
                    update(Consent)
                    .where(Consent.id == row.id, Consent.status == "pending")
                    .values(status="expired")
                )
            self.audit.record(
                "consent.expired", actor=actor, target=row.id, details={"reason": "challenge_expired"}
            )
            raise VoxError(
                "challenge_expired",
                "the one-time code expired (codes are valid for "
                f"{int(self.challenge_ttl.total_seconds() // 60)} minutes); start a new consent",
                410,
            )
        return row

    @staticmethod
    def check_challenge(row: Consent, challenge: str) -> None:
        if not challenge or not hmac.compare_digest(challenge_digest(row.id, challenge), row.challenge_hash):
            raise VoxError(
                "challenge_mismatch",
                "the one-time code sent does not match this consent's code",
                422,
            )

    def claim(self, consent_id: str, recording_sha256: str) -> bool:
        """Spend the code: only one attempt can ever move a consent past this point."""
        with self.db.session() as s:
            result = s.execute(
                update(Consent)
                .where(
                    Consent.id == consent_id,
                    Consent.status == "pending",
                    Consent.recording_sha256.is_(None),
                )
                .values(recording_sha256=recording_sha256)
            )
            return bool(getattr(result, "rowcount", 0) == 1)

    def seen_before(self, recording_sha256: str, *, exclude: str) -> bool:
        """True when the same recording bytes were submitted for any other consent (a replay)."""
        with self.db.session() as s:
            found = s.scalars(
                select(Consent.id)
                .where(Consent.recording_sha256 == recording_sha256, Consent.id != exclude)
                .limit(1)
            ).first()
        return found is not None

    def refuse(
        self,
        consent_id: str,
        error: VoxError,
        checks: EnrollmentChecks,
        *,
        actor: str | None,
        voice_id: str | None,
    ) -> None:
        """Record a refused attempt: status, every score measured so far and the reason (no audio kept)."""
        refusal = {"code": error.code, "message": error.message}
        measured = checks.to_json()
        scores: dict[str, Any] = {"checks": measured, "refusal": refusal}
        if voice_id is not None:
            scores["voice_id"] = voice_id
        with self.db.session() as s:
            s.execute(
                update(Consent)
                .where(Consent.id == consent_id, Consent.status == "pending")
                .values(status="refused", scores=scores)
            )
        self.audit.record(
            "consent.refused",
            actor=actor,
            target=consent_id,
            details={"code": error.code, "checks": measured, **({"voice_id": voice_id} if voice_id else {})},
        )

    @staticmethod
    def mark_verified_in(
        s: Session,
        consent_id: str,
        recording_sha256: str,
        *,
        at: dt.datetime,
        checks: EnrollmentChecks,
        voice_id: str,
        evidence_blob: str,
        during: str,
    ) -> None:
        """Verified, in the caller's transaction; 409 when the consent changed since its code was spent."""
        result = s.execute(
            update(Consent)
            .where(
                Consent.id == consent_id,
                Consent.status == "pending",
                Consent.recording_sha256 == recording_sha256,
            )
            .values(
                status="verified",
                verified_at=at,
                scores={"checks": checks.to_json(), "voice_id": voice_id},
                evidence_blob=evidence_blob,
            )
        )
        if getattr(result, "rowcount", 0) != 1:
            raise VoxError("challenge_used", f"this consent changed while the {during} ran", 409)

    def record_verified(
        self, consent_id: str, voice_id: str, checks: EnrollmentChecks, *, actor: str | None
    ) -> None:
        """The audit entry of a verification, written once its transaction has committed."""
        self.audit.record(
            "consent.verified",
            actor=actor,
            target=consent_id,
            details={"voice_id": voice_id, "checks": checks.to_json()},
        )

    def verify(
        self,
        consent_id: str,
        recording_sha256: str,
        *,
        at: dt.datetime,
        checks: EnrollmentChecks,
        voice_id: str,
        evidence_blob: str,
    ) -> None:
        """A renewal recording passed: the consent is verified for ``voice_id`` (the voice changes by PATCH).
        The caller writes the audit entry (``record_verified``) once nothing can undo this any more."""
        with self.db.session() as s:
            self.mark_verified_in(
                s,
                consent_id,
                recording_sha256,
                at=at,
                checks=checks,
                voice_id=voice_id,
                evidence_blob=evidence_blob,
                during="verification",
            )

    @staticmethod
    def revoke_in(s: Session, consent_id: str | None, at: dt.datetime) -> None:
        """The speaker withdrew consent (their voice was revoked)."""
        consent = s.get(Consent, consent_id) if consent_id else None
        if consent is not None and consent.status != "revoked":
            consent.status = "revoked"
            consent.revoked_at = at

    @staticmethod
    def supersede_in(s: Session, consent_id: str | None) -> None:
        """A renewal replaced this consent: a verified one ends (``expired``), whatever its date."""
        consent = s.get(Consent, consent_id) if consent_id else None
        if consent is not None and consent.status == "verified":
            consent.status = "expired"

    @staticmethod
    def scrub_in(s: Session, consents: list[Consent], at: dt.datetime) -> None:
        """Erasure: the consents' personal fields, scores and evidence go; an open one ends ``revoked``."""
        for consent in consents:
            consent.speaker_name = ERASED
            consent.organization_name = ERASED
            consent.purpose = ERASED
            consent.script = ERASED
            consent.scores = {"erased_at": at.isoformat()}
            consent.evidence_blob = None
            if consent.status in ("pending", "verified"):
                consent.status = "revoked"
            consent.revoked_at = consent.revoked_at or at
            # recording_sha256 stays: it is not the audio, and it keeps refusing replays of it.
