"""A keyed hash of spoken text for generation records and the audit log (audit finding 9).

Records keep a digest of the text, never the text, so that the operator can later confirm what was said
(a complaint quoting a sentence, a detected clip). A plain SHA-256 let anyone holding ``audit:read``
confirm guesses too: short or predictable texts ("Transfer the money to account 12345") fall to a
dictionary. The digest is therefore HMAC-SHA256 under a server secret: 32 random bytes made on first
use and kept in the blob store sealed by the master key (so they are outside the database, re-wrapped
with every other blob on master-key rotation, and unreadable from a copy of the data without the key).

``vv.text_hasher.hexdigest(text)`` computes the digest of a text for comparison with a record.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import threading

from voxvault.governance.crypto import Envelope
from voxvault.store.blobs import BlobNotFound, BlobStore

__all__ = ["TEXT_HASH", "TEXT_KEY_BLOB", "TextHasher"]

TEXT_KEY_BLOB = "keys/text-hash-key"
TEXT_HASH = "hmac-sha256"  # what records' text_sha256 holds (the audit entry says so)
_AAD = "text-hash-key"


class TextHasher:
    """HMAC-SHA256 of text under the installation's text key (made on first use)."""

    def __init__(self, blobs: BlobStore, envelope: Envelope) -> None:
        self.blobs = blobs
        self.envelope = envelope
        self._key: bytes | None = None
        self._lock = threading.Lock()

    def key(self) -> bytes:
        with self._lock:
            if self._key is None:
                try:
                    sealed = self.blobs.get(TEXT_KEY_BLOB)
                except BlobNotFound:
                    self.blobs.put(TEXT_KEY_BLOB, self.envelope.seal(os.urandom(32), _AAD))
                    sealed = self.blobs.get(TEXT_KEY_BLOB)  # whichever process wrote last wins, for all
                self._key = self.envelope.open(sealed, _AAD)
            return self._key

    def new(self) -> hmac.HMAC:
        """An incremental digest; ``hexdigest()`` is 64 hex characters, like SHA-256."""
        return hmac.new(self.key(), digestmod=hashlib.sha256)

    def hexdigest(self, text: str) -> str:
        digest = self.new()
        digest.update(text.encode("utf-8"))
        return digest.hexdigest()
