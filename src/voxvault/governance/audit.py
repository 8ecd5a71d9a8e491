"""The tamper-evident audit trail: append-only rows chained by SHA-256 over canonical JSON.

Each row's hash covers its sequence number, time, actor, action, target, details and the previous row's
hash. ``verify`` walks the chain and names every row that was edited, deleted, inserted or moved, by its
sequence number. Spoken text is never recorded, only its SHA-256 and length.

Keyed chain (issue 29, finding 5): with ``ChainKeys`` (what the service always uses) each hash is an
HMAC-SHA256 under a random key kept outside the database (sealed by the master key in the blob store,
``audit/chain-key``), so write access to the database is not enough to forge an entry or rebuild the
chain from a changed row. A checkpoint outside the database (``audit/checkpoint``: the latest seq and
hash, MACed) is rewritten after appends (at most once per ``checkpoint_interval_s``), so a log cut short or
wiped on a server that has run is a finding. Logs written before the key existed keep verifying: their
entries (below the checkpoint's ``keyed_from``) are plain SHA-256, every later one must carry the MAC.

Limits (see docs/security.md): without ``ChainKeys`` (a bare ``AuditTrail(db)``) the chain is plain
SHA-256, and someone with write access to the database *and* knowledge of this scheme can rebuild a
valid chain from the point they changed, or cut entries off the end. Anchoring defeats both: copy the
head (``voxvault audit verify`` prints ``seq:hash``) somewhere they cannot write, and pass it back with
``--anchor``; a rewritten or shortened chain no longer matches it.
"""

from __future__ import annotations

import atexit
import datetime as dt
import hashlib
import hmac
import json
import logging
import os
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.exc import IntegrityError, OperationalError

from voxvault.errors import VoxError
from voxvault.governance.crypto import Envelope
from voxvault.store.blobs import BlobNotFound, BlobStore
from voxvault.store.db import Database
from voxvault.store.models import AuditLog, utcnow

log = logging.getLogger(__name__)

GENESIS = "0" * 64
_PG_AUDIT_LOCK = 0x617564_6974  # "audit"
# How far a row's stored number may be from its original one and still be recognised (renumbering).
_RENUMBER_WINDOW = 8
KINDS = ("edited", "deleted", "inserted", "reordered", "truncated", "anchor")
CHAIN_KEY_BLOB = "audit/chain-key"
CHECKPOINT_BLOB = "audit/checkpoint"
LEGACY = 2**62  # keyed_from of a chain with no key: every entry is plain SHA-256


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

    def hash_as(self, seq: int, chain: Hasher | None = None) -> str:
        """This row's hash had it been written with sequence number ``seq``."""
        body = canonical(seq, self.ts, self.actor, self.action, self.target, self.details, self.prev_hash)
        return (chain or PLAIN).digest(seq, body)


@dataclass(frozen=True)
class Hasher:
    """How entry ``seq`` is hashed: plain SHA-256 below ``keyed_from``, HMAC-SHA256 under ``key`` from it."""

    key: bytes | None = None
    keyed_from: int = LEGACY

    def digest(self, seq: int, body: bytes) -> str:
        if self.key is not None and seq >= self.keyed_from:
            return hmac.new(self.key, body, hashlib.sha256).hexdigest()
        return hashlib.sha256(body).hexdigest()


PLAIN = Hasher()


def row_hash(row: AuditLog, chain: Hasher | None = None) -> str:
    return _Row.of(row).hash_as(row.seq, chain)


@dataclass(frozen=True)
class Checkpoint:
    """The chain's last known head, kept outside the database; ``valid`` is False when its MAC fails."""

    seq: int
    hash: str
    keyed_from: int
    valid: bool = True

    def body(self) -> bytes:
        doc = {"seq": self.seq, "hash": self.hash, "keyed_from": self.keyed_from}
        return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()


class CheckpointMissing(Exception):
    """The checkpoint an appender expected is gone or forged (reported by ``verify``)."""


class ChainKeys:
    """The audit chain's MAC key and checkpoint, both in the blob store (outside the database).

    The key is 32 random bytes sealed by the master key (so master-key rotation re-wraps it with every
    other blob, and a stolen data dir without the master key cannot forge entries); the checkpoint is
    plain JSON with an HMAC, readable by anyone and forgeable by no one without the key.
    """

    def __init__(self, blobs: BlobStore, envelope: Envelope) -> None:
        self.blobs = blobs
        self.envelope = envelope
        self._key: bytes | None = None
        self._lock = threading.Lock()

    def exists(self) -> bool:
        return self._key is not None or self.blobs.exists(CHAIN_KEY_BLOB)

    def key(self, create: bool = False) -> bytes | None:
        """The MAC key; made on first use when ``create`` (a fresh install, or an upgraded unkeyed log)."""
        with self._lock:
            if self._key is None:
                try:
                    self._key = self.envelope.open(self.blobs.get(CHAIN_KEY_BLOB), "audit:chain-key")
                except BlobNotFound:
                    if not create:
                        return None
                    self.blobs.put(CHAIN_KEY_BLOB, self.envelope.seal(os.urandom(32), "audit:chain-key"))
                    self._key = self.envelope.open(self.blobs.get(CHAIN_KEY_BLOB), "audit:chain-key")
            return self._key

    def read_checkpoint(self) -> Checkpoint | None:
        try:
            raw = json.loads(self.blobs.get(CHECKPOINT_BLOB))
            cp = Checkpoint(int(raw["seq"]), str(raw["hash"]), int(raw["keyed_from"]))
            mac = str(raw["mac"])
        except BlobNotFound:
            return None
        except (ValueError, KeyError, TypeError):
            return Checkpoint(0, GENESIS, LEGACY, valid=False)
        key = self.key()
        valid = key is not None and hmac.compare_digest(
            mac, hmac.new(key, b"checkpoint|" + cp.body(), hashlib.sha256).hexdigest()
        )
        return Checkpoint(cp.seq, cp.hash, cp.keyed_from, valid=valid)

    def write_checkpoint(self, seq: int, digest: str, keyed_from: int, *, initial: bool = False) -> None:
        """Record the head, never moving it backwards (several processes append to one chain).

        Only the first checkpoint (``initial``) may be written where none is: a checkpoint that vanished
        or fails its MAC is tampering, and writing a fresh one would hide it (``CheckpointMissing``).
        """
        key = self.key(create=True)
        assert key is not None
        current = self.read_checkpoint()
        if not initial and (current is None or not current.valid):
            raise CheckpointMissing("the audit checkpoint is missing or fails its MAC")
        if current is not None and current.valid and current.seq >= seq:
            return
        cp = Checkpoint(seq, digest, keyed_from)
        mac = hmac.new(key, b"checkpoint|" + cp.body(), hashlib.sha256).hexdigest()
        doc = {"seq": seq, "hash": digest, "keyed_from": keyed_from, "mac": mac}
        self.blobs.put(CHECKPOINT_BLOB, json.dumps(doc, sort_keys=True).encode())


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
    def __init__(
        self, db: Database, keys: ChainKeys | None = None, *, checkpoint_interval_s: float = 1.0
    ) -> None:
        self.db = db
        self.keys = keys
        self.checkpoint_interval_s = checkpoint_interval_s
        self._lock = threading.Lock()
        self._hasher: Hasher | None = None
        self._cp_lock = threading.Lock()
        self._cp_pending: tuple[int, str] | None = None
        self._cp_last = -1e9
        self._cp_broken = False  # the checkpoint is missing or forged: leave it for verify to report
        if keys is not None:
            atexit.register(self.flush_checkpoint)

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
                seq, digest = self._append(action, actor, target, details)
            except (IntegrityError, OperationalError):
                if attempt == 19:
                    raise
                time.sleep(0.01 * (attempt + 1))
            else:
                self._checkpoint_later(seq, digest)
                return seq
        raise AssertionError("unreachable")

    def _append(
        self, action: str, actor: str | None, target: str | None, details: dict[str, Any]
    ) -> tuple[int, str]:
        with self._lock, self.db.session() as s:
            if self.db.dialect == "postgresql":
                s.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_AUDIT_LOCK})
            last = s.execute(
                select(AuditLog.seq, AuditLog.hash).order_by(AuditLog.seq.desc()).limit(1)
            ).first()
            seq = (last[0] + 1) if last else 1
            prev = last[1] if last else GENESIS
            hasher = self._appending_hasher(seq - 1, prev)
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
            row.hash = row_hash(row, hasher)
            s.add(row)
            return seq, row.hash

    # -- the key and the checkpoint ---------------------------------------------------------------------
    def _appending_hasher(self, head_seq: int, head_hash: str) -> Hasher:
        """The hasher for new entries; on the first append ever (or after an upgrade) the key is made."""
        if self.keys is None:
            return PLAIN
        if self._hasher is not None:
            return self._hasher
        cp = self.keys.read_checkpoint()
        if cp is not None and cp.valid:
            key = self.keys.key()
            assert key is not None
            self._hasher = Hasher(key, cp.keyed_from)
        elif cp is None and not self.keys.exists():
            # A fresh install, or a log written before the chain was keyed: key every entry from here.
            key = self.keys.key(create=True)
            assert key is not None
            self._hasher = Hasher(key, head_seq + 1)
            self.keys.write_checkpoint(head_seq, head_hash, head_seq + 1, initial=True)
            if head_seq:
                log.info("audit chain keyed from entry %d on (entries before stay SHA-256)", head_seq + 1)
        else:
            key = self.keys.key(create=True)
            assert key is not None
            self._hasher = Hasher(key, self._first_keyed(key, head_seq))
            self._cp_broken = True
            log.error("audit checkpoint is missing or fails its MAC; 'voxvault audit verify' reports it")
        return self._hasher

    def _first_keyed(self, key: bytes, head_seq: int) -> int:
        """Where the keyed part of a chain starts, from the entries themselves (the checkpoint is gone)."""
        probe = Hasher(key, 1)
        with self.db.session() as s:
            for row in s.scalars(select(AuditLog).order_by(AuditLog.seq).execution_options(yield_per=1000)):
                if row_hash(row, probe) == row.hash:
                    return int(row.seq)
        return head_seq + 1

    def _checkpoint_later(self, seq: int, digest: str) -> None:
        """Write the checkpoint now, unless one was written less than ``checkpoint_interval_s`` ago.

        A write costs two fsyncs (10-20 ms on a busy disk), too much for every synthesis; a skipped one is
        written by the next append after the interval, by ``verify`` in this process, or at exit.
        """
        if self.keys is None or self._cp_broken:
            return
        with self._cp_lock:
            self._cp_pending = (seq, digest)
            if time.monotonic() - self._cp_last >= self.checkpoint_interval_s:
                self._write_pending()

    def flush_checkpoint(self) -> None:
        """Write a pending checkpoint now (``verify`` and process exit do)."""
        with self._cp_lock:
            self._write_pending()

    def _write_pending(self) -> None:
        if self._cp_pending is None or self.keys is None or self._hasher is None or self._cp_broken:
            return
        seq, digest = self._cp_pending
        try:
            self.keys.write_checkpoint(seq, digest, self._hasher.keyed_from)
        except CheckpointMissing:
            self._cp_broken = True
            log.error("audit checkpoint is missing or fails its MAC; 'voxvault audit verify' reports it")
            return
        except Exception:  # noqa: BLE001 - the entry is stored; the next append writes the checkpoint
            log.warning("audit checkpoint not written (entry %d)", seq, exc_info=True)
            return
        self._cp_pending = None
        self._cp_last = time.monotonic()

    def reanchor(self, *, actor: str | None = None) -> Verification:
        """After investigating a missing or forged checkpoint: anchor the chain at its current head.

        Audited (``audit.reanchored``, with what verification found before) so it cannot hide silently.
        """
        if self.keys is None:
            raise VoxError("audit_unkeyed", "this audit trail has no key to anchor with", 409)
        before = self.verify()
        key = self.keys.key(create=True)
        assert key is not None
        cp = self.keys.read_checkpoint()
        head_seq, head_hash = self.head()
        keyed_from = cp.keyed_from if cp is not None and cp.valid else self._first_keyed(key, head_seq)
        self._hasher = Hasher(key, keyed_from)
        self._cp_broken = False
        self.keys.blobs.delete(CHECKPOINT_BLOB)
        self.keys.write_checkpoint(head_seq, head_hash, keyed_from, initial=True)
        self.record(
            "audit.reanchored",
            actor=actor,
            details={"problems": [{"seq": p.seq, "kind": p.kind} for p in before.problems][:100]},
        )
        self.flush_checkpoint()
        return self.verify()

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
        self.flush_checkpoint()  # what this process appended is anchored before it is checked
        hasher, checkpoint, expected = self._verifying_hasher()
        checked, head_seq, head, intact = self._scan(hasher)
        problems = [] if intact else _diagnose(self._load(), hasher)
        problems += self._check_checkpoint(checkpoint, expected, head_seq)
        if anchors:
            problems += self._check_anchors(anchors)
        problems.sort(key=lambda p: (p.seq, KINDS.index(p.kind) if p.kind in KINDS else 9))
        return Verification(ok=not problems, checked=checked, head=head, head_seq=head_seq, problems=problems)

    def _verifying_hasher(self) -> tuple[Hasher, Checkpoint | None, bool]:
        """The hasher the stored chain must match, the checkpoint found, and whether one must exist."""
        if self.keys is None:
            return PLAIN, None, False
        key = self.keys.key()
        cp = self.keys.read_checkpoint()
        if key is None:  # never keyed (a checkpoint without its key is reported by _check_checkpoint)
            return PLAIN, cp, False
        if cp is not None and cp.valid:
            return Hasher(key, cp.keyed_from), cp, True
        head_seq, _ = self.head()
        return Hasher(key, self._first_keyed(key, head_seq)), cp, True

    def _check_checkpoint(self, cp: Checkpoint | None, expected: bool, head_seq: int) -> list[Problem]:
        if cp is None:
            if not expected:
                return []
            return [
                Problem(
                    head_seq,
                    "truncated",
                    "the checkpoint kept outside the database is missing: the log may have been cut or "
                    "wiped (after investigating, 'voxvault audit reanchor')",
                )
            ]
        if self.keys is not None and self.keys.key() is None:
            return [Problem(head_seq, "anchor", "the audit chain key is missing from the blob store")]
        if not cp.valid:
            return [Problem(head_seq, "anchor", "the checkpoint outside the database fails its MAC: forged")]
        if cp.seq == 0:
            return []
        with self.db.session() as s:
            if s.scalar(select(AuditLog.seq).where(AuditLog.hash == cp.hash)) is not None:
                return []  # the checkpointed entry is there (if renumbered, the chain names it)
            row = s.get(AuditLog, cp.seq)
        if row is None and head_seq >= cp.seq:
            return []  # a gap inside the log: the chain itself names it
        if row is None:
            return [
                Problem(
                    cp.seq,
                    "truncated",
                    f"the log was cut: entry {cp.seq} was written (checkpoint), the log ends at {head_seq}",
                )
            ]
        if row.hash != cp.hash:
            return [
                Problem(
                    cp.seq,
                    "edited",
                    f"entry {cp.seq} does not match the checkpoint: the chain was rewritten at or before it",
                )
            ]
        return []

    def _scan(self, hasher: Hasher = PLAIN) -> tuple[int, int, str, bool]:
        prev_hash, prev_seq, n, intact = GENESIS, 0, 0, True
        with self.db.session() as s:
            for row in s.scalars(select(AuditLog).order_by(AuditLog.seq).execution_options(yield_per=1000)):
                n += 1
                if intact and (
                    row.seq != prev_seq + 1 or row.prev_hash != prev_hash or row_hash(row, hasher) != row.hash
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


def _original_seqs(rows: list[_Row], chain: Hasher = PLAIN) -> list[int | None]:
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
            if c >= 1 and r.hash_as(c, chain) == r.hash:
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
            if c >= 1 and r.hash_as(c, chain) == r.hash:
                orig[i] = c
                break
    return orig


def _diagnose(rows: list[_Row], chain: Hasher = PLAIN) -> list[Problem]:
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
    orig = _original_seqs(rows, chain)
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
        elif (
            i >= 0
            and before is None
            and mine is not None
            and (orig[i - 1] if i >= 1 else 0) == mine - 2
            and rows[i].prev_hash == (rows[i - 1].hash if i >= 1 else GENESIS)
        ):
            # Sits exactly in the original entry's slot and chains on, but fails its hash: a keyed chain's
            # entry rewritten by someone without the key (any hash they compute is wrong).
            prev = rows[i]
            add(
                prev.seq,
                "edited",
                f"entry {prev.seq} ({prev.action}) was replaced: its hash is not the chain's and "
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
