"""Envelope encryption at rest: AES-256-GCM per object, data keys wrapped by a master key.

Each sealed object carries its own random 256-bit data key (DEK), wrapped with AES-256-GCM by the master
key named in the header. Rotating the master key therefore re-wraps only the small key header and never
touches the data, and it needs nothing but the blob itself: the wrapped DEK is bound to the header's key
id, not to the caller's associated data. The *data* is bound to its associated data (e.g.
``voice:<id>:style``), so a blob copied onto another record fails to open.

Sealed layout (all binary)::

    b"VXE1" | len(kid) u8 | kid | wrap_nonce 12 | len(wrapped) u16be | wrapped_dek | data_nonce 12
            | ciphertext + 16-byte tag

Master keys come from a ``KeyManager`` (a small KMS interface); ``LocalKeyManager`` keeps them in memory,
loaded from ``VOXVAULT_MASTER_KEY`` or a key file, and re-reads the file when it changes so a running
server picks up a rotation made by ``voxvault keys rotate-master``.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import logging
import os
import secrets
import struct
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from voxvault.errors import VoxError

log = logging.getLogger(__name__)

MAGIC = b"VXE1"
_NONCE = 12
_TAG = 16
_WRAP_CONTEXT = b"voxvault/dek/v1|"
_MIN_SEALED = len(MAGIC) + 1 + _NONCE + 2 + _NONCE + _TAG


class KeyManager(Protocol):
    """A small KMS interface: wraps and unwraps data keys under named master keys."""

    @property
    def current_kid(self) -> str: ...

    def wrap(self, dek: bytes) -> tuple[str, bytes, bytes]:
        """Wrap ``dek`` under the current master key; returns (kid, nonce, wrapped)."""
        ...

    def unwrap(self, kid: str, nonce: bytes, wrapped: bytes) -> bytes:
        """The DEK, or ``VoxError('key_unavailable')`` / ``InvalidTag``."""
        ...


def new_master_key() -> tuple[str, bytes]:
    """A fresh (kid, 32-byte key); the kid says when it was made, which helps when reading a key file."""
    kid = f"k{dt.datetime.now(dt.UTC):%Y%m%d}{secrets.token_hex(3)}"
    return kid, os.urandom(32)


def _decode_key(kid: str, b64: str) -> bytes:
    try:
        key = base64.b64decode(b64.strip(), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise VoxError("invalid_master_key", f"master key {kid!r} is not valid base64", 500) from exc
    if len(key) != 32:
        raise VoxError("invalid_master_key", f"master key {kid!r} must be 32 bytes (base64 of 32 bytes)", 500)
    return key


def _parse_lines(lines: list[str], *, default_kid: str) -> tuple[dict[str, bytes], str]:
    keys: dict[str, bytes] = {}
    current = ""
    for i, raw in enumerate(lines):
        raw = raw.strip()
        if not raw or raw.startswith("#"):
            continue
        kid, sep, b64 = raw.partition(":")
        if not sep:
            kid, b64 = f"{default_kid}{i}", raw
        kid = kid.strip()
        if not kid or len(kid.encode()) > 255:
            raise VoxError("invalid_master_key", "master key ids are 1-255 bytes", 500)
        keys[kid] = _decode_key(kid, b64)
        current = kid
    if not keys:
        raise VoxError("invalid_master_key", "no master key configured", 500)
    return keys, current


@dataclass(frozen=True)
class KeyLocation:
    """Where the master key comes from, and whether a copy of the data dir alone would carry it."""

    source: str  # "env" (VOXVAULT_MASTER_KEY), "file" (a key file) or "custom" (a KeyManager given in code)
    path: str | None
    inside_data_dir: bool

    @property
    def warning(self) -> str | None:
        if not self.inside_data_dir:
            return None
        return (
            f"the master key file {self.path} is inside the data dir: a copy of the data dir alone opens "
            "every sealed object; move it (VOXVAULT_MASTER_KEY_FILE) or use VOXVAULT_MASTER_KEY "
            "(docs/security.md)"
        )


def key_location(*, from_env: bool, key_file: Path, data_dir: Path, custom: bool = False) -> KeyLocation:
    """Issue 29, finding 7: the master key beside the data is reported (log at start, ``doctor``)."""
    if custom:
        return KeyLocation("custom", None, False)
    if from_env:
        return KeyLocation("env", None, False)
    path = key_file.resolve()
    return KeyLocation("file", str(path), path.is_relative_to(data_dir.resolve()))


class LocalKeyManager:
    """Master keys held in process memory, loaded from env or a key file.

    ``keys`` maps key id -> 32-byte key; ``current`` names the one used for new wraps (the last one listed).
    Older keys stay loaded to unwrap what they wrapped until everything has been re-wrapped.
    """

    def __init__(self, keys: dict[str, bytes], current: str, source: Path | None = None) -> None:
        for kid, key in keys.items():
            if len(key) != 32:
                raise ValueError(f"master key {kid!r} must be 32 bytes")
        if current not in keys:
            raise ValueError("current master key id not among the keys")
        self._keys = dict(keys)
        self._current = current
        self.source = source
        self._signature = self._stat()
        self._lock = threading.Lock()

    @property
    def current_kid(self) -> str:
        self._maybe_reload()
        return self._current

    def add(self, kid: str, key: bytes, make_current: bool = True) -> None:
        if len(key) != 32:
            raise ValueError("master key must be 32 bytes")
        self._keys[kid] = key
        if make_current:
            self._current = kid

    def wrap(self, dek: bytes) -> tuple[str, bytes, bytes]:
        self._maybe_reload()
        kid = self._current
        nonce = os.urandom(_NONCE)
        return kid, nonce, AESGCM(self._keys[kid]).encrypt(nonce, dek, _WRAP_CONTEXT + kid.encode())

    def unwrap(self, kid: str, nonce: bytes, wrapped: bytes) -> bytes:
        key = self._keys.get(kid)
        if key is None and self._maybe_reload():
            key = self._keys.get(kid)
        if key is None:
            raise VoxError("key_unavailable", f"master key {kid!r} is not loaded", 500)
        return AESGCM(key).decrypt(nonce, wrapped, _WRAP_CONTEXT + kid.encode())

    # -- loading ---------------------------------------------------------------------------------------
    def _stat(self) -> tuple[int, int] | None:
        """(mtime, size) of the key file: appending a key always changes the size, whatever the clock."""
        if self.source is None:
            return None
        try:
            st = self.source.stat()
        except OSError:
            return None
        return st.st_mtime_ns, st.st_size

    def _maybe_reload(self) -> bool:
        """Re-read the key file if it changed (a rotation by another process); True if it did."""
        if self.source is None:
            return False
        sig = self._stat()
        if sig is None or sig == self._signature:
            return False
        with self._lock:
            if sig == self._signature:
                return False
            keys, current = _parse_lines(self.source.read_text().splitlines(), default_kid="file")
            # Keep keys the file no longer lists: objects wrapped under them must still open.
            self._keys = {**self._keys, **keys}
            self._current = current
            self._signature = sig
            log.info("master key file reloaded; current key id %s", current)
            return True

    @classmethod
    def from_file(cls, path: Path) -> LocalKeyManager:
        """A key file holds lines ``kid:base64key``; the last line is current. Created (0600) if missing."""
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            kid, key = new_master_key()
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:
                pass  # another process created it first; use theirs
            else:
                with os.fdopen(fd, "w") as f:
                    f.write("# voxvault master keys: kid:base64. The last line encrypts new data.\n")
                    f.write(f"{kid}:{base64.b64encode(key).decode()}\n")
                    f.flush()
                    os.fsync(f.fileno())
        mode = path.stat().st_mode
        if mode & 0o077:
            log.warning(
                "master key file %s is readable by other users (mode %o); chmod 600 it", path, mode & 0o777
            )
        keys, current = _parse_lines(path.read_text().splitlines(), default_kid="file")
        return cls(keys, current, source=path)

    @classmethod
    def from_env_value(cls, value: str) -> LocalKeyManager:
        """``VOXVAULT_MASTER_KEY``: ``kid:base64`` pairs separated by commas, the last is current."""
        keys, current = _parse_lines(value.split(","), default_kid="env")
        return cls(keys, current)

    def append_to_file(self, kid: str, key: bytes) -> None:
        """Add a new current key to the key file (durably) and to this process."""
        if self.source is None:
            raise VoxError(
                "master_key_from_env", "the master key comes from the environment, not a file", 400
            )
        if kid in self._keys:
            raise VoxError("invalid_master_key", f"master key id {kid!r} already exists", 500)
        with self._lock:
            with self.source.open("a") as f:
                f.write(f"{kid}:{base64.b64encode(key).decode()}\n")
                f.flush()
                os.fsync(f.fileno())
            self.add(kid, key)
            self._signature = self._stat()


class Envelope:
    """Seal and open objects; the only code that sees data keys."""

    def __init__(self, keys: KeyManager) -> None:
        self.keys = keys

    def seal(self, plaintext: bytes, aad: str) -> bytes:
        """Encrypt ``plaintext`` bound to ``aad`` (where it lives, e.g. ``voice:<id>:style``)."""
        dek = AESGCM.generate_key(bit_length=256)
        kid, wnonce, wrapped = self.keys.wrap(dek)
        nonce = os.urandom(_NONCE)
        ct = AESGCM(dek).encrypt(nonce, plaintext, aad.encode())
        return self._pack(kid, wnonce, wrapped, nonce, ct)

    def open(self, blob: bytes, aad: str) -> bytes:
        """Decrypt; ``VoxError('corrupt_object')`` if the blob was altered, moved or belongs elsewhere."""
        kid, wnonce, wrapped, nonce, ct = self._parse(blob)
        dek = self._unwrap(kid, wnonce, wrapped)
        try:
            return AESGCM(dek).decrypt(nonce, ct, aad.encode())
        except InvalidTag as exc:
            raise VoxError("corrupt_object", "stored object failed authentication", 500) from exc

    def rewrap(self, blob: bytes, aad: str | None = None) -> bytes:
        """Same ciphertext, data key re-wrapped under the current master key (``aad`` is not needed)."""
        kid, wnonce, wrapped, nonce, ct = self._parse(blob)
        dek = self._unwrap(kid, wnonce, wrapped)
        return self._pack(*self.keys.wrap(dek), nonce, ct)

    def _unwrap(self, kid: str, wnonce: bytes, wrapped: bytes) -> bytes:
        try:
            return self.keys.unwrap(kid, wnonce, wrapped)
        except InvalidTag as exc:
            raise VoxError("corrupt_object", "stored object's key failed authentication", 500) from exc

    @staticmethod
    def is_sealed(blob: bytes) -> bool:
        return blob.startswith(MAGIC)

    @staticmethod
    def key_id(blob: bytes) -> str:
        return Envelope._parse(blob)[0]

    @staticmethod
    def _pack(kid: str, wnonce: bytes, wrapped: bytes, nonce: bytes, ct: bytes) -> bytes:
        kid_b = kid.encode()
        header = MAGIC + struct.pack("B", len(kid_b)) + kid_b + wnonce + struct.pack(">H", len(wrapped))
        return header + wrapped + nonce + ct

    @staticmethod
    def _parse(blob: bytes) -> tuple[str, bytes, bytes, bytes, bytes]:
        corrupt = VoxError("corrupt_object", "stored object is not a sealed envelope", 500)
        if len(blob) < _MIN_SEALED or not blob.startswith(MAGIC):
            raise corrupt
        i = len(MAGIC)
        klen = blob[i]
        i += 1
        try:
            kid = blob[i : i + klen].decode()
        except UnicodeDecodeError:
            raise corrupt from None
        i += klen
        wnonce = blob[i : i + _NONCE]
        i += _NONCE
        if len(blob) < i + 2:
            raise corrupt
        (wlen,) = struct.unpack(">H", blob[i : i + 2])
        i += 2
        wrapped = blob[i : i + wlen]
        i += wlen
        nonce = blob[i : i + _NONCE]
        ct = blob[i + _NONCE :]
        if len(wrapped) != wlen or len(nonce) != _NONCE or len(ct) < _TAG:
            raise corrupt
        return kid, wnonce, wrapped, nonce, ct


@dataclass
class RewrapReport:
    """What a master-key rotation did to the blob store."""

    current_kid: str
    rewrapped: int = 0
    already_current: int = 0
    not_sealed: int = 0
    failed: list[str] = field(default_factory=list)
    remaining_kids: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, object]:
        return {
            "current_kid": self.current_kid,
            "rewrapped": self.rewrapped,
            "already_current": self.already_current,
            "not_sealed": self.not_sealed,
            "failed": len(self.failed),
            "remaining_kids": dict(self.remaining_kids),
        }
