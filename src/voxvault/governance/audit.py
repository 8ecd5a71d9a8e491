"""The tamper-evident audit trail: append-only rows chained by SHA-256 over canonical JSON.

Each row's hash covers its sequence number, time, actor, action, target, details and the previous row's
hash. ``verify`` walks the chain and names every row that was edited, deleted, inserted or moved.
Spoken text is never recorded, only its SHA-256 and length.

Limit (documented): someone with write access to the database *and* this code can rebuild a valid chain
from the point they changed; export the head hash (``voxvault audit verify`` prints it) to a place they
cannot reach to anchor it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select, text

from voxvault.store.db import Database
from voxvault.store.models import AuditLog, utcnow

GENESIS = "0" * 64
_PG_AUDIT_LOCK = 0x617564_6974  # "audit"


def _ts(value: dt.datetime) -> str:
    return value.astimezone(dt.UTC).isoformat(timespec="microseconds")


def canonical(
    seq: int, ts: dt.datetime, actor: str | None, action: str, target: str | None, details: dict[str, Any],
    prev_hash: str,
) -> bytes:
    doc = {"seq": seq, "ts": _ts(ts), "actor": actor, "action": action, "target": target,
           "details": details, "prev_hash": prev_hash}
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str).encode()


def row_hash(row: AuditLog) -> str:
    return hashlib.sha256(
        canonical(row.seq, row.ts, row.actor, row.action, row.target, row.details or {}, row.prev_hash)
    ).hexdigest()


@dataclass
class Problem:
    seq: int
    kind: str  # edited | deleted | inserted | reordered
    message: str


@dataclass
class Verification:
    ok: bool
    checked: int
    head: str
    problems: list[Problem] = field(default_factory=list)


class AuditTrail:
    def __init__(self, db: Database) -> None:
        self.db = db
        self._lock = threading.Lock()

    def record(
        self, action: str, *, actor: str | None = None, target: str | None = None,
        details: dict[str, Any] | None = None,
    ) -> int:
        """Append one entry; returns its sequence number. Appends are serialised (process + DB lock)."""
        details = json.loads(json.dumps(details or {}, default=str))  # what the DB will hand back
        with self._lock, self.db.session() as s:
            if self.db.dialect == "postgresql":
                s.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_AUDIT_LOCK})
            last = s.execute(select(AuditLog.seq, AuditLog.hash).order_by(AuditLog.seq.desc()).limit(1)).first()
            seq = (last[0] + 1) if last else 1
            prev = last[1] if last else GENESIS
            row = AuditLog(seq=seq, ts=utcnow(), actor=actor, action=action, target=target, details=details,
                           prev_hash=prev, hash="")
            row.hash = row_hash(row)
            s.add(row)
            return seq

    def entries(self, since_seq: int = 0, since_ts: dt.datetime | None = None,
                actor: str | None = None) -> Iterator[dict[str, Any]]:
        with self.db.session() as s:
            q = select(AuditLog).where(AuditLog.seq > since_seq).order_by(AuditLog.seq)
            if since_ts is not None:
                q = q.where(AuditLog.ts >= since_ts)
            if actor is not None:
                q = q.where(AuditLog.actor == actor)
            for row in s.scalars(q.execution_options(yield_per=500)):
                yield {"seq": row.seq, "ts": _ts(row.ts), "actor": row.actor, "action": row.action,
                       "target": row.target, "details": row.details, "prev_hash": row.prev_hash,
                       "hash": row.hash}

    def verify(self) -> Verification:
        problems: list[Problem] = []
        prev_hash, prev_seq, n = GENESIS, 0, 0
        with self.db.session() as s:
            rows = list(s.scalars(select(AuditLog).order_by(AuditLog.seq)))
            by_hash = {r.hash: r.seq for r in rows}
            for row in rows:
                n += 1
                if row_hash(row) != row.hash:
                    problems.append(Problem(row.seq, "edited", f"entry {row.seq} ({row.action}) was changed"))
                if row.prev_hash != prev_hash:
                    if row.seq != prev_seq + 1:
                        problems.append(Problem(row.seq, "deleted",
                                                f"entries {prev_seq + 1}..{row.seq - 1} are missing"))
                    elif row.prev_hash in by_hash:
                        problems.append(Problem(row.seq, "reordered",
                                                f"entry {row.seq} follows entry {by_hash[row.prev_hash]}, "
                                                f"not entry {prev_seq}"))
                    else:
                        problems.append(Problem(row.seq, "inserted",
                                                f"entry {row.seq} does not chain to entry {prev_seq}: "
                                                "inserted or replaced"))
                elif row.seq != prev_seq + 1:
                    problems.append(Problem(row.seq, "inserted", f"entry {row.seq} has an unexpected number"))
                prev_hash, prev_seq = row.hash, row.seq
        return Verification(ok=not problems, checked=n, head=prev_hash, problems=problems)
