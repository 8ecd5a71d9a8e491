"""Issue 29, finding 5: with write access to the database alone, no forged or cut audit log verifies.

The attacker has the database (drops the append-only triggers, writes plain SQL) and knows the scheme,
but not the chain key kept outside the database (sealed by the master key in the blob store). Before the
chain was keyed, every attack below verified as intact.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import delete, insert, select, update
from sqlalchemy.engine import Connection
from typer.testing import CliRunner

from voxvault.governance.audit import CHECKPOINT_BLOB, AuditTrail, canonical
from voxvault.service import VoxVault
from voxvault.store.models import AuditLog

T = AuditLog.__table__


def _fill(vv: VoxVault, n: int = 6) -> None:
    for i in range(1, n + 1):
        vv.audit.record("speech.created", actor=f"key-{i % 2}", target="alpha", details={"text_chars": i})


def _attack(vv: VoxVault, act: Callable[[Connection], None]) -> None:
    with vv.db.engine.begin() as conn:
        if vv.db.dialect == "postgresql":
            conn.exec_driver_sql("ALTER TABLE audit_log DISABLE TRIGGER USER")
        else:
            conn.exec_driver_sql("DROP TRIGGER IF EXISTS audit_log_no_update")
            conn.exec_driver_sql("DROP TRIGGER IF EXISTS audit_log_no_delete")
        act(conn)


def _sha(seq: int, ts: dt.datetime, r: Any, details: dict[str, Any], prev: str) -> str:
    """The hash anyone can compute: the documented canonical form, SHA-256 (no key)."""
    return hashlib.sha256(canonical(seq, ts, r.actor, r.action, r.target, details, prev)).hexdigest()


def _found(vv: VoxVault) -> list[tuple[int, str]]:
    result = vv.audit.verify()
    assert result.ok is (not result.problems)
    return [(p.seq, p.kind) for p in result.problems]


def test_forged_append_is_found(any_vv: VoxVault) -> None:
    _fill(any_vv)
    assert any_vv.audit.verify().ok

    def forge(conn: Connection) -> None:
        last = conn.execute(select(T).where(T.c.seq == 6)).one()
        ts = last.ts if last.ts.tzinfo else last.ts.replace(tzinfo=dt.UTC)
        details = {"text_chars": 42}
        digest = _sha(7, ts, last, details, last.hash)
        conn.execute(
            insert(T).values(
                seq=7,
                ts=last.ts,
                actor=last.actor,
                action=last.action,
                target=last.target,
                details=details,
                prev_hash=last.hash,
                hash=digest,
            )
        )

    _attack(any_vv, forge)
    assert _found(any_vv) == [(7, "edited")]


def test_rewrite_from_an_entry_on_is_found(any_vv: VoxVault) -> None:
    _fill(any_vv)

    def rewrite_from_3(conn: Connection) -> None:
        prev = conn.execute(select(T).where(T.c.seq == 2)).one().hash
        for seq in (3, 4, 5, 6):
            r = conn.execute(select(T).where(T.c.seq == seq)).one()
            ts = r.ts if r.ts.tzinfo else r.ts.replace(tzinfo=dt.UTC)
            details = {"text_chars": 0} if seq == 3 else r.details
            digest = _sha(seq, ts, r, details, prev)
            conn.execute(update(T).where(T.c.seq == seq).values(details=details, prev_hash=prev, hash=digest))
            prev = digest

    _attack(any_vv, rewrite_from_3)
    found = _found(any_vv)
    assert (3, "edited") in found and (6, "edited") in found, found
    assert {kind for _, kind in found} == {"edited"}


def test_cut_tail_is_found(any_vv: VoxVault) -> None:
    _fill(any_vv)
    _attack(any_vv, lambda c: c.execute(delete(T).where(T.c.seq >= 5)))
    assert _found(any_vv) == [(6, "truncated")]


def test_wiped_log_is_found(any_vv: VoxVault) -> None:
    _fill(any_vv)
    _attack(any_vv, lambda c: c.execute(delete(T)))
    result = any_vv.audit.verify()
    assert result.checked == 0 and [(p.seq, p.kind) for p in result.problems] == [(6, "truncated")]


def test_a_removed_or_forged_checkpoint_is_found(any_vv: VoxVault) -> None:
    _fill(any_vv)
    raw = any_vv.blobs.get(CHECKPOINT_BLOB)
    forged = json.loads(raw)
    forged["seq"] = 4
    any_vv.blobs.put(CHECKPOINT_BLOB, json.dumps(forged).encode())
    assert _found(any_vv) == [(6, "anchor")]
    any_vv.blobs.delete(CHECKPOINT_BLOB)
    assert _found(any_vv) == [(6, "truncated")]
    any_vv.audit.record("speech.created", actor="k")  # appends go on, and never paper over the finding
    assert _found(any_vv) == [(7, "truncated")]
    after = any_vv.audit.reanchor(actor="operator")  # the operator looked into it: anchor anew, audited
    assert after.ok and after.head_seq == 8
    assert [e["action"] for e in any_vv.audit.entries(since_seq=7)] == ["audit.reanchored"]


def test_a_log_written_before_the_key_keeps_verifying_and_is_keyed_from_then_on(any_vv: VoxVault) -> None:
    legacy = AuditTrail(any_vv.db)  # what earlier versions wrote: plain SHA-256
    for i in range(3):
        legacy.record("speech.created", actor="old", details={"i": i})
    _fill(any_vv, 2)  # the upgraded server: keyed from entry 4 on
    assert any_vv.audit.verify().ok
    checkpoint = json.loads(any_vv.blobs.get(CHECKPOINT_BLOB))
    assert (checkpoint["seq"], checkpoint["keyed_from"]) == (5, 4)
    legacy.record("speech.created", actor="forger")  # the old, keyless scheme no longer passes
    assert _found(any_vv) == [(6, "edited")]


def test_cli_verify_fails_on_a_wiped_log(vv: VoxVault, monkeypatch: pytest.MonkeyPatch) -> None:
    from voxvault.cli import app

    monkeypatch.setenv("VOXVAULT_DATA_DIR", str(vv.settings.data_dir))
    _fill(vv, 3)
    vv.audit.flush_checkpoint()  # the server's next write (at most a second later; docs/security.md)
    runner = CliRunner()
    assert runner.invoke(app, ["audit", "verify"]).exit_code == 0
    _attack(vv, lambda c: c.execute(delete(T)))
    bad = runner.invoke(app, ["audit", "verify"])
    assert bad.exit_code == 1 and "seq 3: truncated" in bad.output, bad.output
    reanchored = runner.invoke(app, ["audit", "reanchor", "--yes"])
    assert reanchored.exit_code == 0, reanchored.output
    assert runner.invoke(app, ["audit", "verify"]).exit_code == 0
