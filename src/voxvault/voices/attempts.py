"""Refused enrollments cost something: slowed down, then locked, per API key, per tenant, per consent subject.

Without this a failed try cost nothing: an attacker could retry a borderline clone (a new consent is free)
until a threshold let it through (issue 25). Every refusal of an enrollment or a renewal (after the code
was checked, or a wrong code echoed) is counted in three scopes: the API key, the tenant (project) and the
consent subject (the speaker's name, normalised, within the tenant; only a keyed digest is stored).
Within ``window_s``:

- from the ``slow_after``-th refusal on, the next attempt in that scope must wait ``cooldown_s`` after the
  last refusal (429 ``enrollment_rate_limited`` with ``Retry-After``);
- at ``lock_after`` refusals the scope is locked for ``lock_s`` (429 ``enrollment_locked``), and the lock
  is written to the audit trail (``consent.attempts_locked``: scope kind, count, until; no name).

The counts are rows of ``enrollment_refusals`` in the database (one per refusal and scope), so every
worker process and every VoxVault instance on the same database shares them, and a restart forgets
nothing. Counting a refusal and deciding on the lock happen in one transaction that holds the scope's
write lock (SQLite's database lock, taken by the first insert; a PostgreSQL advisory lock per scope), so
two processes cannot both miss the lock. The clock is wall time: processes must agree on it (NTP).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import math
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import delete, func, or_, select, text, update
from sqlalchemy.orm import Session

from voxvault.engines.asr import normalize_text
from voxvault.errors import VoxError
from voxvault.governance.audit import AuditTrail
from voxvault.store.db import Database
from voxvault.store.models import EnrollmentRefusal


@dataclass(frozen=True)
class AttemptPolicy:
    slow_after: int = 3
    cooldown_s: float = 60.0
    lock_after: int = 6
    lock_s: float = 3600.0
    window_s: float = 86_400.0


def _sha256(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def scopes(
    key_id: str | None, project_id: str, speaker_name: str, digest: Callable[[str], str] = _sha256
) -> list[tuple[str, str]]:
    """(kind, bucket) for each scope an attempt counts in; the subject is a digest, never the name."""
    subject = digest(f"consent-subject\0{project_id}\0{normalize_text(speaker_name)}")[:64]
    out = [("tenant", f"tenant:{project_id}"), ("subject", f"subject:{subject}")]
    if key_id:
        out.insert(0, ("key", f"key:{key_id}"))
    return out


@dataclass(frozen=True)
class _State:
    """One scope as the rows say: counted refusals since its last lock (within the window)."""

    refusals: int
    last_refusal: dt.datetime | None
    locked_until: dt.datetime | None


class AttemptGuard:
    """Counts refused enrollments in the database and refuses new attempts while a scope is slowed or locked.

    ``digest`` turns the tenant and speaker's name into the subject's bucket; the service passes its keyed
    text hash (HMAC under the installation's secret), so a database copy does not confirm guessed names.
    """

    def __init__(
        self,
        db: Database,
        audit: AuditTrail,
        policy: AttemptPolicy | None = None,
        clock: Callable[[], float] = time.time,
        digest: Callable[[str], str] = _sha256,
    ) -> None:
        self.db = db
        self.audit = audit
        self.policy = policy or AttemptPolicy()
        self._clock = clock
        self._digest = digest

    def _now(self) -> dt.datetime:
        return dt.datetime.fromtimestamp(self._clock(), dt.UTC)

    def _state(self, s: Session, bucket: str, now: dt.datetime) -> _State:
        lock = s.execute(
            select(EnrollmentRefusal.id, EnrollmentRefusal.locked_until)
            .where(EnrollmentRefusal.bucket == bucket, EnrollmentRefusal.locked_until.is_not(None))
            .order_by(EnrollmentRefusal.id.desc())
            .limit(1)
        ).first()
        since = dt.timedelta(seconds=self.policy.window_s)
        count, last = s.execute(
            select(func.count(), func.max(EnrollmentRefusal.at)).where(
                EnrollmentRefusal.bucket == bucket,
                EnrollmentRefusal.at >= now - since,
                EnrollmentRefusal.id > (lock.id if lock is not None else 0),
            )
        ).one()
        last_at = None if last is None else _aware(last)
        locked = None if lock is None or lock.locked_until is None else _aware(lock.locked_until)
        return _State(int(count), last_at, locked)

    def check(self, key_id: str | None, project_id: str, speaker_name: str) -> None:
        """Raise 429 when any scope of this attempt is locked or cooling down; otherwise return."""
        p = self.policy
        now = self._now()
        with self.db.session() as s:
            for kind, bucket in scopes(key_id, project_id, speaker_name, self._digest):
                state = self._state(s, bucket, now)
                if state.locked_until is not None and state.locked_until > now:
                    wait = (state.locked_until - now).total_seconds()
                    raise VoxError(
                        "enrollment_locked",
                        f"too many refused enrollments for this {_WHAT[kind]}; locked for another "
                        f"{math.ceil(wait)} s",
                        429,
                        retry_after=max(1, math.ceil(wait)),
                        scope=kind,
                    )
                if state.refusals >= p.slow_after and state.last_refusal is not None:
                    waited = (now - state.last_refusal).total_seconds()
                    if waited < p.cooldown_s:
                        wait = p.cooldown_s - waited
                        raise VoxError(
                            "enrollment_rate_limited",
                            f"{state.refusals} refused enrollments for this {_WHAT[kind]} recently; "
                            f"retry in {math.ceil(wait)} s",
                            429,
                            retry_after=max(1, math.ceil(wait)),
                            scope=kind,
                        )

    def refused(self, key_id: str | None, project_id: str, speaker_name: str, *, consent_id: str) -> None:
        """Count one refusal in every scope; lock (and audit) the scopes that reach ``lock_after``."""
        p = self.policy
        now = self._now()
        until = now + dt.timedelta(seconds=p.lock_s)
        old = now - dt.timedelta(seconds=p.window_s)
        buckets = scopes(key_id, project_id, speaker_name, self._digest)
        locked: list[str] = []
        with self.db.session() as s:
            if self.db.dialect == "postgresql":
                for _, bucket in sorted(buckets, key=lambda kb: kb[1]):  # one order: no deadlock
                    s.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _lock_key(bucket)})
            rows = {}
            for kind, bucket in buckets:  # on SQLite the first insert takes the database's write lock
                row = EnrollmentRefusal(scope=kind, bucket=bucket, at=now)
                s.add(row)
                rows[bucket] = row
            s.flush()
            for kind, bucket in buckets:
                state = self._state(s, bucket, now)
                already = state.locked_until is not None and state.locked_until > now
                if state.refusals >= p.lock_after and not already:
                    # the lock is the penalty; counting starts again after this row
                    s.execute(
                        update(EnrollmentRefusal)
                        .where(EnrollmentRefusal.id == rows[bucket].id)
                        .values(locked_until=until)
                    )
                    locked.append(kind)
            s.execute(  # every scope's rows out of the window (a lock row stays until its lock ends)
                delete(EnrollmentRefusal).where(
                    EnrollmentRefusal.at < old,
                    or_(EnrollmentRefusal.locked_until.is_(None), EnrollmentRefusal.locked_until < now),
                )
            )
        for kind in locked:
            self.audit.record(
                "consent.attempts_locked",
                actor=key_id,
                target=consent_id,
                details={
                    "scope": kind,
                    "refusals": p.lock_after,
                    "locked_s": p.lock_s,
                    "until": until.isoformat(),
                    "project_id": project_id,
                },
            )


def _aware(value: dt.datetime) -> dt.datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)


def _lock_key(bucket: str) -> int:
    """A signed 64-bit advisory-lock key for one scope (crc32 is enough: a clash only serialises two)."""
    return 0x76765F_00000000 | zlib.crc32(bucket.encode())


_WHAT = {"key": "API key", "tenant": "project", "subject": "speaker"}
