"""Database behaviour on SQLite and PostgreSQL: migrations, constraints, round trips, SQLite tuning."""

from __future__ import annotations

import datetime as dt
import threading
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import insert, inspect, select, text, update
from sqlalchemy.exc import DBAPIError, IntegrityError, StatementError

from voxvault.errors import VoxError
from voxvault.store import (
    ApiKey,
    AppendOnlyError,
    AuditLog,
    Base,
    Consent,
    Database,
    Generation,
    Job,
    JobItem,
    Organization,
    Project,
    Voice,
)
from voxvault.store.db import alembic_config
from voxvault.store.migrate import main as migrate_main

TABLES = {
    "organizations",
    "projects",
    "api_keys",
    "voices",
    "consents",
    "generations",
    "jobs",
    "job_items",
    "audit_log",
    "enrollment_refusals",
}


def _org_and_project(db: Database) -> tuple[str, str]:
    with db.session() as s:
        org = Organization(name="Acme")
        s.add(org)
        s.flush()
        project = Project(org_id=org.id, name="audiobooks")
        s.add(project)
        s.flush()
        return org.id, project.id


def _generation(voice_id: str = "af_alpha") -> Generation:
    return Generation(
        voice_id=voice_id, text_sha256="0" * 64, text_chars=12, format="wav", duration_s=1.5, latency_ms=80.0
    )


def test_migrate_creates_every_table_at_head(db: Database) -> None:
    names = set(inspect(db.engine).get_table_names())
    assert names >= TABLES
    assert names - TABLES == {"alembic_version"}
    assert db.current_revision() == Database.head_revision()
    assert db.is_current()


def test_migrate_twice_is_harmless(db: Database) -> None:
    _org_and_project(db)
    db.migrate()
    with db.session() as s:
        assert s.scalar(select(Organization.name)) == "Acme"


def test_models_and_migrations_do_not_drift(db: Database) -> None:
    with db.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        diff = compare_metadata(context, Base.metadata)
    assert diff == []


def test_downgrade_to_base_and_back(db: Database) -> None:
    with db.engine.connect() as conn:
        command.downgrade(alembic_config(conn), "base")
        conn.commit()
    assert set(inspect(db.engine).get_table_names()) & TABLES == set()
    db.migrate()
    assert set(inspect(db.engine).get_table_names()) >= TABLES


def test_fresh_database_reports_not_current(database_url: str) -> None:
    database = Database(database_url)
    try:
        assert database.ping()
        assert database.current_revision() is None
        assert not database.is_current()
    finally:
        database.dispose()


def test_crud_roundtrip_across_all_tables(db: Database) -> None:
    org_id, project_id = _org_and_project(db)
    expires = dt.datetime(2031, 5, 17, 12, 30, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    with db.session() as s:
        key = ApiKey(
            org_id=org_id, project_id=project_id, prefix="vv_ab12", key_hash="h" * 64, scopes=["tts"]
        )
        consent = Consent(
            project_id=project_id,
            speaker_name="Ada",
            purpose="audiobook narration",
            organization_name="Acme",
            script="I agree that Acme may clone my voice.",
            challenge_hash="c" * 64,
            challenge_expires_at=expires,
            recording_sha256="r" * 64,
            scores={"similarity": 0.91, "wer": 0.05},
        )
        s.add_all([key, consent])
        s.flush()
        voice = Voice(
            project_id=project_id,
            name="Ada narrator",
            kind="cloned",
            status="active",
            engine="kokoro",
            consent_id=consent.id,
            style_blob="voices/x/style",
            meta={"lang": "en-us", "tags": ["warm"]},
            expires_at=expires,
        )
        job = Job(kind="batch_tts", spec={"items": 2}, project_id=project_id)
        s.add_all([voice, job])
        s.flush()
        s.add_all(
            [
                JobItem(job_id=job.id, item_id="1", status="done", sha256="d" * 64, duration=2.0),
                JobItem(job_id=job.id, item_id="2", error="text too long", status="failed"),
                _generation(voice.id),
                AuditLog(
                    action="voice.create", actor=key.id, target=voice.id, prev_hash="0" * 64, hash="1" * 64
                ),
            ]
        )
        ids = (key.id, consent.id, voice.id, job.id)

    with db.session() as s:
        key = s.get_one(ApiKey, ids[0])
        assert key.scopes == ["tts"] and key.voice_ids is None and key.revoked_at is None
        # none_as_null: "all voices" is SQL NULL, so it is queryable as such.
        assert s.scalar(select(ApiKey.id).where(ApiKey.voice_ids.is_(None))) == key.id
        consent = s.get_one(Consent, ids[1])
        assert consent.status == "pending"
        assert consent.scores == {"similarity": 0.91, "wer": 0.05}
        assert consent.challenge_expires_at == expires
        assert consent.challenge_expires_at.tzinfo == dt.UTC
        assert s.scalar(select(Consent.id).where(Consent.recording_sha256 == "r" * 64)) == consent.id
        voice = s.get_one(Voice, ids[2])
        assert voice.meta == {"lang": "en-us", "tags": ["warm"]}
        assert voice.created_at.tzinfo == dt.UTC
        assert abs(voice.created_at - dt.datetime.now(dt.UTC)) < dt.timedelta(minutes=5)
        assert voice.expires_at == expires
        items = s.scalars(select(JobItem).where(JobItem.job_id == ids[3]).order_by(JobItem.item_id)).all()
        assert [(i.item_id, i.status) for i in items] == [("1", "done"), ("2", "failed")]
        generation = s.scalars(select(Generation).where(Generation.voice_id == voice.id)).one()
        assert generation.watermark_id >= 1 and len(generation.id) == 36
        audit = s.scalars(select(AuditLog)).one()
        assert audit.seq >= 1 and audit.details == {}

        # updates and deletes on ordinary tables
        voice.status = "revoked"
        voice.revoked_at = dt.datetime.now(dt.UTC)
        s.delete(s.get_one(Job, ids[3]))
    with db.session() as s:
        assert s.get_one(Voice, ids[2]).status == "revoked"
        assert s.get(Job, ids[3]) is None
        # ON DELETE CASCADE took the job's items with it
        assert s.scalars(select(JobItem).where(JobItem.job_id == ids[3])).all() == []


def test_key_hash_is_unique(db: Database) -> None:
    org_id, _ = _org_and_project(db)
    with db.session() as s:
        s.add(ApiKey(org_id=org_id, prefix="vv_1", key_hash="same"))
    with pytest.raises(IntegrityError), db.session() as s:
        s.add(ApiKey(org_id=org_id, prefix="vv_2", key_hash="same"))
    with db.session() as s:
        assert s.scalars(select(ApiKey.prefix)).all() == ["vv_1"]


def test_unique_constraints_hold(db: Database) -> None:
    org_id, project_id = _org_and_project(db)
    with pytest.raises(IntegrityError), db.session() as s:
        s.add(Project(org_id=org_id, name="audiobooks"))
    with db.session() as s:
        job = Job(kind="batch_tts")
        s.add(job)
        s.flush()
        s.add(JobItem(job_id=job.id, item_id="a"))
    with pytest.raises(IntegrityError), db.session() as s:
        s.execute(insert(JobItem).values(job_id=job.id, item_id="a", status="pending"))
    with pytest.raises(IntegrityError), db.session() as s:
        first = _generation()
        s.add(first)
        s.flush()
        clash = _generation()
        clash.id = first.id
        s.add(clash)


def test_foreign_keys_and_checks_are_enforced(db: Database) -> None:
    with pytest.raises(IntegrityError), db.session() as s:
        s.add(Project(org_id="no-such-org", name="x"))
    with pytest.raises(IntegrityError), db.session() as s:
        s.add(Voice(name="v", kind="preset", status="bogus", engine="kokoro"))
    with pytest.raises(IntegrityError), db.session() as s:
        s.add(Voice(name="v", kind="synthetic", status="active", engine="kokoro"))


def test_watermark_ids_are_sequential_and_never_reused(db: Database) -> None:
    with db.session() as s:
        rows = [_generation() for _ in range(3)]
        s.add_all(rows)
        s.flush()
        ids = [g.watermark_id for g in rows]
        s.delete(rows[-1])
    assert ids == sorted(ids) and len(set(ids)) == 3
    with db.session() as s:
        again = _generation()
        s.add(again)
        s.flush()
        assert again.watermark_id > ids[-1]


def test_audit_log_is_append_only(db: Database) -> None:
    with db.session() as s:
        s.add(AuditLog(action="key.create", prev_hash="0" * 64, hash="a" * 64))
    with pytest.raises(AppendOnlyError), db.session() as s:
        s.scalars(select(AuditLog)).one().action = "tampered"
    with pytest.raises(AppendOnlyError), db.session() as s:
        s.delete(s.scalars(select(AuditLog)).one())
    # The database itself refuses, even to statements that bypass the ORM.
    with pytest.raises(DBAPIError), db.session() as s:
        s.execute(update(AuditLog).values(action="tampered"))
    with pytest.raises(DBAPIError), db.session() as s:
        s.execute(text("DELETE FROM audit_log"))
    with db.session() as s:
        assert s.scalars(select(AuditLog.action)).all() == ["key.create"]


def test_naive_datetimes_are_refused(db: Database) -> None:
    with pytest.raises(StatementError, match="naive datetime"), db.session() as s:
        s.add(Organization(name="x", created_at=dt.datetime(2030, 1, 1)))


def test_session_rolls_back_everything_on_error(db: Database) -> None:
    with pytest.raises(RuntimeError), db.session() as s:
        s.add(Organization(name="half-done"))
        s.flush()
        raise RuntimeError("boom")
    with db.session() as s:
        assert s.scalars(select(Organization)).all() == []


def test_ping_reports_unreachable_database() -> None:
    database = Database("postgresql://postgres@127.0.0.1:1/none?connect_timeout=2")
    try:
        assert database.ping() is False
        assert database.is_current() is False
    finally:
        database.dispose()


@pytest.mark.parametrize("url", ["postgresql://u@h/db", "postgres://u@h/db", "postgresql+psycopg://u@h/db"])
def test_postgres_urls_use_psycopg3(url: str) -> None:
    database = Database(url)
    assert database.url.drivername == "postgresql+psycopg"
    database.dispose()


@pytest.mark.parametrize("url", ["mysql://u@h/db", "not a url"])
def test_unsupported_database_urls_are_refused(url: str) -> None:
    with pytest.raises(VoxError) as err:
        Database(url)
    assert err.value.code == "invalid_database_url"


def test_sqlite_runs_in_wal_with_foreign_keys_and_busy_timeout(tmp_path: Path) -> None:
    database = Database(f"sqlite:///{tmp_path / 'nested' / 'dir' / 'vv.db'}", sqlite_busy_timeout_ms=7000)
    try:
        database.migrate()
        assert (tmp_path / "nested" / "dir" / "vv.db").is_file()
        with database.engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
            assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 7000
    finally:
        database.dispose()


def test_sqlite_concurrent_writers_all_succeed(tmp_path: Path) -> None:
    database = Database(f"sqlite:///{tmp_path / 'vv.db'}")
    database.migrate()
    errors: list[BaseException] = []

    def write(n: int) -> None:
        try:
            for i in range(10):
                with database.session() as s:
                    s.add(Organization(name=f"org-{n}-{i}"))
        except BaseException as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    try:
        assert errors == []
        with database.session() as s:
            assert len(s.scalars(select(Organization.id)).all()) == 40
    finally:
        database.dispose()


def test_in_memory_sqlite_is_shared_between_sessions() -> None:
    database = Database("sqlite://")
    try:
        database.migrate()
        with database.session() as s:
            s.add(Organization(name="mem"))
        with database.session() as s:
            assert s.scalar(select(Organization.name)) == "mem"
    finally:
        database.dispose()


def test_migrate_entry_point_creates_schema(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    assert migrate_main(["--url", url]) == 0
    assert "at revision" in capsys.readouterr().out
    database = Database(url)
    try:
        assert database.is_current()
        assert set(inspect(database.engine).get_table_names()) >= TABLES
    finally:
        database.dispose()


def test_shipped_head_read_from_the_files_is_alembics_head() -> None:
    from voxvault.store.db import shipped_head

    assert shipped_head() is not None and shipped_head() == Database.head_revision()


def test_a_database_at_head_opens_without_importing_alembic(tmp_path: Path) -> None:
    import subprocess
    import sys

    url = f"sqlite:///{tmp_path / 'at_head.db'}"
    Database(url).migrate()
    code = (
        "import sys; from voxvault.store.db import Database; d = Database(sys.argv[1]); d.migrate(); "
        "print('alembic' in sys.modules, d.ping())"
    )
    out = subprocess.run([sys.executable, "-c", code, url], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "True"]
    # Behind the head (a fresh file): Alembic runs and brings it there.
    fresh = f"sqlite:///{tmp_path / 'fresh.db'}"
    out = subprocess.run([sys.executable, "-c", code, fresh], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["True", "True"] and Database(fresh).is_current()
