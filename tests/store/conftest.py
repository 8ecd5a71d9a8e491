"""Fixtures: a migrated ``Database`` on SQLite and on the local PostgreSQL, each isolated per test."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import psycopg
import pytest

from voxvault.store import Database

PG_HOST = "127.0.0.1"
PG_PORT = 5432
PG_DATABASE = "test"
PG_USERS = ("postgres", "root")


def _pg_user() -> str | None:
    for user in PG_USERS:
        try:
            with psycopg.connect(
                host=PG_HOST, port=PG_PORT, user=user, dbname=PG_DATABASE, connect_timeout=3
            ) as conn:
                conn.execute("SELECT 1")
            return user
        except psycopg.Error:
            continue
    return None


@pytest.fixture(scope="session")
def pg_user() -> str:
    user = _pg_user()
    if user is None:
        pytest.skip(
            f"PostgreSQL not reachable at {PG_HOST}:{PG_PORT}/{PG_DATABASE} as {' or '.join(PG_USERS)}"
        )
    return user


@pytest.fixture
def pg_url(pg_user: str) -> Iterator[str]:
    """A URL whose search_path is a fresh schema, dropped (with everything in it) after the test."""
    schema = f"vvtest_{uuid.uuid4().hex[:12]}"
    admin = psycopg.connect(host=PG_HOST, port=PG_PORT, user=pg_user, dbname=PG_DATABASE, autocommit=True)
    admin.execute(f'CREATE SCHEMA "{schema}"')
    try:
        # Plain postgresql:// on purpose: Database must route it to psycopg 3.
        yield f"postgresql://{pg_user}@{PG_HOST}:{PG_PORT}/{PG_DATABASE}?options=-csearch_path%3D{schema}"
    finally:
        admin.execute(f'DROP SCHEMA "{schema}" CASCADE')
        admin.close()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path_factory.mktemp('db') / 'voxvault.db'}"
    url: str = request.getfixturevalue("pg_url")
    return url


@pytest.fixture
def db(database_url: str) -> Iterator[Database]:
    database = Database(database_url)
    database.migrate()
    try:
        yield database
    finally:
        database.dispose()
