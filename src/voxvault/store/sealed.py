"""Personal fields sealed at rest inside the database (issue 29, finding 6).

A speaker's name, the organisation and purpose they consented to, the consent statement and a voice's
name are stored as ``vxe1:<base64 envelope>``: the same AES-256-GCM envelope as blobs, bound to the column
(``db:<table>.<column>``). The ``Database`` is given the envelope (``Database.seal_with``); without it
(a bare ``Database`` in tests or tools) values pass through as text, and a sealed value read there is
``key_unavailable``. Values written before sealing existed are read as they are and sealed by
``reseal_personal_fields`` when ``VoxVault`` opens the database.
"""

from __future__ import annotations

import base64
import binascii
from typing import TYPE_CHECKING, Any

from sqlalchemy import Dialect, Text, TypeDecorator, or_, select, type_coerce
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import flag_modified

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


def sealed_columns() -> list[Any]:
    """Every ``SealedText`` column of the schema."""
    from voxvault.store.models import Base

    return [
        column
        for table in Base.metadata.sorted_tables
        for column in table.columns
        if isinstance(column.type, SealedText)
    ]


def reseal_personal_fields(session: Session) -> int:
    """Seal values stored in clear by an earlier version; returns how many rows were rewritten."""
    from voxvault.store.models import Base

    rewritten = 0
    for mapper in Base.registry.mappers:
        cls = mapper.class_
        columns = [c for c in mapper.columns if isinstance(c.type, SealedText)]
        if not columns:
            continue
        clear = or_(*(~type_coerce(c, Text).startswith(PREFIX) for c in columns))
        for row in session.scalars(select(cls).where(clear)):
            for column in columns:
                flag_modified(row, mapper.get_property_by_column(column).key)
            rewritten += 1
    return rewritten


def rewrap_sealed_fields(session: Session, envelope: Envelope) -> tuple[int, int, dict[str, int]]:
    """Master-key rotation for sealed fields: re-wrap each value's data key under the current master key.

    Returns (re-wrapped, already current, values still under other keys by key id). The ciphertext is
    unchanged, as for blobs; values are rewritten in place through their raw text.
    """
    from voxvault.governance.crypto import Envelope as _Envelope
    from voxvault.store.models import Base

    current = envelope.keys.current_kid
    rewrapped = already = 0
    remaining: dict[str, int] = {}
    for table in Base.metadata.sorted_tables:
        columns = [c for c in table.columns if isinstance(c.type, SealedText)]
        key = list(table.primary_key.columns)
        for column in columns:
            raw = type_coerce(column, Text)
            rows = session.execute(select(*key, raw).where(raw.startswith(PREFIX))).all()
            for *ids, value in rows:
                blob = base64.b64decode(value[len(PREFIX) :])
                kid = _Envelope.key_id(blob)
                if kid == current:
                    already += 1
                    continue
                try:
                    fresh = PREFIX + base64.b64encode(envelope.rewrap(blob)).decode("ascii")
                except VoxError:
                    remaining[kid] = remaining.get(kid, 0) + 1
                    continue
                where = [k == v for k, v in zip(key, ids, strict=True)]
                session.execute(
                    table.update().where(*where, raw == value).values({column.name: type_coerce(fresh, Text)})
                )
                rewrapped += 1
    return rewrapped, already, remaining
