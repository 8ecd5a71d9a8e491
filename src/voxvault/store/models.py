"""The whole product's schema as SQLAlchemy 2 typed declarative models.

Portable across SQLite and PostgreSQL: string ids (uuid4 text, or a preset's name), ``JSON``, timezone-aware
UTC datetimes (see ``UTCDateTime``), ``LargeBinary`` nowhere (payloads live in the blob store; rows only
hold their keys). Constraint names follow ``NAMING_CONVENTION`` so Alembic can address them on both
dialects. Changing a model means adding an Alembic revision under ``store/migrations/versions``; the test
suite fails when models and migrations drift apart.

JSON columns are not mutation-tracked: assign a new value (``row.meta = {**row.meta, "k": 1}``) rather than
editing the stored dict in place.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from sqlalchemy import (
    JSON,
    CheckConstraint,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    event,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from voxvault.store.sealed import SealedText

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

ID_LENGTH = 64
BLOB_KEY_LENGTH = 512
SHA256_HEX_LENGTH = 64

VOICE_KINDS = ("preset", "cloned")
VOICE_STATUSES = ("active", "revoked", "expired", "erased", "pending")
CONSENT_STATUSES = ("pending", "verified", "refused", "revoked", "expired")


def new_id() -> str:
    """A fresh random id (uuid4 text): unguessable, so ids can appear in URLs without leaking counts."""
    return str(uuid.uuid4())


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class UTCDateTime(TypeDecorator[dt.datetime]):
    """``DateTime(timezone=True)`` that always hands back aware UTC datetimes.

    SQLite has no time zone storage and returns naive values; PostgreSQL returns the session's zone. Both
    are normalised to UTC so comparisons with ``utcnow()`` never mix naive and aware datetimes. Naive input
    is refused: it is almost always a bug (local time mistaken for UTC).
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(
                "naive datetime given to a timezone-aware column; use datetime.now(datetime.UTC)"
            )
        value = value.astimezone(dt.UTC)
        # SQLite would store the offset-less text anyway; strip it explicitly so stored text is uniform.
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: dt.datetime | None, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


def _json() -> JSON:
    # none_as_null: Python None is stored as SQL NULL (so "IS NULL" works), not as the JSON literal null.
    return JSON(none_as_null=True)


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {dt.datetime: UTCDateTime()}


class Organization(Base):
    """A tenant: owns projects and API keys."""

    __tablename__ = "organizations"

    id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class Project(Base):
    """A unit of isolation inside an organisation: voices, consents and keys are scoped to it."""

    __tablename__ = "projects"
    __table_args__ = (UniqueConstraint("org_id", "name"),)

    id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True, default=new_id)
    org_id: Mapped[str] = mapped_column(ForeignKey("organizations.id"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    lexicon: Mapped[dict[str, Any]] = mapped_column(_json(), default=dict)


class ApiKey(Base):
    """An API credential. Only a hash of the secret is stored; ``prefix`` is the visible part for humans."""

    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True, default=new_id)
    org_id: Mapped[str] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"), index=True)
    project_id: Mapped[str | None] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), index=True, default=None
    )
    prefix: Mapped[str] = mapped_column(String(32), index=True)
    key_hash: Mapped[str] = mapped_column(String(128), unique=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    scopes: Mapped[list[str]] = mapped_column(_json(), default=list)
    # None = every voice the key's project can use; a list restricts the key to those voice ids.
    voice_ids: Mapped[list[str] | None] = mapped_column(_json(), default=None)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[dt.datetime | None] = mapped_column(default=None)
    revoked_at: Mapped[dt.datetime | None] = mapped_column(default=None)
    last_used_at: Mapped[dt.datetime | None] = mapped_column(default=None)


class Consent(Base):
    """A speaker's recorded, verified permission to clone their voice for a stated purpose."""

    __tablename__ = "consents"
    __table_args__ = (CheckConstraint(_in("status", CONSENT_STATUSES), name="status"),)

    id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True, default=new_id)
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id"), index=True)
    # Personal: sealed at rest (store/sealed.py, issue 29 finding 6).
    speaker_name: Mapped[str] = mapped_column(SealedText("db:consents.speaker_name"))
    purpose: Mapped[str] = mapped_column(SealedText("db:consents.purpose"))
    organization_name: Mapped[str] = mapped_column(SealedText("db:consents.organization_name"))
    script: Mapped[str] = mapped_column(SealedText("db:consents.script"))
    challenge_hash: Mapped[str] = mapped_column(String(128))
    status: Mapped[str] = mapped_column(String(16), default="pending", index=True)
    challenge_expires_at: Mapped[dt.datetime]
    expires_at: Mapped[dt.datetime | None] = mapped_column(default=None)
    scores: Mapped[dict[str, Any] | None] = mapped_column(_json(), default=None)
    evidence_blob: Mapped[str | None] = mapped_column(String(BLOB_KEY_LENGTH), default=None)
    # Indexed so a recording submitted before (a replay) is found and refused.
    recording_sha256: Mapped[str | None] = mapped_column(String(SHA256_HEX_LENGTH), index=True, default=None)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    verified_at: Mapped[dt.datetime | None] = mapped_column(default=None)
    revoked_at: Mapped[dt.datetime | None] = mapped_column(default=None)


class Voice(Base):
    """A voice: a shipped preset (no project) or a consent-backed clone. Payloads live in the blob store."""

    __tablename__ = "voices"
    __table_args__ = (
        CheckConstraint(_in("kind", VOICE_KINDS), name="kind"),
        CheckConstraint(_in("status", VOICE_STATUSES), name="status"),
    )

    id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True, default=new_id)
    project_id: Mapped[str | None] = mapped_column(ForeignKey("projects.id"), index=True, default=None)
    name: Mapped[str] = mapped_column(SealedText("db:voices.name"))  # often the speaker's name: sealed
    kind: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16), default="pending", index=True)
    engine: Mapped[str] = mapped_column(String(64))
    consent_id: Mapped[str | None] = mapped_column(ForeignKey("consents.id"), index=True, default=None)
    embedding_blob: Mapped[str | None] = mapped_column(String(BLOB_KEY_LENGTH), default=None)
    style_blob: Mapped[str | None] = mapped_column(String(BLOB_KEY_LENGTH), default=None)
    previous_style_blob: Mapped[str | None] = mapped_column(String(BLOB_KEY_LENGTH), default=None)
    meta: Mapped[dict[str, Any]] = mapped_column(_json(), default=dict)
    retention: Mapped[dict[str, Any] | None] = mapped_column(_json(), default=None)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    # Indexed for the sweep that expires voices past their retention.
    expires_at: Mapped[dt.datetime | None] = mapped_column(index=True, default=None)
    revoked_at: Mapped[dt.datetime | None] = mapped_column(default=None)
    erased_at: Mapped[dt.datetime | None] = mapped_column(default=None)


class Generation(Base):
    """One synthesis, logged for usage, provenance and watermark lookup. No text or audio is stored.

    ``watermark_id`` is the integer primary key: the database hands out the next value atomically on both
    SQLite (AUTOINCREMENT, never reused) and PostgreSQL (identity), and that value is embedded in the audio
    as the watermark payload. ``id`` is the public uuid (unique). ``voice_id``/``key_id`` are deliberately
    not foreign keys: this log must outlive deleted keys and name preset voices that have no row.
    """

    __tablename__ = "generations"
    __table_args__ = ({"sqlite_autoincrement": True},)

    watermark_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    id: Mapped[str] = mapped_column(String(ID_LENGTH), unique=True, default=new_id)
    voice_id: Mapped[str] = mapped_column(String(ID_LENGTH), index=True)
    key_id: Mapped[str | None] = mapped_column(String(ID_LENGTH), index=True, default=None)
    text_sha256: Mapped[str] = mapped_column(String(SHA256_HEX_LENGTH))
    text_chars: Mapped[int]
    output_sha256: Mapped[str | None] = mapped_column(String(SHA256_HEX_LENGTH), index=True, default=None)
    format: Mapped[str] = mapped_column(String(16))
    duration_s: Mapped[float] = mapped_column(Float)
    latency_ms: Mapped[float] = mapped_column(Float)
    created_at: Mapped[dt.datetime] = mapped_column(index=True, default=utcnow)


class Job(Base):
    """A batch/background job. ``heartbeat_at`` lets a worker's death be noticed and the job resumed."""

    __tablename__ = "jobs"
    __table_args__ = (Index("ix_jobs_status_created_at", "status", "created_at"),)

    id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True, default=new_id)
    kind: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16), default="queued")
    # Owner, for authorisation of status/result reads; not foreign keys (jobs outlive keys).
    project_id: Mapped[str | None] = mapped_column(String(ID_LENGTH), index=True, default=None)
    key_id: Mapped[str | None] = mapped_column(String(ID_LENGTH), default=None)
    progress: Mapped[float] = mapped_column(Float, default=0.0)
    total: Mapped[int] = mapped_column(default=0)
    done: Mapped[int] = mapped_column(default=0)
    spec: Mapped[dict[str, Any]] = mapped_column(_json(), default=dict)
    result: Mapped[dict[str, Any] | None] = mapped_column(_json(), default=None)
    error: Mapped[str | None] = mapped_column(Text, default=None)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    heartbeat_at: Mapped[dt.datetime | None] = mapped_column(default=None)


class JobItem(Base):
    """One unit of a job; the (job_id, item_id) primary key makes re-running an item idempotent."""

    __tablename__ = "job_items"

    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True)
    item_id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    output_key: Mapped[str | None] = mapped_column(String(BLOB_KEY_LENGTH), default=None)
    sha256: Mapped[str | None] = mapped_column(String(SHA256_HEX_LENGTH), default=None)
    duration: Mapped[float | None] = mapped_column(Float, default=None)
    error: Mapped[str | None] = mapped_column(Text, default=None)
    # Set when the item's generation is begun (batch jobs): the id its audio carries and the voice spoken.
    watermark_id: Mapped[int | None] = mapped_column(Integer, default=None)
    voice_id: Mapped[str | None] = mapped_column(String(ID_LENGTH), default=None)


class AuditLog(Base):
    """Append-only, hash-chained record of who did what. The database refuses UPDATE and DELETE.

    ``hash`` covers this row's content plus ``prev_hash``, so any edit or removal breaks the chain. The
    migration installs triggers on both dialects; ORM updates/deletes of loaded rows are refused earlier.
    """

    __tablename__ = "audit_log"
    __table_args__ = ({"sqlite_autoincrement": True},)

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    ts: Mapped[dt.datetime] = mapped_column(index=True, default=utcnow)
    actor: Mapped[str | None] = mapped_column(String(ID_LENGTH), index=True, default=None)
    action: Mapped[str] = mapped_column(String(64), index=True)
    target: Mapped[str | None] = mapped_column(String(200), index=True, default=None)
    details: Mapped[dict[str, Any]] = mapped_column(_json(), default=dict)
    prev_hash: Mapped[str] = mapped_column(String(SHA256_HEX_LENGTH))
    hash: Mapped[str] = mapped_column(String(SHA256_HEX_LENGTH), unique=True)


class EnrollmentRefusal(Base):
    """One refused enrollment or renewal, counted in one scope (API key, tenant, consent subject).

    Owned by ``voices/attempts.py``: every process on the database counts the same rows, so retries spread
    over workers or restarts still slow down and lock (issue 25). ``bucket`` names the scope (a key or
    project id, or a keyed digest of the speaker's name: never the name). A row with ``locked_until`` is
    the refusal that locked its scope; counting starts again after it. Rows older than the policy's window
    are deleted as new refusals arrive.
    """

    __tablename__ = "enrollment_refusals"
    __table_args__ = (Index("ix_enrollment_refusals_bucket_at", "bucket", "at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    scope: Mapped[str] = mapped_column(String(16))
    bucket: Mapped[str] = mapped_column(String(128))
    at: Mapped[dt.datetime] = mapped_column()
    locked_until: Mapped[dt.datetime | None] = mapped_column(default=None)


class AppendOnlyError(RuntimeError):
    """Raised when code tries to change or remove an audit-log row (a programming error, not user input)."""


@event.listens_for(AuditLog, "before_update")
def _refuse_audit_update(_mapper: Any, _connection: Any, target: AuditLog) -> None:
    raise AppendOnlyError(f"audit_log is append-only (seq={target.seq})")


@event.listens_for(AuditLog, "before_delete")
def _refuse_audit_delete(_mapper: Any, _connection: Any, target: AuditLog) -> None:
    raise AppendOnlyError(f"audit_log is append-only (seq={target.seq})")


__all__ = [
    "CONSENT_STATUSES",
    "VOICE_KINDS",
    "VOICE_STATUSES",
    "ApiKey",
    "AppendOnlyError",
    "AuditLog",
    "Base",
    "Consent",
    "EnrollmentRefusal",
    "Generation",
    "Job",
    "JobItem",
    "Organization",
    "Project",
    "UTCDateTime",
    "Voice",
    "new_id",
    "utcnow",
]
