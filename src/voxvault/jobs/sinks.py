"""Where a batch's audio and ``manifest.jsonl`` go: a local folder or an S3-compatible bucket prefix.

Layout under the root: ``audio/<item id>.<ext>`` (speech) or ``transcripts/<item id>.json|srt|rttm``
(transcription, jobs/transcribe_items.py) and ``manifest.jsonl`` (one JSON object per finished
item; ``path`` is relative to the manifest). Audio writes are atomic (temp file + fsync + rename
locally, one PUT on S3): that write is an item's commit point. The manifest only ever names committed
items, and each at most once:

- locally it is appended line by line and fsynced, so it grows while the job runs; a line cut short by a
  crash is dropped when the job resumes, and any replaced entry makes the runner rewrite the file whole
  (temp + rename), never leaving two lines for one id;
- on S3 an object cannot be appended to, so the whole manifest is PUT at most every ``flush_interval_s``
  seconds and at the end of every run; after a crash it lags, and the resuming run rebuilds it from the
  job's records.

A sink inside the configured blob store (every job submitted over HTTP) seals each output like every other
payload derived from a voice (envelope encryption, bound to its place by ``output:<blob key>``) and opens
it when it is served; a folder or bucket the user names for ``voxvault batch run --out`` is their export
and holds playable files (docs/security.md).
"""

from __future__ import annotations

import abc
import contextlib
import fcntl
import json
import logging
import os
import time
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

from voxvault.audio import FILE_EXTENSIONS
from voxvault.errors import VoxError
from voxvault.store.blobs import BlobNotFound, BlobStore, LocalBlobStore, S3BlobStore

if TYPE_CHECKING:
    from voxvault.governance.crypto import Envelope
    from voxvault.service import VoxVault

log = logging.getLogger(__name__)

MANIFEST = "manifest.jsonl"
AUDIO_PREFIX = "audio/"
TRANSCRIPT_PREFIX = "transcripts/"
OUTPUT_PREFIXES = (AUDIO_PREFIX, TRANSCRIPT_PREFIX)
_FORMAT_BY_EXTENSION = {**{ext: fmt for fmt, ext in FILE_EXTENSIONS.items()}, ".json": "json"}


@dataclass(frozen=True)
class ManifestEntry:
    """One finished item as listed in ``manifest.jsonl``."""

    id: str
    path: str
    duration: float
    sha256: str
    watermark_id: int | None
    voice: str
    format: str

    def to_line(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=False, separators=(", ", ": ")) + "\n"

    @classmethod
    def from_json(cls, raw: str) -> ManifestEntry:
        """Parse one manifest line; ``ValueError`` when it is not a complete entry."""
        value = json.loads(raw)
        if not isinstance(value, dict):
            raise ValueError("not an object")
        try:
            return cls(
                id=str(value["id"]),
                path=str(value["path"]),
                duration=float(value["duration"]),
                sha256=str(value["sha256"]),
                watermark_id=None if value["watermark_id"] is None else int(value["watermark_id"]),
                voice=str(value["voice"]),
                format=str(value["format"]),
            )
        except (KeyError, TypeError) as exc:
            raise ValueError(f"incomplete entry: {exc}") from None


def format_of(key: str) -> str:
    """The format an output key was written in, from its extension (``json`` for a transcript)."""
    return _FORMAT_BY_EXTENSION.get(Path(key).suffix.lower(), "")


@dataclass
class ManifestScan:
    """What was found in an existing manifest: its entries in order and whether it needs rewriting."""

    entries: list[ManifestEntry]
    damaged: bool


class Sink(abc.ABC):
    """Outputs of one batch in a blob store root. Subclasses decide how the manifest is persisted."""

    url: str

    def __init__(self, url: str, store: BlobStore) -> None:
        self.url = url
        self.store = store
        self.envelope: Envelope | None = None
        self.store_path = ""  # where the sink lies inside the blob store, when it is sealed

    def seal_with(self, envelope: Envelope, store_path: str) -> None:
        """Seal every output from now on; ``store_path`` (e.g. ``batches/<job>``) binds each to its place."""
        self.envelope = envelope
        self.store_path = store_path.strip("/")

    def output_aad(self, key: str) -> str:
        return f"output:{self.store_path}/{key}"

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.url!r})"

    # -- lifecycle ---------------------------------------------------------------------------------------
    def open(self) -> ManifestScan:
        """Take the sink for this run (lock, leftovers cleaned) and return the manifest as found."""
        return self._scan(self._read_manifest())

    def close(self) -> None:
        self.flush(force=True)

    # -- audio ---------------------------------------------------------------------------------------------
    def existing_outputs(self) -> set[str]:
        """Keys of every committed output (one listing per output folder, not one request per item)."""
        return {key for prefix in OUTPUT_PREFIXES for key in self.store.list(prefix)}

    def write_output(self, key: str, data: bytes) -> None:
        """Atomic: after this returns the output is complete under ``key``; before, nothing is there."""
        if self.envelope is not None:
            data = self.envelope.seal(data, self.output_aad(key))
        self.store.put(key, data)

    def read_output(self, key: str) -> bytes:
        """The output as it was made (opened when the sink is sealed)."""
        data = self.store.get(key)
        if self.envelope is not None:
            data = self.envelope.open(data, self.output_aad(key))
        return data

    def delete_output(self, key: str) -> None:
        self.store.delete(key)

    # -- manifest --------------------------------------------------------------------------------------------
    @abc.abstractmethod
    def append_manifest(self, entries: Iterable[ManifestEntry]) -> None:
        """Add finished items' lines to the manifest."""

    @abc.abstractmethod
    def rewrite_manifest(self, entries: Iterable[ManifestEntry]) -> None:
        """Replace the whole manifest (drops damaged or duplicate lines after a crash)."""

    def flush(self, force: bool = False) -> None:  # noqa: B027 - a deliberate no-op default
        """Persist pending manifest changes (a no-op where every change is written at once)."""

    def read_manifest_bytes(self) -> bytes:
        try:
            return self.store.get(MANIFEST)
        except BlobNotFound:
            return b""

    def _read_manifest(self) -> bytes:
        return self.read_manifest_bytes()

    @staticmethod
    def _scan(data: bytes) -> ManifestScan:
        entries: list[ManifestEntry] = []
        damaged = False
        lines = data.split(b"\n")
        if lines and lines[-1] != b"":
            damaged = True  # last line cut short by a crash mid-append
        for raw in lines[:-1]:
            if not raw.strip():
                continue
            try:
                entries.append(ManifestEntry.from_json(raw.decode("utf-8")))
            except (ValueError, UnicodeDecodeError):
                damaged = True
        return ManifestScan(entries, damaged)


LOCK_FILE = ".lock"


def _umask() -> int:
    """The process umask (read by setting it and putting it back at once)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


class LocalSink(Sink):
    """A local folder. Holds an exclusive lock for the run so two runs never write the same folder."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        # Clips in a folder of the user's are ordinary files (0644 under the usual umask), not 0600 like the
        # sealed blobs of the data dir.
        super().__init__(self.root.as_uri(), LocalBlobStore(self.root, file_mode=0o666 & ~_umask()))
        self._lock: IO[bytes] | None = None
        self._manifest: IO[bytes] | None = None

    def open(self) -> ManifestScan:
        self.root.mkdir(parents=True, exist_ok=True)
        self._lock = self._take_lock()
        removed = self.remove_leftovers()
        if removed:
            log.info("removed %d unfinished temp file(s) from %s", removed, self.root)
        scan = super().open()
        self._manifest = open(self.root / MANIFEST, "ab")  # noqa: SIM115 - held until close()
        return scan

    def _take_lock(self) -> IO[bytes]:
        """``.lock`` opened and exclusively locked. close() deletes it, so a lock taken on a file another
        run has just deleted is let go and taken again on the new one (same inode checked after flock)."""
        path = self.root / LOCK_FILE
        while True:
            lock = open(path, "ab")  # noqa: SIM115 - held until close()
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                lock.close()
                raise VoxError("batch_busy", f"another run is writing to {self.root}", 409) from None
            try:
                same = os.stat(path).st_ino == os.fstat(lock.fileno()).st_ino
            except FileNotFoundError:
                same = False
            if same:
                return lock
            lock.close()

    def remove_leftovers(self) -> int:
        """Delete temp files of writes a killed run never finished (they were never committed)."""
        removed = 0
        for folder in self._folders():
            if not folder.is_dir():
                continue
            for path in folder.glob(".*.tmp"):
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
                    removed += 1
        return removed

    def _folders(self) -> list[Path]:
        return [self.root, *(self.root / prefix.rstrip("/") for prefix in OUTPUT_PREFIXES)]

    def temp_files(self) -> list[Path]:
        return [p for folder in self._folders() if folder.is_dir() for p in folder.glob(".*.tmp")]

    def append_manifest(self, entries: Iterable[ManifestEntry]) -> None:
        data = "".join(e.to_line() for e in entries).encode("utf-8")
        if not data:
            return
        assert self._manifest is not None, "open() the sink first"
        self._manifest.write(data)
        self._manifest.flush()
        os.fsync(self._manifest.fileno())

    def rewrite_manifest(self, entries: Iterable[ManifestEntry]) -> None:
        data = "".join(e.to_line() for e in entries).encode("utf-8")
        self.store.put(MANIFEST, data)  # temp + fsync + rename
        if self._manifest is not None:
            self._manifest.close()
            self._manifest = open(self.root / MANIFEST, "ab")  # noqa: SIM115 - the new file

    def close(self) -> None:
        if self._lock is not None:  # no empty .lock left in the output once the run is over
            with contextlib.suppress(OSError):
                (self.root / LOCK_FILE).unlink()  # still holding the flock: nobody else owns it
        for handle in (self._manifest, self._lock):
            if handle is not None:
                with contextlib.suppress(OSError):
                    handle.close()
        self._manifest = self._lock = None


class BlobSink(Sink):
    """An S3-compatible bucket prefix (or any blob store): the manifest is PUT whole, now and then."""

    def __init__(self, url: str, store: BlobStore, flush_interval_s: float = 30.0) -> None:
        super().__init__(url, store)
        self.flush_interval_s = flush_interval_s
        self._lines: dict[str, str] = {}
        self._dirty = False
        self._last_flush = time.monotonic()

    def open(self) -> ManifestScan:
        scan = super().open()
        self._lines = {e.id: e.to_line() for e in scan.entries}
        return scan

    def append_manifest(self, entries: Iterable[ManifestEntry]) -> None:
        for entry in entries:
            self._lines[entry.id] = entry.to_line()
            self._dirty = True
        self.flush()

    def rewrite_manifest(self, entries: Iterable[ManifestEntry]) -> None:
        self._lines = {e.id: e.to_line() for e in entries}
        self._dirty = True
        self.flush(force=True)

    def flush(self, force: bool = False) -> None:
        if not self._dirty or (not force and time.monotonic() - self._last_flush < self.flush_interval_s):
            return
        self.store.put(MANIFEST, "".join(self._lines.values()).encode("utf-8"))
        self._dirty = False
        self._last_flush = time.monotonic()


def open_sink(url: str, *, s3_endpoint_url: str | None = None, flush_interval_s: float = 30.0) -> Sink:
    """A sink for ``file:///abs/dir``, a plain path, or ``s3://bucket/prefix``."""
    parts = urlsplit(url)
    if parts.scheme in ("", "file"):
        if parts.scheme == "file" and parts.netloc not in ("", "localhost"):
            raise VoxError("invalid_output", "file URLs must be file:///absolute/path")
        return LocalSink(Path(unquote(parts.path) if parts.scheme else url))
    if parts.scheme == "s3":
        if not parts.netloc:
            raise VoxError("invalid_output", "S3 outputs are s3://bucket/prefix")
        store = S3BlobStore(parts.netloc, unquote(parts.path), endpoint_url=s3_endpoint_url)
        return BlobSink(f"s3://{parts.netloc}/{store.prefix}".rstrip("/"), store, flush_interval_s)
    raise VoxError(
        "invalid_output", f"unsupported output {parts.scheme!r}: use a folder or s3://bucket/prefix"
    )


def open_sink_for(vv: VoxVault, url: str, *, flush_interval_s: float = 30.0) -> Sink:
    """``open_sink`` that seals outputs when ``url`` lies inside ``vv``'s blob store (issue 29, finding 2)."""
    sink = open_sink(url, s3_endpoint_url=vv.settings.s3_endpoint_url, flush_interval_s=flush_interval_s)
    store = vv.settings.resolved_blob_url.rstrip("/")
    if sink.url.rstrip("/").startswith(store + "/"):
        sink.seal_with(vv.envelope, sink.url.rstrip("/")[len(store) + 1 :])
    return sink


def iter_manifest(data: bytes) -> Iterator[dict[str, Any]]:
    """Complete entries of a manifest's bytes, for readers (a partial trailing line is skipped)."""
    for entry in Sink._scan(data).entries:
        yield asdict(entry)
