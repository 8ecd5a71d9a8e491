"""Blob storage for payloads that do not belong in database rows: embeddings, styles, evidence, outputs.

Keys are relative, slash-separated paths of ``[A-Za-z0-9._-]`` segments (e.g. ``voices/<id>/style``),
identical for every backend so a deployment can move between them. Segments may not start with ``.``:
that keeps ``..`` out and reserves dot-names for in-progress writes.

A missing blob raises ``BlobNotFound``, a ``VoxError`` with code ``not_found`` and status 404, so an API
handler can let it propagate; code that expects absence can catch ``BlobNotFound`` specifically.
``delete`` of a missing key is a no-op (erasure must be safe to retry). Payloads are stored as given:
encrypting sensitive ones (voice embeddings) is the caller's job.
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol, runtime_checkable
from urllib.parse import unquote, urlsplit

from voxvault.errors import VoxError

MAX_KEY_LENGTH = 512
_SEGMENT = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]*")


class BlobNotFound(VoxError):
    """No blob under the key. ``key`` is kept on the exception but not put in the client-facing details."""

    def __init__(self, key: str) -> None:
        super().__init__("not_found", "the requested stored object does not exist", status=404)
        self.key = key


def validate_key(key: str) -> str:
    """Return ``key`` if it is a safe relative blob key, else raise ``VoxError('invalid_blob_key')``."""
    if not isinstance(key, str) or not key or len(key) > MAX_KEY_LENGTH:
        raise VoxError("invalid_blob_key", f"blob keys are 1-{MAX_KEY_LENGTH} characters")
    if not all(_SEGMENT.fullmatch(segment) for segment in key.split("/")):
        raise VoxError(
            "invalid_blob_key",
            "blob keys are relative paths of [A-Za-z0-9._-] segments that do not start with '.'",
        )
    return key


def _validate_prefix(prefix: str) -> str:
    """A list prefix is a key, a key followed by '/', or a partial last segment; '' lists everything."""
    if prefix == "":
        return prefix
    body = prefix[:-1] if prefix.endswith("/") else prefix
    validate_key(body)
    return prefix


@runtime_checkable
class BlobStore(Protocol):
    """Byte blobs by key. ``put`` is atomic: readers see the old or the new bytes, never a mix."""

    def put(self, key: str, data: bytes) -> None: ...

    def get(self, key: str) -> bytes:
        """The blob's bytes; raises ``BlobNotFound`` when there is none."""
        ...

    def delete(self, key: str) -> None:
        """Remove the blob; no error if it is already gone."""
        ...

    def exists(self, key: str) -> bool: ...

    def list(self, prefix: str = "") -> Iterator[str]:
        """Keys starting with ``prefix`` (plain string prefix, like S3), in sorted order."""
        ...


class LocalBlobStore:
    """Blobs as files under ``root``. Writes go to a temp file, are fsynced, then renamed into place."""

    def __init__(self, root: str | os.PathLike[str], file_mode: int | None = None) -> None:
        self.root = Path(root).resolve()
        self.root.mkdir(parents=True, exist_ok=True)
        self.file_mode = file_mode  # None: mkstemp's 0600 (data dir); an export folder: 0644 under umask

    def __repr__(self) -> str:
        return f"LocalBlobStore({str(self.root)!r})"

    def _path(self, key: str) -> Path:
        path = self.root.joinpath(*validate_key(key).split("/"))
        # Belt and braces against symlinks pointing out of the root.
        if not path.resolve().is_relative_to(self.root):
            raise VoxError("invalid_blob_key", "blob key resolves outside the store")
        return path

    def put(self, key: str, data: bytes) -> None:
        path = self._path(key)
        if path.is_dir():
            raise VoxError("invalid_blob_key", "blob key names a folder of other blobs")
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            if self.file_mode is not None:
                os.fchmod(fd, self.file_mode)
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp_name, path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp_name)
            raise
        _fsync_dir(path.parent)

    def get(self, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise BlobNotFound(key) from None

    def delete(self, key: str) -> None:
        path = self._path(key)
        try:
            path.unlink()
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            return
        _fsync_dir(path.parent)
        # Empty folders would keep ids (e.g. an erased voice's) visible in the tree; remove them.
        parent = path.parent
        while parent != self.root:
            try:
                parent.rmdir()
            except OSError:
                break
            parent = parent.parent

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def list(self, prefix: str = "") -> Iterator[str]:
        _validate_prefix(prefix)
        # Walk only the deepest folder the prefix fully names.
        folder_part = prefix.rsplit("/", 1)[0] if "/" in prefix else ""
        start = self.root.joinpath(*folder_part.split("/")) if folder_part else self.root
        if not start.is_dir():
            return iter(())
        keys: list[str] = []
        for dirpath, dirnames, filenames in os.walk(start):
            dirnames[:] = [d for d in dirnames if not d.startswith(".")]
            rel = Path(dirpath).relative_to(self.root).as_posix()
            for name in filenames:
                if name.startswith("."):
                    continue  # in-progress writes
                key = name if rel == "." else f"{rel}/{name}"
                if key.startswith(prefix):
                    keys.append(key)
        return iter(sorted(keys))


def _fsync_dir(path: Path) -> None:
    """Persist a rename/unlink: the directory entry itself must reach the disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class S3BlobStore:
    """Blobs as objects in an S3 (or S3-compatible: MinIO, Ceph, R2) bucket under ``prefix``.

    A single ``PutObject`` is atomic. Credentials come from boto3's usual chain (env, profile, role).
    """

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        endpoint_url: str | None = None,
        client: Any | None = None,
    ) -> None:
        if not bucket:
            raise VoxError("invalid_blob_url", "an S3 blob store needs a bucket name", status=500)
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        if self.prefix:
            validate_key(self.prefix)
        if client is None:
            try:
                import boto3
            except ImportError as exc:
                raise VoxError(
                    "missing_dependency",
                    "S3 blob storage needs boto3: pip install 'voxvault[s3]'",
                    status=500,
                ) from exc
            client = boto3.client("s3", endpoint_url=endpoint_url)
        self.client = client

    def __repr__(self) -> str:
        return f"S3BlobStore(bucket={self.bucket!r}, prefix={self.prefix!r})"

    def _object_key(self, key: str) -> str:
        validate_key(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    def put(self, key: str, data: bytes) -> None:
        self.client.put_object(Bucket=self.bucket, Key=self._object_key(key), Body=data)

    def get(self, key: str) -> bytes:
        try:
            response = self.client.get_object(Bucket=self.bucket, Key=self._object_key(key))
        except Exception as exc:
            if _is_missing(exc):
                raise BlobNotFound(key) from None
            raise
        body: bytes = response["Body"].read()
        return body

    def delete(self, key: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=self._object_key(key))

    def exists(self, key: str) -> bool:
        try:
            self.client.head_object(Bucket=self.bucket, Key=self._object_key(key))
        except Exception as exc:
            if _is_missing(exc):
                return False
            raise
        return True

    def list(self, prefix: str = "") -> Iterator[str]:
        _validate_prefix(prefix)  # eagerly, not on first iteration
        full = f"{self.prefix}/{prefix}" if self.prefix else prefix
        return self._iter_keys(full, strip=len(self.prefix) + 1 if self.prefix else 0)

    def _iter_keys(self, full_prefix: str, strip: int) -> Iterator[str]:
        paginator = self.client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=full_prefix):
            for item in page.get("Contents", ()):
                yield item["Key"][strip:]


def _is_missing(exc: Exception) -> bool:
    """True for botocore's 'no such key' errors (GetObject says NoSuchKey, HeadObject a bare 404)."""
    response = getattr(exc, "response", None)
    if not isinstance(response, dict):
        return False
    code = str(response.get("Error", {}).get("Code", ""))
    return code in {"NoSuchKey", "404", "NotFound"}


def open_blob_store(url: str, *, s3_endpoint_url: str | None = None) -> BlobStore:
    """A blob store for ``file:///abs/path`` or ``s3://bucket[/prefix]``."""
    parts = urlsplit(url)
    if parts.scheme == "file":
        if parts.netloc not in ("", "localhost"):
            raise VoxError("invalid_blob_url", "file blob URLs must be file:///absolute/path", status=500)
        path = unquote(parts.path)
        if not path.startswith("/"):
            raise VoxError("invalid_blob_url", "file blob URLs must be file:///absolute/path", status=500)
        return LocalBlobStore(path)
    if parts.scheme == "s3":
        return S3BlobStore(parts.netloc, unquote(parts.path), endpoint_url=s3_endpoint_url)
    raise VoxError(
        "invalid_blob_url", f"unsupported blob URL scheme {parts.scheme!r}; use file:// or s3://", status=500
    )
