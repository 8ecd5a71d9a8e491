"""Optional dependencies (extras): a missing one is a one-line ``missing_dependency`` error naming the
package and the command that installs it, never a ``ModuleNotFoundError`` traceback from deep inside."""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import NamedTuple

from sqlalchemy.engine import URL

from voxvault.errors import VoxError


class Extra(NamedTuple):
    module: str  # what is imported
    extra: str  # pip install 'voxvault[extra]'
    feature: str  # what needs it, in words


POSTGRES = Extra("psycopg", "postgres", "a PostgreSQL database (VOXVAULT_DATABASE_URL=postgresql://...)")
S3 = Extra("boto3", "s3", "S3 blob storage (VOXVAULT_BLOB_URL=s3://...)")
RAY = Extra("ray", "ray", "the Ray executor (--executor ray)")


def missing(extra: Extra) -> VoxError:
    return VoxError(
        "missing_dependency",
        f"{extra.feature} needs the '{extra.module}' package, which is not installed: "
        f"pip install 'voxvault[{extra.extra}]' (in a checkout: .venv/bin/pip install -e '.[{extra.extra}]')",
        500,
    )


def require(extra: Extra) -> ModuleType:
    """Import ``extra.module`` or raise ``missing_dependency``."""
    try:
        return importlib.import_module(extra.module)
    except ImportError:
        raise missing(extra) from None


def require_database_driver(url: URL) -> URL:
    """``url`` itself, once the driver it names is importable (psycopg for PostgreSQL)."""
    if url.get_backend_name() == "postgresql":
        require(POSTGRES)
    return url
