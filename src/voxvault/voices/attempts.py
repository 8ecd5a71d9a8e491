"""Refused enrollments cost something: slowed down, then locked, per API key, per tenant, per consent subject.

Without this a failed try cost nothing: an attacker could retry a borderline clone (a new consent is free)
until a threshold let it through (issue 25). Every refusal of an enrollment or a renewal (after the code
was checked, or a wrong code echoed) is counted in three scopes: the API key, the tenant (project) and the
consent subject (the speaker's name, normalised, within the tenant; only a digest is held, in memory).
Within ``window_s``:

- from the ``slow_after``-th refusal on, the next attempt in that scope must wait ``cooldown_s`` after the
  last refusal (429 ``enrollment_rate_limited`` with ``Retry-After``);
- at ``lock_after`` refusals the scope is locked for ``lock_s`` (429 ``enrollment_locked``), and the lock
  is written to the audit trail (``consent.attempts_locked``: scope kind, count, until; no name).

Counts live in this process (as the in-process rate limiter's buckets do): a restart forgets them, and
several worker processes count separately (docs/consent.md, what stays possible).
"""

from __future__ import annotations

import hashlib
import math
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from voxvault.engines.asr import normalize_text
from voxvault.errors import VoxError
from voxvault.governance.audit import AuditTrail


@dataclass(frozen=True)
class AttemptPolicy:
    slow_after: int = 3
    cooldown_s: float = 60.0
    lock_after: int = 6
    lock_s: float = 3600.0
    window_s: float = 86_400.0


@dataclass
class _Scope:
    refusals: deque[float]
    locked_until: float = 0.0


def scopes(key_id: str | None, project_id: str, speaker_name: str) -> list[tuple[str, str]]:
    """(kind, bucket) for each scope an attempt counts in; the subject is a digest, never the name."""
    subject = hashlib.sha256(f"{project_id}\0{normalize_text(speaker_name)}".encode()).hexdigest()[:32]
    out = [("tenant", f"tenant:{project_id}"), ("subject", f"subject:{subject}")]
    if key_id:
        out.insert(0, ("key", f"key:{key_id}"))
    return out


class AttemptGuard:
    """Counts refused enrollments and refuses new attempts while a scope is slowed down or locked."""

    def __init__(
        self,
        audit: AuditTrail,
        policy: AttemptPolicy | None = None,
        clock: Callable[[], float] = time.monotonic,
        max_scopes: int = 100_000,
    ) -> None:
        self.audit = audit
        self.policy = policy or AttemptPolicy()
        self._clock = clock
        self._scopes: dict[str, _Scope] = {}
        self._lock = threading.Lock()
        self._max = max_scopes

    def _prune(self, scope: _Scope, now: float) -> None:
        while scope.refusals and now - scope.refusals[0] > self.policy.window_s:
            scope.refusals.popleft()

    def check(self, key_id: str | None, project_id: str, speaker_name: str) -> None:
        """Raise 429 when any scope of this attempt is locked or cooling down; otherwise return."""
        p = self.policy
        now = self._clock()
        with self._lock:
            for kind, bucket in scopes(key_id, project_id, speaker_name):
                scope = self._scopes.get(bucket)
                if scope is None:
                    continue
                self._prune(scope, now)
                if scope.locked_until > now:
                    wait = scope.locked_until - now
                    raise VoxError(
                        "enrollment_locked",
                        f"too many refused enrollments for this {_WHAT[kind]}; locked for another "
                        f"{math.ceil(wait)} s",
                        429,
                        retry_after=max(1, math.ceil(wait)),
                        scope=kind,
                    )
                if len(scope.refusals) >= p.slow_after and now - scope.refusals[-1] < p.cooldown_s:
                    wait = p.cooldown_s - (now - scope.refusals[-1])
                    raise VoxError(
                        "enrollment_rate_limited",
                        f"{len(scope.refusals)} refused enrollments for this {_WHAT[kind]} recently; "
                        f"retry in {math.ceil(wait)} s",
                        429,
                        retry_after=max(1, math.ceil(wait)),
                        scope=kind,
                    )

    def refused(self, key_id: str | None, project_id: str, speaker_name: str, *, consent_id: str) -> None:
        """Count one refusal in every scope; lock (and audit) the scopes that reach ``lock_after``."""
        p = self.policy
        now = self._clock()
        locked: list[tuple[str, int]] = []
        with self._lock:
            for kind, bucket in scopes(key_id, project_id, speaker_name):
                scope = self._scopes.setdefault(bucket, _Scope(deque()))
                self._prune(scope, now)
                scope.refusals.append(now)
                if len(scope.refusals) >= p.lock_after and scope.locked_until <= now:
                    scope.locked_until = now + p.lock_s
                    scope.refusals.clear()  # the lock is the penalty; counting starts again after it
                    locked.append((kind, p.lock_after))
            if len(self._scopes) > self._max:
                for name in [n for n, s in self._scopes.items() if not s.refusals and s.locked_until <= now]:
                    del self._scopes[name]
        for kind, count in locked:
            self.audit.record(
                "consent.attempts_locked",
                actor=key_id,
                target=consent_id,
                details={"scope": kind, "refusals": count, "locked_s": p.lock_s, "project_id": project_id},
            )


_WHAT = {"key": "API key", "tenant": "project", "subject": "speaker"}
