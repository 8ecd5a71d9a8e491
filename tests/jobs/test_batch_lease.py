"""Issue 29, finding 4: a batch job's owner proves it is alive with an OS lock and a lease, never a pid.

A dead runner's pid can be a zombie (signal 0 succeeds) or belong to a new process (in a container the
restarted server often gets the same pid); neither may keep the job from resuming. SQLite and PostgreSQL.
"""

from __future__ import annotations

import datetime as dt
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from voxvault.errors import VoxError
from voxvault.jobs.batch import LEASE_S, JobRecords
from voxvault.store import Database
from voxvault.store.models import Job, utcnow

PG = {"host": "127.0.0.1", "port": 5432, "dbname": "test", "connect_timeout": 3}


def _pg_user() -> str | None:
    for user in ("postgres", "root"):
        try:
            with psycopg.connect(user=user, **PG) as conn:  # type: ignore[arg-type]
                conn.execute("SELECT 1")
            return user
        except psycopg.Error:
            continue
    return None


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    if request.param == "sqlite":
        database = Database(f"sqlite:///{tmp_path / 'voxvault.db'}")
        database.migrate()
        yield database
        database.dispose()
        return
    user = _pg_user()
    if user is None:
        pytest.skip("PostgreSQL not reachable at 127.0.0.1:5432/test")
    schema = f"vvtest_{uuid.uuid4().hex[:12]}"
    admin = psycopg.connect(user=user, autocommit=True, **PG)  # type: ignore[arg-type]
    admin.execute(f'CREATE SCHEMA "{schema}"')
    database = Database(f"postgresql://{user}@127.0.0.1:5432/test?options=-csearch_path%3D{schema}")
    try:
        database.migrate()
        yield database
    finally:
        database.dispose()
        admin.execute(f'DROP SCHEMA "{schema}" CASCADE')
        admin.close()


def _running_job(db: Database, owner: dict[str, object], heartbeat: dt.datetime | None) -> str:
    """A job left ``running`` by ``owner`` (as a killed runner leaves it)."""
    job_id = str(uuid.uuid4())
    JobRecords(db).ensure(job_id, spec={}, total=3)
    with db.session() as s:
        job = s.get(Job, job_id)
        assert job is not None
        job.status, job.result, job.heartbeat_at = "running", {"owner": owner}, heartbeat
    return job_id


def _busy(records: JobRecords, job_id: str, lock_dir: Path) -> bool:
    try:
        records.claim(job_id, lock_dir).close()
    except VoxError as exc:
        assert exc.code == "batch_busy" and exc.status == 409
        return True
    return False


def test_a_dead_owner_whose_pid_is_now_ours_is_taken_over(db: Database, tmp_path: Path) -> None:
    """The restarted server got the dead runner's pid and the lease is fresh: the lock says it is dead."""
    lock_dir = tmp_path / "locks"
    lock = str(lock_dir / "batch-{}.lock")
    owner = {"host": socket.gethostname(), "pid": os.getpid(), "token": "dead"}
    job_id = _running_job(db, owner, utcnow())
    with db.session() as s:  # the lock file it held (recorded by claim) is free: nobody alive holds it
        job = s.get(Job, job_id)
        assert job is not None
        job.result = {"owner": {**owner, "lock": lock.format(job_id)}}
    lease = JobRecords(db).claim(job_id, lock_dir)
    try:
        with db.session() as s:
            job = s.get(Job, job_id)
            assert job is not None and job.result is not None
            assert job.result["owner"]["token"] == lease.token != "dead"
    finally:
        lease.close()


def test_a_live_runner_keeps_the_job_and_its_zombie_does_not(db: Database, tmp_path: Path) -> None:
    """A real process holds the job's lock; after kill -9 (left unreaped: a zombie) the job is free."""
    records = JobRecords(db)
    lock_dir = tmp_path / "locks"
    job_id = _running_job(db, {}, None)
    lease = records.claim(job_id, lock_dir)
    lock_path = lock_dir / f"batch-{job_id}.lock"
    lease.close()  # hand the lock to a separate process, as a runner in another process holds it
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import fcntl, sys, time\n"
            f"f = open({str(lock_path)!r}, 'ab'); fcntl.flock(f, fcntl.LOCK_EX)\n"
            "print('held', flush=True); time.sleep(600)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        with db.session() as s:  # its record: this host, that pid, that lock, a fresh lease
            job = s.get(Job, job_id)
            assert job is not None and job.result is not None
            job.result = {
                "owner": {**job.result["owner"], "pid": holder.pid, "token": "live"},
            }
        assert _busy(records, job_id, lock_dir)
        os.kill(holder.pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while Path(f"/proc/{holder.pid}/stat").read_text().split(")")[-1].split()[0] != "Z":
            assert time.monotonic() < deadline
            time.sleep(0.01)
        os.kill(holder.pid, 0)  # a zombie: signal 0 still succeeds, which is what fooled the pid check
        assert not _busy(records, job_id, lock_dir)
    finally:
        holder.kill()
        holder.wait(10)
        if holder.stdout is not None:
            holder.stdout.close()


def test_an_owner_on_another_host_holds_the_job_until_its_lease_expires(db: Database, tmp_path: Path) -> None:
    records = JobRecords(db)
    owner = {"host": "another-host", "pid": 1, "token": "t", "lock": "/data/locks/x.lock"}
    fresh = _running_job(db, owner, utcnow())
    assert _busy(records, fresh, tmp_path)
    expired = _running_job(db, owner, utcnow() - dt.timedelta(seconds=2 * LEASE_S))
    assert not _busy(records, expired, tmp_path)


def test_renewal_keeps_the_lease_and_fails_once_another_runner_took_it(db: Database, tmp_path: Path) -> None:
    records = JobRecords(db)
    job_id = _running_job(db, {}, None)
    lease = records.claim(job_id, tmp_path)
    try:
        first = lease.renewed_at
        time.sleep(0.01)
        assert records.renew(lease) and lease.renewed_at > first
        with db.session() as s:  # another host's runner took the job over after the lease expired
            job = s.get(Job, job_id)
            assert job is not None
            job.heartbeat_at = utcnow() + dt.timedelta(seconds=1)
        assert not records.renew(lease)
    finally:
        lease.close()
