"""Fixtures: a fresh VoxVault (own data dir, fake engines) on SQLite, and on PostgreSQL if reachable."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest

from voxvault.config import Settings
from voxvault.service import VoxVault

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


@pytest.fixture(scope="session")
def pg_user() -> str:
    user = _pg_user()
    if user is None:
        pytest.skip("PostgreSQL not reachable at 127.0.0.1:5432/test as postgres or root")
    return user


@pytest.fixture
def pg_url(pg_user: str) -> Iterator[str]:
    """A database URL whose search_path is a fresh schema, dropped after the test."""
    schema = f"vvgov_{uuid.uuid4().hex[:12]}"
    admin = psycopg.connect(user=pg_user, autocommit=True, **PG)  # type: ignore[arg-type]
    admin.execute(f'CREATE SCHEMA "{schema}"')
    try:
        yield f"postgresql://{pg_user}@127.0.0.1:5432/test?options=-csearch_path%3D{schema}"
    finally:
        admin.execute(f'DROP SCHEMA "{schema}" CASCADE')
        admin.close()


#: Governance is about records, keys and refusals: speech here comes from the fake engines (engines/fake.py).
FAKE_ENGINES = {"tts_engine": "fake", "speaker_engine": "fake", "vad_engine": "fake", "asr_engine": "fake"}


def _make_vv(data_dir: Path, **overrides: object) -> VoxVault:
    settings = {"data_dir": data_dir, "cache_dir": data_dir / "cache", **FAKE_ENGINES, **overrides}
    return VoxVault(Settings(**settings))  # type: ignore[arg-type]


@pytest.fixture
def make_vv() -> Callable[..., VoxVault]:
    """Build a VoxVault on a data dir with setting overrides (engines are never loaded here)."""
    return _make_vv


@pytest.fixture
def vv(tmp_path: Path) -> Iterator[VoxVault]:
    v = _make_vv(tmp_path / "data")
    yield v
    v.db.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def any_vv(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[VoxVault]:
    """A VoxVault on each supported database."""
    url = None if request.param == "sqlite" else request.getfixturevalue("pg_url")
    v = _make_vv(tmp_path / "data", database_url=url)
    yield v
    v.db.dispose()
