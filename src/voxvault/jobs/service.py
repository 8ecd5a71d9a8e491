"""Batch jobs submitted over HTTP: stored, queued, and run one after another in a server thread.

The uploaded items file is kept in the blob store next to the job's outputs
(``batches/<job id>/items.<jsonl|csv>``), so a job survives a server restart: on start the service
queues every job left ``queued``, ``running`` (its server died) or ``interrupted`` (it was stopped), and
the runner resumes each where it stopped. Reads are tenant-scoped: a job of another project is
``not_found``, never ``forbidden``, so ids leak nothing.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy import select

from voxvault.audio import CONTENT_TYPES, FORMATS
from voxvault.errors import VoxError
from voxvault.governance.keys import Principal
from voxvault.jobs.batch import JOB_KIND, LEASE_S, RESUMABLE_STATUSES, BatchRunner, JobRecords
from voxvault.jobs.executors import LocalExecutor
from voxvault.jobs.sinks import MANIFEST, Sink, format_of, open_sink_for
from voxvault.jobs.spec import detect_kind, parse_items
from voxvault.jobs.worker import WorkerOptions
from voxvault.store.blobs import BlobNotFound, validate_key
from voxvault.store.models import Job, JobItem, new_id

if TYPE_CHECKING:  # jobs take a VoxVault, never import it: service.py is the composition root
    from voxvault.service import VoxVault

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BatchStatus:
    id: str
    status: str
    total: int
    done: int
    failed: int
    skipped: int
    pending: int
    audio_seconds: float
    error: str | None
    created_at: str
    updated_at: str


class BatchService:
    """One background thread; each job uses ``settings.batch_workers`` synthesis threads."""

    def __init__(self, vv: VoxVault) -> None:
        self.vv = vv
        self.records = JobRecords(vv.db)
        self._queue: queue.Queue[str] = queue.Queue()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._running_job: str | None = None

    # -- lifecycle ---------------------------------------------------------------------------------------
    def start(self) -> None:
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="voxvault-batches", daemon=True)
        self._thread.start()
        with self.vv.db.session() as s:
            resumable = s.scalars(
                select(Job.id)
                .where(Job.kind == JOB_KIND, Job.status.in_(RESUMABLE_STATUSES))
                .order_by(Job.created_at)
            ).all()
            specs = {job_id: s.get(Job, job_id) for job_id in resumable}
        for job_id, job in specs.items():
            if job is not None and (job.spec or {}).get("input_key"):
                log.info("batch %s: queued again after a restart", job_id)
                self._queue.put(job_id)

    def stop(self, timeout: float = 30.0) -> None:
        """Stop taking items; in-flight items finish and the job is left ``interrupted`` (resumable)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def wait_idle(self, timeout: float) -> bool:
        """True once no job is running or queued, False if that takes longer than ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while self._running_job is not None or self._queue.unfinished_tasks:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.05)
        return True

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                job_id = self._queue.get(timeout=0.5)
            except queue.Empty:
                continue
            self._running_job = job_id
            try:
                self._run(job_id)
            except VoxError as exc:
                log.warning("batch %s: %s", job_id, exc.code)
                if exc.code == "batch_busy":
                    self._retry_later(job_id)
            except Exception:
                log.exception("batch %s failed", job_id)
            finally:
                self._running_job = None
                self._queue.task_done()

    def _retry_later(self, job_id: str) -> None:
        """A job another runner holds: look again once its lease could have expired (it may have died)."""

        def again() -> None:
            if not self._stop.is_set():
                self._queue.put(job_id)

        timer = threading.Timer(LEASE_S / 2, again)
        timer.daemon = True
        timer.start()

    def _run(self, job_id: str) -> None:
        with self.vv.db.session() as s:
            job = s.get(Job, job_id)
            if job is None or job.status not in RESUMABLE_STATUSES:
                return  # gone, or finished by the runner that held it
            spec, key_id = dict(job.spec or {}), job.key_id
        if spec.get("task") == "transcribe":
            from voxvault.jobs.transcribe_items import run_stored_job

            run_stored_job(self.vv, job_id, spec, key_id, self._stop)
            return
        data = self.vv.envelope.open(self.vv.blobs.get(spec["input_key"]), aad=spec["input_key"])
        items = parse_items(data, kind=spec["kind"], max_items=self.vv.settings.batch_max_items)
        opts = spec["options"]
        options = WorkerOptions(
            default_voice=opts["voice"],
            default_format=opts["format"],
            project_id=opts.get("project_id"),
            allowed_voices=tuple(opts["allowed_voices"]) if opts.get("allowed_voices") is not None else None,
            lexicon=opts.get("lexicon") or {},
        )
        sink = open_sink_for(self.vv, spec["sink"])
        runner = BatchRunner(
            self.vv,
            job_id,
            items,
            sink,
            LocalExecutor(self.vv.settings.batch_workers),
            options,
            key_id=key_id,
            cancel=self._stop,
        )
        runner.run()

    # -- requests --------------------------------------------------------------------------------------------
    def enqueue(self, job_id: str) -> None:
        """Queue a job whose row (status ``queued``) and stored input already exist."""
        self._queue.put(job_id)

    def submit(
        self, data: bytes, *, filename: str | None, principal: Principal, voice: str | None, fmt: str
    ) -> BatchStatus:
        """Validate every line, store the file, create the job and queue it. Bad lines: nothing is stored."""
        if fmt not in FORMATS:
            raise VoxError(
                "unsupported_format", f"response_format {fmt!r} is not one of {', '.join(FORMATS)}"
            )
        if len(data) > self.vv.settings.max_upload_bytes:
            raise VoxError("upload_too_large", "the items file is larger than the upload limit", 413)
        kind = detect_kind(filename, data)
        spec = parse_items(data, kind=kind, max_items=self.vv.settings.batch_max_items)
        job_id = new_id()
        input_key = f"batches/{job_id}/items.{kind}"
        # The items hold the texts to speak: sealed at rest like every other payload (issue 7).
        self.vv.blobs.put(input_key, self.vv.envelope.seal(data, aad=input_key))
        sink_url = f"{self.vv.settings.resolved_blob_url.rstrip('/')}/batches/{job_id}"
        options = {
            "voice": voice or self.vv.settings.default_voice,
            "format": fmt,
            "project_id": principal.project_id,
            "allowed_voices": sorted(principal.voice_ids) if principal.voice_ids is not None else None,
            "lexicon": self.vv.lexicon_for(principal),
        }
        self.records.ensure(
            job_id,
            spec={
                "input_key": input_key,
                "kind": kind,
                "sink": sink_url,
                "options": options,
                "items_sha256": spec.sha256,
            },
            total=len(spec.items),
            project_id=principal.project_id,
            key_id=principal.key_id,
        )
        self.vv.audit.record(
            "batch.created",
            actor=principal.key_id,
            target=job_id,
            details={"items": len(spec.items), "items_sha256": spec.sha256, "format": fmt},
        )
        self._queue.put(job_id)
        return self.status(job_id, principal.project_id)

    def job(self, job_id: str, project_id: str, task: str | None = None) -> Job:
        """The project's batch job of ``task`` (None: speech; ``transcribe``): each is read under its own
        scope, so a job of the other task is ``not_found`` too."""
        with self.vv.db.session() as s:
            job = s.get(Job, job_id)
        if (
            job is None
            or job.kind != JOB_KIND
            or job.project_id != project_id
            or (job.spec or {}).get("task") != task
        ):
            raise VoxError("not_found", "no such batch job", 404)
        return job

    def status(self, job_id: str, project_id: str, task: str | None = None) -> BatchStatus:
        job = self.job(job_id, project_id, task)
        by_status = self.records.status_counts(job_id)
        result = job.result or {}
        done, failed = by_status.get("done", 0), by_status.get("failed", 0)
        return BatchStatus(
            id=job.id,
            status=job.status,
            total=job.total,
            done=done,
            failed=failed,
            skipped=int((result.get("counts") or {}).get("skipped", 0)),
            pending=max(0, job.total - done - failed),
            audio_seconds=float(result.get("audio_seconds", 0.0)),
            error=job.error,
            created_at=job.created_at.isoformat(),
            updated_at=job.updated_at.isoformat(),
        )

    def sink(self, job: Job) -> Sink:
        return open_sink_for(self.vv, (job.spec or {})["sink"])

    def manifest(self, job_id: str, project_id: str, task: str | None = None) -> bytes:
        """The manifest as it is now: complete lines only (a line being written is left out)."""
        job = self.job(job_id, project_id, task)
        data: bytes = self.sink(job).read_manifest_bytes()
        return data[: data.rfind(b"\n") + 1]

    def errors(
        self, job_id: str, project_id: str, *, limit: int, offset: int, task: str | None = None
    ) -> list[dict[str, str]]:
        self.job(job_id, project_id, task)
        return self.records.errors(job_id, limit=limit, offset=offset)

    def audio(self, job_id: str, project_id: str, item_id: str) -> tuple[bytes, str]:
        """A finished item's audio and its content type."""
        job = self.job(job_id, project_id)
        with self.vv.db.session() as s:
            row = s.get(JobItem, (job_id, item_id))
            key = row.output_key if row is not None and row.status == "done" else None
            erased = row is not None and row.status == "erased"
        if erased:
            raise VoxError(
                "output_erased", "this item's audio was erased with the voice it was spoken in", 410
            )
        if not key:
            raise VoxError("not_found", "no finished item with this id in the batch", 404)
        validate_key(key)
        try:
            data: bytes = self.sink(job).read_output(key)
        except BlobNotFound:
            raise VoxError("not_found", "the item's audio is gone", 404) from None
        return data, CONTENT_TYPES.get(format_of(key), "application/octet-stream")


__all__ = ["MANIFEST", "BatchService", "BatchStatus"]
