"""Sweeps over every sealed column of the schema: seal values an earlier version stored in clear, and
re-wrap data keys after a master-key rotation. Separate from ``sealed.py`` (the column type) because these
walk the models, and the models use the column type."""

from __future__ import annotations

import base64

from sqlalchemy import Text, or_, select, type_coerce
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import flag_modified

from voxvault.errors import VoxError
from voxvault.governance.crypto import Envelope
from voxvault.store.models import Base
from voxvault.store.sealed import PREFIX, SealedText


def reseal_personal_fields(session: Session) -> int:
    """Seal values stored in clear by an earlier version; returns how many rows were rewritten."""
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
                kid = Envelope.key_id(blob)
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
