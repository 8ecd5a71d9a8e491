"""Refused enrollments are slowed down and then locked, per key, per tenant and per speaker (issue 25).

The counts live in the database: every test runs on SQLite and on the local PostgreSQL, and two guards
(or two VoxVault instances) on one database share them, as workers and restarts of one deployment do.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from tests.store.conftest import pg_url, pg_user  # noqa: F401 (fixtures)

from voxvault.config import Settings
from voxvault.errors import VoxError
from voxvault.store import Database
from voxvault.store.models import EnrollmentRefusal
from voxvault.voices.attempts import AttemptGuard, AttemptPolicy


class Audit:
    def __init__(self) -> None:
        self.entries: list[tuple[str, dict[str, Any]]] = []
        self._lock = threading.Lock()

    def record(
        self, action: str, *, actor: str | None = None, target: str | None = None, details: Any = None
    ) -> int:
        with self._lock:
            self.entries.append((action, details or {}))
            return len(self.entries)


class Clock:
    def __init__(self) -> None:
        self.now = 1_796_000_000.0  # wall time: the rows are shared by processes

    def __call__(self) -> float:
        return self.now


POLICY = AttemptPolicy(slow_after=2, cooldown_s=60, lock_after=4, lock_s=3600, window_s=86_400)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'voxvault.db'}"
    url: str = request.getfixturevalue("pg_url")
    return url


@pytest.fixture
def db(database_url: str) -> Iterator[Database]:
    database = Database(database_url)
    database.migrate()
    yield database
    database.dispose()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def audit() -> Audit:
    return Audit()


@pytest.fixture
def g(db: Database, audit: Audit, clock: Clock) -> AttemptGuard:
    return AttemptGuard(db, audit, POLICY, clock)  # type: ignore[arg-type]


def refused_code(g: AttemptGuard, key: str, project: str, name: str) -> str | None:
    try:
        g.check(key, project, name)
    except VoxError as exc:
        assert exc.status == 429 and exc.details["retry_after"] >= 1
        return exc.code
    return None


def test_refusals_slow_down_then_lock_and_the_lock_is_audited(
    g: AttemptGuard, audit: Audit, clock: Clock
) -> None:
    for i in range(2):
        assert refused_code(g, "k1", "p1", "Jane Doe") is None
        g.refused("k1", "p1", "Jane Doe", consent_id=f"c{i}")
    assert refused_code(g, "k1", "p1", "Jane Doe") == "enrollment_rate_limited"
    clock.now += 61
    assert refused_code(g, "k1", "p1", "Jane Doe") is None  # waited out the cooldown
    g.refused("k1", "p1", "Jane Doe", consent_id="c2")
    clock.now += 61
    g.refused("k1", "p1", "Jane Doe", consent_id="c3")  # the fourth: locked
    clock.now += 61
    assert refused_code(g, "k1", "p1", "Jane Doe") == "enrollment_locked"
    assert {d["scope"] for a, d in audit.entries if a == "consent.attempts_locked"} == {
        "key",
        "tenant",
        "subject",
    }
    assert all("Jane" not in str(d) for _, d in audit.entries)
    clock.now += 3600
    assert refused_code(g, "k1", "p1", "Jane Doe") is None  # the lock ends
    g.refused("k1", "p1", "Jane Doe", consent_id="c4")  # and counting started again after it
    assert refused_code(g, "k1", "p1", "Jane Doe") is None


@pytest.mark.parametrize(
    ("key", "project", "name", "scope"),
    [
        ("k2", "p1", "Someone Else", "tenant"),  # another key, another speaker, same tenant
        ("k1", "p2", "Someone Else", "key"),  # the same key in another tenant
    ],
)
def test_each_scope_counts_on_its_own(g: AttemptGuard, key: str, project: str, name: str, scope: str) -> None:
    for i in range(4):
        g.refused("k1", "p1", "Jane Doe", consent_id=f"c{i}")
    with pytest.raises(VoxError) as err:
        g.check(key, project, name)
    assert err.value.code == "enrollment_locked" and err.value.details["scope"] == scope
    assert refused_code(g, "k3", "p3", "Jane Doe") is None  # the subject is per tenant


def test_the_speaker_counts_across_keys_and_spellings(g: AttemptGuard) -> None:
    for i, key in enumerate(("k1", "k2", "k3", "k4")):
        g.refused(key, "p1", "Jane  DOE" if i % 2 else "jane doe", consent_id=f"c{i}")
    with pytest.raises(VoxError) as err:
        g.check("k9", "p1", "Jane Doe")
    assert err.value.details["scope"] in ("tenant", "subject")


def test_old_refusals_fall_out_of_the_window_and_are_deleted(
    g: AttemptGuard, db: Database, clock: Clock
) -> None:
    g.refused("k1", "p1", "Jane Doe", consent_id="c0")
    g.refused("k1", "p1", "Jane Doe", consent_id="c1")
    clock.now += 86_401
    assert refused_code(g, "k1", "p1", "Jane Doe") is None
    g.refused("k9", "p9", "Someone Else", consent_id="c2")  # any new refusal clears out the old rows
    with db.session() as s:
        assert s.scalar(select(func.count()).select_from(EnrollmentRefusal)) == 3  # only c2's three scopes


def test_no_name_is_stored(g: AttemptGuard, db: Database) -> None:
    g.refused("k1", "p1", "Jane Doe", consent_id="c0")
    with db.session() as s:
        buckets = list(s.scalars(select(EnrollmentRefusal.bucket)))
    assert len(buckets) == 3 and not any("jane" in b.lower() for b in buckets)


def test_two_processes_on_one_database_share_the_count(
    database_url: str, g: AttemptGuard, audit: Audit, clock: Clock
) -> None:
    """A second Database (its own engine and pool, as another worker has) sees the first one's refusals."""
    other_db = Database(database_url)
    try:
        other = AttemptGuard(other_db, audit, POLICY, clock)  # type: ignore[arg-type]
        g.refused("k1", "p1", "Jane Doe", consent_id="c0")
        other.refused("k1", "p1", "Jane Doe", consent_id="c1")
        assert refused_code(g, "k1", "p1", "Jane Doe") == "enrollment_rate_limited"
        clock.now += 61
        g.refused("k1", "p1", "Jane Doe", consent_id="c2")
        other.refused("k1", "p1", "Jane Doe", consent_id="c3")
        assert refused_code(g, "k1", "p1", "Jane Doe") == "enrollment_locked"
        assert refused_code(other, "k1", "p1", "Jane Doe") == "enrollment_locked"
    finally:
        other_db.dispose()


def test_concurrent_refusals_lock_each_scope_exactly_once(
    database_url: str, g: AttemptGuard, audit: Audit, clock: Clock
) -> None:
    """Eight refusals at once from two processes' pools: the lock is taken (and audited) once per scope."""
    other_db = Database(database_url)
    try:
        guards = [g, AttemptGuard(other_db, audit, POLICY, clock)]  # type: ignore[arg-type]
        errors: list[BaseException] = []

        def refuse(i: int) -> None:
            try:
                guards[i % 2].refused("k1", "p1", "Jane Doe", consent_id=f"c{i}")
            except BaseException as exc:  # noqa: BLE001 (reported below)
                errors.append(exc)

        threads = [threading.Thread(target=refuse, args=(i,)) for i in range(POLICY.lock_after)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        locks = [d["scope"] for a, d in audit.entries if a == "consent.attempts_locked"]
        assert sorted(locks) == ["key", "subject", "tenant"]
    finally:
        other_db.dispose()


def test_two_voxvault_instances_on_one_database_share_the_count(tmp_path: Path, database_url: str) -> None:
    """Two servers of one deployment (shared database and data): refusals on one lock the other."""
    settings = Settings(
        data_dir=tmp_path / "data",
        cache_dir=tmp_path / "cache",
        database_url=database_url,
        consent_refusals_before_cooldown=2,
        consent_refusals_before_lock=3,
    )
    from voxvault.service import VoxVault

    first, second = VoxVault(settings), VoxVault(settings)
    try:
        a, b = first.enrollment.attempts, second.enrollment.attempts
        assert a is not None and b is not None
        for i in range(3):
            (a if i % 2 else b).refused("k1", "p1", "Jane Doe", consent_id=f"c{i}")
        with pytest.raises(VoxError) as err:
            a.check("k2", "p1", "jane doe")  # another key, the same tenant and speaker
        assert err.value.code == "enrollment_locked"
        with pytest.raises(VoxError):
            b.check("k1", "p1", "Jane Doe")
        locks = [e for e in first.audit.entries() if e["action"] == "consent.attempts_locked"]
        assert {e["details"]["scope"] for e in locks} == {"key", "tenant", "subject"}
    finally:
        first.db.dispose()
        second.db.dispose()
