"""Erasing a voice's batch outputs (issue 29, finding 3): speech made with an erased voice goes with it.

Every batch item row records the voice it was spoken with. For jobs whose outputs live in the blob store
(everything submitted over HTTP), erasure deletes each such output and scrubs its row to an ``erased``
tombstone (no key, no SHA-256, no duration), so ``GET /v1/batches/{job}/items/{item}/audio`` answers
410 ``output_erased``; the job's manifest is rewritten without those lines when the job is not running
(a running or interrupted job's runner rewrites it from the rows when it resumes). Outputs written to a
folder or bucket the user named (``voxvault batch run --out``) are the user's export: they are counted
as left, never deleted from under the user (docs/security.md).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from sqlalchemy import select

from voxvault.jobs.batch import FINAL_STATUSES
from voxvault.jobs.sinks import Sink, open_sink_for
from voxvault.store.blobs import validate_key
from voxvault.store.models import Job, JobItem
from voxvault.voices.lifecycle import OutputErasure

if TYPE_CHECKING:
    from voxvault.service import VoxVault

log = logging.getLogger(__name__)

ERASED_STATUS = "erased"


def erase_voice_outputs(vv: VoxVault, voice_id: str) -> OutputErasure:
    """Delete every stored output spoken with ``voice_id`` and scrub its rows; safe to retry."""
    with vv.db.session() as s:
        found = s.execute(
            select(JobItem.job_id, JobItem.item_id, JobItem.output_key, Job.spec, Job.status)
            .join(Job, Job.id == JobItem.job_id)
            .where(JobItem.voice_id == voice_id, JobItem.status != ERASED_STATUS)
        ).all()
    deleted = scrubbed = exported = 0
    sinks: dict[str, tuple[Sink, str]] = {}
    for job_id, item_id, key, spec, status in found:
        url = (spec or {}).get("sink")
        if job_id not in sinks and url:
            sinks[job_id] = (open_sink_for(vv, url), status)
        sink = sinks[job_id][0] if job_id in sinks else None
        if sink is None or sink.envelope is None:
            exported += 1 if key else 0  # the user's export: counted, left alone
            continue
        if key:
            validate_key(key)
            if sink.store.exists(key):
                deleted += 1
            sink.delete_output(key)
        with vv.db.session() as s:
            row = s.get(JobItem, (job_id, item_id))
            if row is not None:
                row.status = ERASED_STATUS
                row.output_key = row.sha256 = row.duration = None
                row.error = "voice_erased: the voice this item was spoken with was erased"
        scrubbed += 1
    for job_id, (sink, status) in sinks.items():
        if sink.envelope is not None and status in FINAL_STATUSES:
            _rewrite_manifest(vv, job_id, sink)
    if found:
        log.info(
            "voice %s: %d outputs deleted, %d rows scrubbed, %d exported left",
            voice_id,
            deleted,
            scrubbed,
            exported,
        )
    return OutputErasure(outputs_deleted=deleted, items_scrubbed=scrubbed, exported_left=exported)


def _rewrite_manifest(vv: VoxVault, job_id: str, sink: Sink) -> None:
    """The manifest of a finished job lists its done items only (erased ones drop out)."""
    from voxvault.jobs.batch import JobRecords

    rows = JobRecords(vv.db).rows(job_id)
    keep = {row.item_id for row in rows.values() if row.status == "done"}
    sink.rewrite_manifest(e for e in Sink._scan(sink.read_manifest_bytes()).entries if e.id in keep)
