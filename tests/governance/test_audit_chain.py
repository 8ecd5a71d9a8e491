"""The audit chain: intact logs verify; every kind of tampering done straight in the database is named.

The attacker here has the database: they drop the append-only triggers (as anyone with DDL rights can)
and change rows with plain SQL, bypassing the ORM.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import threading
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import delete, select, update
from sqlalchemy.engine import Connection
from typer.testing import CliRunner

from voxvault.governance.audit import GENESIS, AuditTrail, ChainKeys, canonical
from voxvault.service import VoxVault
from voxvault.store.db import Database
from voxvault.store.models import AuditLog, utcnow

T = AuditLog.__table__


def _fill(vv: VoxVault, n: int = 6) -> None:
    for i in range(1, n + 1):
        vv.audit.record(
            "speech.created",
            actor=f"key-{i % 2}",
            target="alpha",
            details={"text_sha256": hashlib.sha256(str(i).encode()).hexdigest(), "text_chars": i},
        )


def _attack(vv: VoxVault, act: Callable[[Connection], None]) -> None:
    """Run ``act`` with the append-only guards removed, as someone with database rights would."""
    with vv.db.engine.begin() as conn:
        if vv.db.dialect == "postgresql":
            conn.exec_driver_sql("ALTER TABLE audit_log DISABLE TRIGGER USER")
        else:
            conn.exec_driver_sql("DROP TRIGGER IF EXISTS audit_log_no_update")
            conn.exec_driver_sql("DROP TRIGGER IF EXISTS audit_log_no_delete")
        act(conn)


def _row(conn: Connection, seq: int) -> Any:
    return conn.execute(select(T).where(T.c.seq == seq)).one()


def _hash(
    seq: int,
    ts: dt.datetime,
    actor: str | None,
    action: str,
    target: str | None,
    details: dict[str, Any],
    prev: str,
) -> str:
    return hashlib.sha256(canonical(seq, ts, actor, action, target, details, prev)).hexdigest()


def _renumber(conn: Connection, from_seq: int, by: int) -> None:
    """Shift every entry from ``from_seq`` on by ``by`` (through negatives: no transient duplicates)."""
    conn.execute(update(T).where(T.c.seq >= from_seq).values(seq=-T.c.seq))
    conn.execute(update(T).where(T.c.seq < 0).values(seq=-T.c.seq + by))


def _found(vv: VoxVault) -> list[tuple[int, str]]:
    result = vv.audit.verify()
    assert result.ok is (not result.problems)
    return [(p.seq, p.kind) for p in result.problems]


def test_intact_chain_verifies_and_exports(any_vv: VoxVault) -> None:
    _fill(any_vv)
    result = any_vv.audit.verify()
    assert result.ok and result.checked == 6 and result.head_seq == 6
    entries = list(any_vv.audit.entries())
    assert [e["seq"] for e in entries] == [1, 2, 3, 4, 5, 6]
    assert entries[0]["prev_hash"] == GENESIS
    assert all(b["prev_hash"] == a["hash"] for a, b in zip(entries, entries[1:], strict=False))
    assert [e["seq"] for e in any_vv.audit.entries(since_seq=4)] == [5, 6]
    assert result.anchor == f"6:{entries[-1]['hash']}"


def test_database_refuses_update_and_delete(any_vv: VoxVault) -> None:
    _fill(any_vv, 2)
    for stmt in (update(T).where(T.c.seq == 1).values(action="x"), delete(T).where(T.c.seq == 1)):
        with pytest.raises(Exception, match="append-only"), any_vv.db.engine.begin() as conn:
            conn.execute(stmt)
    assert any_vv.audit.verify().ok


def test_changed_details_are_named(any_vv: VoxVault) -> None:
    _fill(any_vv)
    _attack(any_vv, lambda c: c.execute(update(T).where(T.c.seq == 3).values(details={"text_chars": 999})))
    assert _found(any_vv) == [(3, "edited")]


def test_changed_and_rehashed_entry_is_named(any_vv: VoxVault) -> None:
    _fill(any_vv)

    def act(conn: Connection) -> None:
        r = _row(conn, 3)
        forged = {"text_chars": 1}
        conn.execute(
            update(T)
            .where(T.c.seq == 3)
            .values(details=forged, hash=_hash(3, r.ts, r.actor, r.action, r.target, forged, r.prev_hash))
        )

    _attack(any_vv, act)
    assert _found(any_vv) == [(3, "edited")]


def test_deleted_entry_is_named(any_vv: VoxVault) -> None:
    _fill(any_vv)
    _attack(any_vv, lambda c: c.execute(delete(T).where(T.c.seq == 3)))
    problems = any_vv.audit.verify().problems
    assert [(p.seq, p.kind) for p in problems] == [(4, "deleted")]
    assert "entry 3 is missing" in problems[0].message


def test_deleted_entry_hidden_by_renumbering_is_named(any_vv: VoxVault) -> None:
    _fill(any_vv)

    def act(conn: Connection) -> None:
        conn.execute(delete(T).where(T.c.seq == 3))
        _renumber(conn, 4, -1)

    _attack(any_vv, act)
    problems = any_vv.audit.verify().problems
    assert [(p.seq, p.kind) for p in problems] == [(3, "deleted")]
    assert "entry 3 is missing" in problems[0].message and "renumbered" in problems[0].message


@pytest.mark.parametrize("valid_hash", [True, False], ids=["forged-hash", "junk-hash"])
def test_inserted_entry_is_named(any_vv: VoxVault, valid_hash: bool) -> None:
    _fill(any_vv)

    def act(conn: Connection) -> None:
        before = _row(conn, 2)
        _renumber(conn, 3, +1)
        ts = before.ts + dt.timedelta(milliseconds=1)
        details = {"text_chars": 5}
        digest = _hash(3, ts, "key-x", "key.revoked", "k", details, before.hash) if valid_hash else "f" * 64
        conn.execute(
            T.insert().values(
                seq=3,
                ts=ts,
                actor="key-x",
                action="key.revoked",
                target="k",
                details=details,
                prev_hash=before.hash,
                hash=digest,
            )
        )

    _attack(any_vv, act)
    assert _found(any_vv) == [(3, "inserted")]


def test_swapped_entries_are_named(any_vv: VoxVault) -> None:
    _fill(any_vv)

    def act(conn: Connection) -> None:
        conn.execute(update(T).where(T.c.seq == 3).values(seq=-3))
        conn.execute(update(T).where(T.c.seq == 4).values(seq=3))
        conn.execute(update(T).where(T.c.seq == -3).values(seq=4))

    _attack(any_vv, act)
    assert _found(any_vv) == [(3, "reordered"), (4, "reordered")]


def test_entries_moved_far_apart_are_named(vv: VoxVault) -> None:
    _fill(vv, 30)

    def act(conn: Connection) -> None:
        conn.execute(update(T).where(T.c.seq == 2).values(seq=-2))
        conn.execute(update(T).where(T.c.seq == 27).values(seq=2))
        conn.execute(update(T).where(T.c.seq == -2).values(seq=27))

    _attack(vv, act)
    assert _found(vv) == [(2, "reordered"), (27, "reordered")]


def test_first_entry_deleted_is_named(vv: VoxVault) -> None:
    _fill(vv)
    _attack(vv, lambda c: c.execute(delete(T).where(T.c.seq == 1)))
    assert _found(vv) == [(2, "deleted")]


def test_renumbering_alone_is_named(vv: VoxVault) -> None:
    _fill(vv)
    _attack(vv, lambda c: c.execute(update(T).where(T.c.seq == 6).values(seq=9)))
    assert _found(vv) == [(9, "edited")]


def test_anchor_catches_cut_tail_and_rewritten_chain(any_vv: VoxVault) -> None:
    """An unkeyed trail (no key outside the database): only an anchor kept elsewhere catches these."""
    bare = AuditTrail(any_vv.db)
    for i in range(6):
        bare.record("speech.created", actor="k", target="alpha", details={"text_chars": i})
    anchor = bare.verify().anchor
    seq, digest = anchor.split(":")
    _attack(any_vv, lambda c: c.execute(delete(T).where(T.c.seq == 6)))
    assert bare.verify().ok  # a cut tail leaves a valid chain...
    assert [(p.seq, p.kind) for p in bare.verify({int(seq): digest}).problems] == [(6, "deleted")]

    def rewrite_from_3(conn: Connection) -> None:  # ...and so does a full rewrite from the change on
        prev = _row(conn, 2).hash
        for s in (3, 4, 5):
            r = _row(conn, s)
            details = {"text_chars": 0} if s == 3 else r.details
            h = _hash(s, r.ts, r.actor, r.action, r.target, details, prev)
            conn.execute(update(T).where(T.c.seq == s).values(details=details, prev_hash=prev, hash=h))
            prev = h

    _attack(any_vv, rewrite_from_3)
    assert bare.verify().ok
    head_seq, head = bare.head()
    old = bare.verify({5: "0" * 64})
    assert [(p.seq, p.kind) for p in old.problems] == [(5, "edited")]
    assert bare.verify({head_seq: head}).ok


def test_spoken_text_is_not_stored(vv: VoxVault) -> None:
    vv.audit.record("speech.created", actor="k", details={"text_sha256": "ab" * 32, "text_chars": 12})
    assert "text" not in {
        k for e in vv.audit.entries() for k in e["details"] if k not in ("text_sha256", "text_chars")
    }


def test_concurrent_writers_in_two_processes_keep_one_chain(vv: VoxVault) -> None:
    """Two AuditTrails on one SQLite file (as the server and the CLI) interleave without a fork."""
    other = AuditTrail(Database(vv.settings.resolved_database_url), ChainKeys(vv.blobs, vv.envelope))
    _fill(vv, 1)
    errors: list[BaseException] = []

    def write(trail: AuditTrail, tag: str) -> None:
        try:
            for i in range(15):
                trail.record("test.concurrent", actor=tag, details={"i": i})
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(t, f"w{n}")) for n, t in enumerate([vv.audit, other] * 2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    result = vv.audit.verify()
    assert result.ok and result.checked == 61
    other.db.dispose()


def test_cli_verify_names_problems_and_exits_1(vv: VoxVault, monkeypatch: pytest.MonkeyPatch) -> None:
    from voxvault.cli import app

    monkeypatch.setenv("VOXVAULT_DATA_DIR", str(vv.settings.data_dir))
    _fill(vv)
    runner = CliRunner()
    ok = runner.invoke(app, ["audit", "verify"])
    assert ok.exit_code == 0, ok.output
    assert "intact: 6 entries" in ok.output
    anchor = ok.output.split("anchor (keep it somewhere else):")[1].split()[0]

    def act(conn: Connection) -> None:
        conn.execute(update(T).where(T.c.seq == 2).values(action="key.created"))
        conn.execute(delete(T).where(T.c.seq == 5))

    _attack(vv, act)
    bad = runner.invoke(app, ["audit", "verify", "--anchor", anchor])
    assert bad.exit_code == 1
    assert "seq 2: edited" in bad.output
    assert "seq 6: deleted" in bad.output and "entry 5 is missing" in bad.output

    exported = runner.invoke(app, ["audit", "export", "--since", "3"])
    assert exported.exit_code == 0
    assert [line.count('"seq"') for line in exported.output.splitlines()] == [1, 1]  # 4 and 6


def test_export_since_time(vv: VoxVault) -> None:
    _fill(vv, 2)
    cut = utcnow()
    _fill(vv, 2)
    assert [e["seq"] for e in vv.audit.entries(since_ts=cut)] == [3, 4]


def _chain(n: int) -> list[Any]:
    from voxvault.governance.audit import _Row

    rows, prev = [], GENESIS
    t0 = utcnow()
    for seq in range(1, n + 1):
        r = _Row(seq, t0 + dt.timedelta(seconds=seq), "k", "speech.created", "alpha", {"i": seq}, prev, "")
        r = _Row(**{**r.__dict__, "hash": r.hash_as(seq)})
        rows.append(r)
        prev = r.hash
    return rows


@pytest.mark.parametrize("seed", range(40))
def test_random_tampering_is_always_reported_and_never_crashes(seed: int) -> None:
    """Any mix of edits, deletions, swaps and renumbering (short of cutting the tail) is reported."""
    import random

    from voxvault.governance.audit import _diagnose, _Row

    rng = random.Random(seed)
    base = _chain(25)
    rows = list(base)
    ops = []
    for _ in range(rng.randint(1, 3)):
        op = rng.choice(["edit", "delete", "swap", "renumber"])
        i = rng.randrange(len(rows) - 1)  # never the last row alone: a cut tail needs an anchor
        ops.append((op, i))
        if op == "edit":
            rows[i] = _Row(**{**rows[i].__dict__, "details": {"i": -1}})
        elif op == "delete":
            del rows[i]
        elif op == "swap":
            j = rng.randrange(len(rows))
            a, b = rows[i], rows[j]
            rows[i], rows[j] = _Row(**{**b.__dict__, "seq": a.seq}), _Row(**{**a.__dict__, "seq": b.seq})
        else:
            rows = rows[:i] + [_Row(**{**r.__dict__, "seq": r.seq - 1}) for r in rows[i:]]
            if i and rows[i].seq == rows[i - 1].seq:
                rows = rows[:i] + [_Row(**{**r.__dict__, "seq": r.seq + 1}) for r in rows[i:]]
    problems = _diagnose(rows)
    assert bool(problems) == (rows != base), (ops, problems)
    assert all(p.kind in ("edited", "deleted", "inserted", "reordered") for p in problems)


@pytest.mark.parametrize("seed", range(30))
def test_single_tampering_is_named_precisely(seed: int) -> None:
    import random

    from voxvault.governance.audit import _diagnose, _Row

    rng = random.Random(seed)
    rows = _chain(20)
    i = rng.randrange(19)
    j = rng.choice([k for k in range(19) if k != i])
    a, b = rows[i], rows[j]
    edited = [*rows[:i], _Row(**{**a.__dict__, "details": {"i": 0}}), *rows[i + 1 :]]
    assert [(p.seq, p.kind) for p in _diagnose(edited)] == [(a.seq, "edited")]
    deleted = rows[:i] + rows[i + 1 :]
    assert [(p.seq, p.kind) for p in _diagnose(deleted)] == [(a.seq + 1, "deleted")]
    swapped = list(rows)
    swapped[i], swapped[j] = _Row(**{**b.__dict__, "seq": a.seq}), _Row(**{**a.__dict__, "seq": b.seq})
    assert sorted((p.seq, p.kind) for p in _diagnose(swapped)) == sorted(
        [(a.seq, "reordered"), (b.seq, "reordered")]
    )
