"""Personal fields sealed at rest inside the database (issue 29, finding 6).

A speaker's name, the organisation and purpose they consented to, the consent statement and a voice's
name are stored as ``vxe1:<base64 envelope>``: the same AES-256-GCM envelope as blobs, bound to the column
(``db:<table>.<column>``). The ``Database`` is given the envelope (``Database.seal_with``); without it
(a bare ``Database`` in tests or tools) values pass through as text, and a sealed value read there is
``key_unavailable``. Values written before sealing existed are read as they are and sealed by
``governance/reseal.py``'s ``reseal_personal_fields`` when ``VoxVault`` opens the database.
"""

from __future__ import annotations

import base64
import binascii
from typing import TYPE_CHECKING

from sqlalchemy import Dialect, Text, TypeDecorator

from voxvault.errors import VoxError

if TYPE_CHECKING:
    from voxvault.governance.crypto import Envelope

PREFIX = "vxe1:"
_ENVELOPE_ATTR = "voxvault_envelope"


def attach(dialect: Dialect, envelope: Envelope) -> None:
    setattr(dialect, _ENVELOPE_ATTR, envelope)


class SealedText(TypeDecorator[str]):
    """A text column whose values are envelope-encrypted; ``aad`` names the column they belong to."""

    impl = Text
    cache_ok = True

    def __init__(self, aad: str) -> None:
        super().__init__()
        self.aad = aad

    def process_bind_param(self, value: str | None, dialect: Dialect) -> str | None:
        envelope: Envelope | None = getattr(dialect, _ENVELOPE_ATTR, None)
        if value is None or envelope is None:
            return value
        return PREFIX + base64.b64encode(envelope.seal(value.encode("utf-8"), self.aad)).decode("ascii")

    def process_result_value(self, value: str | None, dialect: Dialect) -> str | None:
        if value is None or not value.startswith(PREFIX):
            return value  # written before sealing (resealed at the next start), or no envelope
        envelope: Envelope | None = getattr(dialect, _ENVELOPE_ATTR, None)
        if envelope is None:
            raise VoxError("key_unavailable", "sealed field: open the database with its key", 500)
        try:
            blob = base64.b64decode(value[len(PREFIX) :], validate=True)
        except (binascii.Error, ValueError):
            raise VoxError("corrupt_object", "a sealed field is damaged", 500) from None
        return envelope.open(blob, self.aad).decode("utf-8")
