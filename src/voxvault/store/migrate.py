"""``python -m voxvault.store.migrate``: bring the configured database's schema up to date.

The CLI and ``make run`` call ``migrate_database(settings)``; ``Database.migrate()`` is the same thing for
code that already holds a ``Database``.
"""

from __future__ import annotations

import argparse
import logging

from voxvault.config import Settings
from voxvault.store.db import Database


def migrate_database(settings: Settings, revision: str = "head") -> Database:
    """Create the data directory if needed, migrate, and return the ready ``Database``."""
    if settings.database_url is None:
        settings.prepare()  # the default SQLite file lives in data_dir
    database = Database(settings.resolved_database_url)
    database.migrate(revision)
    return database


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m voxvault.store.migrate", description=__doc__)
    parser.add_argument("--url", help="database URL (default: VOXVAULT_DATABASE_URL or SQLite in data_dir)")
    parser.add_argument("--revision", default="head", help="target revision (default: head)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    settings = Settings(database_url=args.url) if args.url else Settings()
    database = migrate_database(settings, args.revision)
    try:
        print(f"{database!r} at revision {database.current_revision()}")
    finally:
        database.dispose()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
