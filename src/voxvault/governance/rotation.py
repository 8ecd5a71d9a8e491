"""Master-key rotation: add a new master key, then re-wrap every sealed blob's data key under it.

Given the database, the personal fields sealed in it are re-wrapped too (``store/sealed.py``).

Only the key header of each blob changes; the ciphertext stays. Each blob is replaced atomically by the
blob store (temp file + rename, or one S3 PUT), so a crash mid-way leaves every blob readable: the old
key stays loaded until nothing uses it, and running the rotation again finishes the job.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass

from voxvault.errors import VoxError
from voxvault.governance.audit import AuditTrail
from voxvault.governance.crypto import Envelope, LocalKeyManager, RewrapReport, new_master_key
from voxvault.governance.reseal import rewrap_sealed_fields
from voxvault.store.blobs import BlobNotFound, BlobStore
from voxvault.store.db import Database

log = logging.getLogger(__name__)


def rewrap_all(envelope: Envelope, blobs: BlobStore, prefix: str = "") -> RewrapReport:
    """Re-wrap every sealed blob (magic ``VXE1``) under ``prefix`` whose key is not the current one."""
    current = envelope.keys.current_kid
    report = RewrapReport(current_kid=current)
    remaining: Counter[str] = Counter()
    for key in blobs.list(prefix):
        try:
            data = blobs.get(key)
        except BlobNotFound:
            continue  # deleted while we were listing
        if not Envelope.is_sealed(data):
            report.not_sealed += 1
            continue
        kid = "unreadable"
        try:
            kid = Envelope.key_id(data)
            if kid == current:
                report.already_current += 1
                continue
            sealed = envelope.rewrap(data)
            # Narrow the window for a writer replacing this blob meanwhile: never put back stale bytes.
            if blobs.get(key) != data:
                report.failed.append(key)
                remaining[kid] += 1
                continue
            blobs.put(key, sealed)
            report.rewrapped += 1
        except (VoxError, BlobNotFound) as exc:
            log.warning("could not re-wrap blob %s: %s", key, getattr(exc, "code", type(exc).__name__))
            report.failed.append(key)
            remaining[kid] += 1
    report.remaining_kids = dict(remaining)
    return report


@dataclass
class Rotation:
    new_kid: str | None
    report: RewrapReport


def rotate_master_key(
    keys: LocalKeyManager,
    envelope: Envelope,
    blobs: BlobStore,
    audit: AuditTrail,
    *,
    rewrap_only: bool = False,
    actor: str | None = None,
    db: Database | None = None,
) -> Rotation:
    """Append a new master key to the key file (unless ``rewrap_only``), re-wrap everything, audit it.

    With the key in ``VOXVAULT_MASTER_KEY`` there is no file to append to: the operator adds the new key
    to the variable, restarts, and runs this with ``rewrap_only=True``.
    """
    new_kid = None
    if not rewrap_only:
        if keys.source is None:
            raise VoxError(
                "master_key_from_env",
                "the master key comes from VOXVAULT_MASTER_KEY: append a new kid:base64 pair to it, restart, "
                "then run 'voxvault keys rotate-master --rewrap-only'",
            )
        new_kid, key = new_master_key()
        keys.append_to_file(new_kid, key)
    report = rewrap_all(envelope, blobs)
    if db is not None:  # personal fields sealed in the database (issue 29, finding 6)
        with db.session() as s:
            rewrapped, already, remaining = rewrap_sealed_fields(s, envelope)
        report.rewrapped += rewrapped
        report.already_current += already
        for kid, n in remaining.items():
            report.remaining_kids[kid] = report.remaining_kids.get(kid, 0) + n
    audit.record(
        "master_key.rotated" if new_kid else "master_key.rewrapped",
        actor=actor,
        target=report.current_kid,
        details=report.as_dict(),
    )
    log.info("master key rotation: %s", report.as_dict())
    return Rotation(new_kid, report)
