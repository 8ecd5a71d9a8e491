"""The tamper-evident audit trail: append-only rows chained by SHA-256 over canonical JSON.

Each row's hash covers its sequence number, time, actor, action, target, details and the previous row's
hash. ``verify`` walks the chain and names every row that was edited, deleted, inserted or moved, by its
sequence number. Spoken text is never recorded, only its SHA-256 and length.

Limits (see docs/security.md): someone with write access to the database *and* knowledge of this scheme
can rebuild a valid chain from the point they changed, or cut entries off the end. Anchoring defeats
both: copy the head (``voxvault audit verify`` prints ``seq:hash``) somewhere they cannot write, and pass
it back with ``--anchor``; a rewritten or shortened chain no longer matches it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.exc import IntegrityError, OperationalError

from voxvault.errors import VoxError
from voxvault.store.db import Database
from voxvault.store.models import AuditLog, utcnow

log = logging.getLogger(__name__)

GENESIS = "0" * 64
_PG_AUDIT_LOCK = 0x617564_6974  # "audit"
# How far a row's stored number may be from its original one and still be recognised (renumbering).
_RENUMBER_WINDOW = 8
KINDS = ("edited", "deleted", "inserted", "reordered")


def _ts(value: dt.datetime) -> str:
    return value.astimezone(dt.UTC).isoformat(timespec="microseconds")


def canonical(
    seq: int,
    ts: dt.datetime,
    actor: str | None,
    action: str,
    target: str | None,
    details: dict[str, Any],
    prev_hash: str,
) -> bytes:
    """The exact bytes a row's hash covers: sorted-key compact JSON (stable across dialects)."""
    doc = {
        "seq": seq,
        "ts": _ts(ts),
        "actor": actor,
        "action": action,
        "target": target,
        "details": details,
        "prev_hash": prev_hash,
    }
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str).encode()


@dataclass(frozen=True)
class _Row:
    seq: int
    ts: dt.datetime
    actor: str | None
    action: str
    target: str | None
    details: dict[str, Any]
    prev_hash: str
    hash: str

    @classmethod
    def of(cls, row: AuditLog) -> _Row:
        return cls(
            row.seq, row.ts, row.actor, row.action, row.target, row.details or {}, row.prev_hash, row.hash
        )

    def hash_as(self, seq: int) -> str:
        """This row's hash had it been written with sequence number ``seq``."""
        body = canonical(seq, self.ts, self.actor, self.action, self.target, self.details, self.prev_hash)
        return hashlib.sha256(body).hexdigest()


def row_hash(row: AuditLog) -> str:
    return _Row.of(row).hash_as(row.seq)


@dataclass(frozen=True)
class Problem:
    seq: int
    kind: str  # edited | deleted | inserted | reordered
    message: str


@dataclass
class Verification:
    ok: bool
    checked: int
    head: str
    head_seq: int
    problems: list[Problem] = field(default_factory=list)

    @property
    def anchor(self) -> str:
        """``seq:hash`` of the last entry: keep it elsewhere and pass it to a later ``verify``."""
        return f"{self.head_seq}:{self.head}"

    def as_dict(self, with_messages: bool = True) -> dict[str, Any]:
        problems = [asdict(p) if with_messages else {"seq": p.seq, "kind": p.kind} for p in self.problems]
        return {
            "ok": self.ok,
            "checked": self.checked,
            "head": self.head,
            "head_seq": self.head_seq,
            "anchor": self.anchor,
            "problems": problems,
        }


def parse_anchor(value: str) -> tuple[int, str]:
    """``"<seq>:<sha256 hex>"`` -> (seq, hash); ValueError when malformed."""
    seq_s, sep, digest = value.strip().partition(":")
    digest = digest.lower()
    if (
        not sep
        or not seq_s.isdigit()
        or len(digest) != 64
        or any(c not in "0123456789abcdef" for c in digest)
    ):
        raise ValueError("an anchor reads <seq>:<64 hex digits>, as printed by 'voxvault audit verify'")
    return int(seq_s), digest


def parse_since(since: str | None) -> tuple[int, dt.datetime | None]:
    """``since`` is a sequence number (entries after it) or an ISO time (entries at or after it)."""
    if since is None or not since.strip():
        return 0, None
    value = since.strip()
    if value.isascii() and value.isdigit():
        return min(int(value), 2**62), None
    try:
        when = dt.datetime.fromisoformat(value)
        when = when.replace(tzinfo=dt.UTC) if when.tzinfo is None else when.astimezone(dt.UTC)
    except (ValueError, OverflowError):
        raise VoxError("invalid_since", "since is a sequence number or an ISO 8601 time", 422) from None
    return 0, when


class AuditTrail:
    def __init__(self, db: Database) -> None:
        self.db = db
        self._lock = threading.Lock()

    def record(
        self,
        action: str,
        *,
        actor: str | None = None,
        target: str | None = None,
        details: dict[str, Any] | None = None,
    ) -> int:
        """Append one entry; returns its sequence number.

        Appends are serialised: a process lock, a PostgreSQL advisory lock, and for SQLite files written
        by several processes (server + CLI) a retry when another writer took the number first.
        """
        details = json.loads(json.dumps(details or {}, default=str))  # exactly what the DB will hand back
        for attempt in range(20):
            try:
                return self._append(action, actor, target, details)
            except (IntegrityError, OperationalError):
                if attempt == 19:
                    raise
                time.sleep(0.01 * (attempt + 1))
        raise AssertionError("unreachable")

    def _append(self, action: str, actor: str | None, target: str | None, details: dict[str, Any]) -> int:
        with self._lock, self.db.session() as s:
            if self.db.dialect == "postgresql":
                s.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_AUDIT_LOCK})
            last = s.execute(
                select(AuditLog.seq, AuditLog.hash).order_by(AuditLog.seq.desc()).limit(1)
            ).first()
            seq = (last[0] + 1) if last else 1
            prev = last[1] if last else GENESIS
            row = AuditLog(
                seq=seq,
                ts=utcnow(),
                actor=actor,
                action=action,
                target=target,
                details=details,
                prev_hash=prev,
                hash="",
            )
            row.hash = row_hash(row)
            s.add(row)
            return seq

    def entries(
        self,
        since_seq: int = 0,
        since_ts: dt.datetime | None = None,
        actor: str | None = None,
    ) -> Iterator[dict[str, Any]]:
        """Entries after ``since_seq`` (and at/after ``since_ts``), oldest first, as exported (JSONL)."""
        with self.db.session() as s:
            q = select(AuditLog).where(AuditLog.seq > since_seq).order_by(AuditLog.seq)
            if since_ts is not None:
                q = q.where(AuditLog.ts >= since_ts)
            if actor is not None:
                q = q.where(AuditLog.actor == actor)
            for row in s.scalars(q.execution_options(yield_per=500)):
                yield {
                    "seq": row.seq,
                    "ts": _ts(row.ts),
                    "actor": row.actor,
                    "action": row.action,
                    "target": row.target,
                    "details": row.details,
                    "prev_hash": row.prev_hash,
                    "hash": row.hash,
                }

    def head(self) -> tuple[int, str]:
        with self.db.session() as s:
            last = s.execute(
                select(AuditLog.seq, AuditLog.hash).order_by(AuditLog.seq.desc()).limit(1)
            ).first()
            return (int(last[0]), str(last[1])) if last else (0, GENESIS)

    # -- verification ----------------------------------------------------------------------------------
    def verify(self, anchors: Mapping[int, str] | None = None) -> Verification:
        """Check the whole chain; every problem names the sequence number where it shows and its kind.

        A streaming pass handles the normal (intact) case in constant memory; only a broken chain is
        loaded whole to work out what was done to it.
        """
        checked, head_seq, head, intact = self._scan()
        problems = [] if intact else _diagnose(self._load())
        if anchors:
            problems += self._check_anchors(anchors)
        problems.sort(key=lambda p: (p.seq, KINDS.index(p.kind) if p.kind in KINDS else 9))
        return Verification(ok=not problems, checked=checked, head=head, head_seq=head_seq, problems=problems)

    def _scan(self) -> tuple[int, int, str, bool]:
        prev_hash, prev_seq, n, intact = GENESIS, 0, 0, True
        with self.db.session() as s:
            for row in s.scalars(select(AuditLog).order_by(AuditLog.seq).execution_options(yield_per=1000)):
                n += 1
                if intact and (
                    row.seq != prev_seq + 1 or row.prev_hash != prev_hash or row_hash(row) != row.hash
                ):
                    intact = False
                prev_hash, prev_seq = row.hash, row.seq
        return n, prev_seq, prev_hash, intact

    def _load(self) -> list[_Row]:
        with self.db.session() as s:
            return [_Row.of(r) for r in s.scalars(select(AuditLog).order_by(AuditLog.seq))]

    def _check_anchors(self, anchors: Mapping[int, str]) -> list[Problem]:
        problems = []
        with self.db.session() as s:
            for seq, expected in sorted(anchors.items()):
                row = s.get(AuditLog, seq)
                if row is None:
                    problems.append(
                        Problem(seq, "deleted", f"anchored entry {seq} is missing: the log was cut")
                    )
                elif row.hash != expected:
                    problems.append(
                        Problem(
                            seq,
                            "edited",
                            f"entry {seq} does not match its anchor: the chain was rewritten at or before it",
                        )
                    )
        return problems


def _original_seqs(rows: list[_Row]) -> list[int | None]:
    """For each row, the sequence number its hash was computed with (None: its contents were changed)."""
    pos_by_hash = {r.hash: i for i, r in enumerate(rows)}
    succ_by_prev = {r.prev_hash: i for i, r in enumerate(rows)}
    orig: list[int | None] = [None] * len(rows)
    offset = 0
    for i, r in enumerate(rows):
        candidates = [
            r.seq,
            r.seq + offset,
            *(r.seq + d for d in range(-_RENUMBER_WINDOW, _RENUMBER_WINDOW + 1)),
        ]
        for c in dict.fromkeys(candidates):
            if c >= 1 and r.hash_as(c) == r.hash:
                orig[i] = c
                offset = c - r.seq
                break
    # Rows moved further than the window: their neighbours in the hash chain say where they came from.
    for i, r in enumerate(rows):
        if orig[i] is not None:
            continue
        guesses = []
        p = pos_by_hash.get(r.prev_hash)
        pred = orig[p] if p is not None else None
        if r.prev_hash == GENESIS:
            guesses.append(1)
        elif pred is not None:
            guesses.append(pred + 1)
        s = succ_by_prev.get(r.hash)
        succ = orig[s] if s is not None else None
        if succ is not None:
            guesses.append(succ - 1)
        for c in guesses:
            if c >= 1 and r.hash_as(c) == r.hash:
                orig[i] = c
                break
    return orig


def _diagnose(rows: list[_Row]) -> list[Problem]:
    """Explain a broken chain: which stored rows were edited, which are missing, inserted or moved.

    Each row's stored hash still says what it was written as (its original number, via
    ``_original_seqs``) and its ``prev_hash`` says which entry it originally followed. Comparing that
    original chain with the stored order tells the kinds of tampering apart.
    """
    found: dict[int, Problem] = {}
    rank = {"inserted": 4, "reordered": 3, "deleted": 2, "edited": 1}

    def add(seq: int, kind: str, message: str) -> None:
        old = found.get(seq)
        if old is None or rank[kind] > rank[old.kind]:
            found[seq] = Problem(seq, kind, message)

    n = len(rows)
    orig = _original_seqs(rows)
    by_hash = {r.hash: i for i, r in enumerate(rows)}
    claims: dict[str, list[int]] = {}
    for i, r in enumerate(rows):
        claims.setdefault(r.prev_hash, []).append(i)

    def missing_pred(j: int) -> bool:
        return rows[j].prev_hash != GENESIS and rows[j].prev_hash not in by_hash

    # Entries whose original predecessor is gone: deleted, or rewritten with a new hash.
    rewritten: set[int] = set()
    explained: set[int] = set()
    for j in range(n):
        if not missing_pred(j):
            continue
        i = j - 1
        before = orig[i] if i >= 0 else 0
        mine = orig[j]
        r = rows[j]
        if i >= 0 and mine is not None and before is not None and mine == before + 1:
            prev = rows[i]
            add(
                prev.seq,
                "edited",
                f"entry {prev.seq} ({prev.action}) was rewritten and re-hashed: "
                f"entry {r.seq} still points at the original",
            )
            rewritten.add(i)
        elif mine is not None and before is not None and mine > before + 1:
            first, last = before + 1, mine - 1
            span = f"entry {first} is" if first == last else f"entries {first}..{last} are"
            renumbered = "; the entries after were renumbered to hide the gap" if mine != r.seq else ""
            add(r.seq, "deleted", f"{span} missing before entry {r.seq}{renumbered}")
        else:
            add(r.seq, "deleted", f"the entry that entry {r.seq} followed is missing")
        explained.add(j)

    # Entries no later entry follows (except the last): not part of the original chain.
    inserted: set[int] = set()
    for i, r in enumerate(rows):
        if i == n - 1 or r.hash in claims or i in rewritten:
            continue
        forked = len(claims.get(r.prev_hash, ())) > 1
        if forked or orig[i] is None or not (i + 1 < n and missing_pred(i + 1)):
            add(
                r.seq,
                "inserted",
                f"entry {r.seq} ({r.action}) is not part of the original chain: it was inserted",
            )
            inserted.add(i)

    for i, r in enumerate(rows):
        if orig[i] is None and i not in inserted:
            add(
                r.seq,
                "edited",
                f"entry {r.seq} ({r.action}) was changed: its contents no longer match its hash",
            )

    # Moved entries: their place among the genuine entries differs from the place they were written in.
    genuine = [i for i in range(n) if orig[i] is not None and i not in inserted]
    by_orig = sorted(genuine, key=lambda i: (orig[i], i))
    for stored_pos, (i, j) in enumerate(zip(genuine, by_orig, strict=True)):
        if i != j:
            r = rows[i]
            add(
                r.seq,
                "reordered",
                f"entry {r.seq} ({r.action}) is out of place: it was written as entry "
                f"{orig[i]}, position {stored_pos + 1} of the surviving entries",
            )

    # Renumbering (number changed, contents intact) that nothing above explains is an edit too.
    offsets = [o - r.seq if o is not None else None for o, r in zip(orig, rows, strict=True)]
    for i, r in enumerate(rows):
        offset = offsets[i]
        if not offset:
            continue
        starts_run = i == 0 or offsets[i - 1] != offset
        nearby = r.seq in found or i in explained or (i > 0 and (rows[i - 1].seq in found))
        if starts_run and not nearby:
            add(r.seq, "edited", f"entry {r.seq} was renumbered (written as entry {r.seq + offset})")
    return list(found.values())
