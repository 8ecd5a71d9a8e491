"""Envelope encryption at rest: AES-256-GCM per object, data keys wrapped by a master key.

Each sealed object carries its own random data key, wrapped (AES-256-GCM as well) by the master key
named in the header, so rotating the master key only re-wraps the 60-byte key headers, never the data.
Associated data (e.g. ``voice:<id>:style``) binds a ciphertext to its place: a blob copied onto another
record fails to open.

Sealed layout (all binary)::

    b"VXE1" | len(kid) u8 | kid | wrap_nonce 12 | wrapped_dek 48 | data_nonce 12 | ciphertext+tag
"""

from __future__ import annotations

import base64
import os
import secrets
import struct
from pathlib import Path
from typing import Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from voxvault.errors import VoxError

MAGIC = b"VXE1"


class KeyManager(Protocol):
    """A small KMS interface: wraps and unwraps data keys under a named master key."""

    @property
    def current_kid(self) -> str: ...

    def wrap(self, dek: bytes, aad: bytes) -> tuple[str, bytes, bytes]:
        """Return (kid, nonce, wrapped)."""
        ...

    def unwrap(self, kid: str, nonce: bytes, wrapped: bytes, aad: bytes) -> bytes: ...


class LocalKeyManager:
    """Master keys held in process memory, loaded from env or a key file.

    ``keys`` maps key id -> 32-byte key; ``current`` names the one used for new wraps. Older keys stay
    to unwrap what they wrapped until ``rotate`` has re-wrapped everything.
    """

    def __init__(self, keys: dict[str, bytes], current: str) -> None:
        for kid, key in keys.items():
            if len(key) != 32:
                raise ValueError(f"master key {kid!r} must be 32 bytes")
        if current not in keys:
            raise ValueError("current master key id not among the keys")
        self._keys = dict(keys)
        self._current = current

    @property
    def current_kid(self) -> str:
        return self._current

    def add(self, kid: str, key: bytes, make_current: bool = True) -> None:
        if len(key) != 32:
            raise ValueError("master key must be 32 bytes")
        self._keys[kid] = key
        if make_current:
            self._current = kid

    def wrap(self, dek: bytes, aad: bytes) -> tuple[str, bytes, bytes]:
        nonce = os.urandom(12)
        return self._current, nonce, AESGCM(self._keys[self._current]).encrypt(nonce, dek, b"dek|" + aad)

    def unwrap(self, kid: str, nonce: bytes, wrapped: bytes, aad: bytes) -> bytes:
        key = self._keys.get(kid)
        if key is None:
            raise VoxError("key_unavailable", f"master key {kid!r} is not loaded", 500)
        return AESGCM(key).decrypt(nonce, wrapped, b"dek|" + aad)

    # -- loading ---------------------------------------------------------------------------------------
    @classmethod
    def from_file(cls, path: Path) -> LocalKeyManager:
        """A key file holds lines ``kid:base64key``; the last line is current. Created if missing."""
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            kid = "k" + secrets.token_hex(4)
            line = f"{kid}:{base64.b64encode(os.urandom(32)).decode()}\n"
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(line)
        keys: dict[str, bytes] = {}
        current = ""
        for raw in path.read_text().splitlines():
            raw = raw.strip()
            if not raw or raw.startswith("#"):
                continue
            kid, _, b64 = raw.partition(":")
            keys[kid] = base64.b64decode(b64)
            current = kid
        return cls(keys, current)

    @classmethod
    def from_env_value(cls, value: str) -> LocalKeyManager:
        """``VOXVAULT_MASTER_KEY``: ``kid:base64`` pairs separated by commas, last is current."""
        keys: dict[str, bytes] = {}
        current = ""
        for i, part in enumerate(p for p in value.split(",") if p.strip()):
            kid, sep, b64 = part.strip().partition(":")
            if not sep:
                kid, b64 = f"env{i}", part.strip()
            keys[kid] = base64.b64decode(b64)
            current = kid
        return cls(keys, current)

    def append_to_file(self, path: Path, kid: str, key: bytes) -> None:
        with path.open("a") as f:
            f.write(f"{kid}:{base64.b64encode(key).decode()}\n")
        self.add(kid, key)


class Envelope:
    """Seal and open objects; the only code that sees data keys."""

    def __init__(self, keys: KeyManager) -> None:
        self.keys = keys

    def seal(self, plaintext: bytes, aad: str) -> bytes:
        aad_b = aad.encode()
        dek = AESGCM.generate_key(bit_length=256)
        kid, wnonce, wrapped = self.keys.wrap(dek, aad_b)
        nonce = os.urandom(12)
        ct = AESGCM(dek).encrypt(nonce, plaintext, aad_b)
        return self._pack(kid, wnonce, wrapped, nonce, ct)

    @staticmethod
    def _pack(kid: str, wnonce: bytes, wrapped: bytes, nonce: bytes, ct: bytes) -> bytes:
        kid_b = kid.encode()
        header = MAGIC + struct.pack("B", len(kid_b)) + kid_b + wnonce + struct.pack(">H", len(wrapped))
        return header + wrapped + nonce + ct

    @staticmethod
    def _parse(blob: bytes) -> tuple[str, bytes, bytes, bytes, bytes]:
        if not blob.startswith(MAGIC):
            raise VoxError("corrupt_object", "stored object is not a sealed envelope", 500)
        i = len(MAGIC)
        klen = blob[i]
        i += 1
        kid = blob[i : i + klen].decode()
        i += klen
        wnonce = blob[i : i + 12]
        i += 12
        (wlen,) = struct.unpack(">H", blob[i : i + 2])
        i += 2
        wrapped = blob[i : i + wlen]
        i += wlen
        nonce = blob[i : i + 12]
        return kid, wnonce, wrapped, nonce, blob[i + 12 :]

    def open(self, blob: bytes, aad: str) -> bytes:
        aad_b = aad.encode()
        kid, wnonce, wrapped, nonce, ct = self._parse(blob)
        try:
            dek = self.keys.unwrap(kid, wnonce, wrapped, aad_b)
            return AESGCM(dek).decrypt(nonce, ct, aad_b)
        except InvalidTag as exc:
            raise VoxError("corrupt_object", "stored object failed authentication", 500) from exc

    def rewrap(self, blob: bytes, aad: str) -> bytes:
        """Same ciphertext, data key re-wrapped under the current master key."""
        aad_b = aad.encode()
        kid, wnonce, wrapped, nonce, ct = self._parse(blob)
        try:
            dek = self.keys.unwrap(kid, wnonce, wrapped, aad_b)
        except InvalidTag as exc:
            raise VoxError("corrupt_object", "stored object failed authentication", 500) from exc
        return self._pack(*self.keys.wrap(dek, aad_b), nonce, ct)

    @staticmethod
    def key_id(blob: bytes) -> str:
        return Envelope._parse(blob)[0]
