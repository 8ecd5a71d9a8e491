"""The batch runner (the driver): decides what is left to do, feeds an executor and records every outcome.

State lives in three places that must agree: the ``jobs``/``job_items`` rows, the committed output files
and ``manifest.jsonl``. An item is finished when all three say so. Per item, in order:

1. a worker prepares it (voice, text plan); a bad item fails here with its own error;
2. the driver opens the generation record (its watermark id) and marks the row ``running``;
3. the worker renders with that watermark and commits the output (atomic rename or single PUT);
4. the driver finishes the generation record, marks the row ``done``, then lists it in the manifest.

A run that is killed at any point is resumed by running the same job again: ``done`` rows whose output
exists are skipped; everything else (``running`` rows included: their output, if the kill came between
3 and 4, was never listed and is replaced atomically) is done again; leftover temp files are removed;
done items missing from the manifest are added, and a manifest that a crash left damaged, or that lists
anything the rows do not, is rewritten from the rows. The manifest therefore never lists an item twice
or an unfinished one. If the rows are lost (another data folder) but the output folder is kept, items
whose file still matches its manifest line's SHA-256 are adopted instead of being made again.

One runner at a time (issue 29, finding 4): a runner proves it is alive with two things a dead process
cannot hold. On its own host it holds an ``fcntl.flock`` on ``<data dir>/locks/batch-<job>.lock`` for the
whole run; the kernel drops it when the process dies, zombie or not, whatever pid a later process gets.
Everywhere (several hosts on one PostgreSQL) it holds a lease: ``jobs.heartbeat_at``, renewed every
``heartbeat_s`` by a thread with a compare-and-set, and expired ``LEASE_S`` after the last renewal. A new
runner takes the job when the owner's lock is free (same host) or its lease has expired (any host); a
runner whose lease was taken over stops dispatching.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, cast

from sqlalchemy import func, select, update
from sqlalchemy.engine import CursorResult

from voxvault.errors import VoxError
from voxvault.jobs.executors import Executor
from voxvault.jobs.sinks import ManifestEntry, ManifestScan, Sink, format_of
from voxvault.jobs.spec import BatchItem, BatchSpec, output_key, unsafe_id_reason
from voxvault.jobs.worker import ItemFailure, PrepareResult, RenderResult, WorkerOptions
from voxvault.store.db import Database
from voxvault.store.models import Job, JobItem, utcnow
from voxvault.synthesis.generation import Generation

if TYPE_CHECKING:  # jobs take a VoxVault, never import it: service.py is the composition root
    from voxvault.service import VoxVault

log = logging.getLogger(__name__)

JOB_KIND = "batch"
FINAL_STATUSES = ("completed", "completed_with_errors", "failed")
RESUMABLE_STATUSES = ("queued", "running", "interrupted")
LEASE_S = 60.0  # a runner that has not renewed its lease for this long is taken to be dead
_EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()


@dataclass
class BatchCounts:
    """``done`` counts every item with a committed output, ``skipped`` the part of it this run found done."""

    total: int
    done: int = 0
    failed: int = 0
    skipped: int = 0

    @property
    def pending(self) -> int:
        return max(0, self.total - self.done - self.failed)

    def to_dict(self) -> dict[str, int]:
        return {
            "total": self.total,
            "done": self.done,
            "failed": self.failed,
            "skipped": self.skipped,
            "pending": self.pending,
        }


@dataclass
class BatchResult:
    job_id: str
    status: str
    counts: BatchCounts
    audio_seconds: float = 0.0
    startup_s: float = 0.0
    processing_s: float = 0.0
    failures: list[dict[str, str]] = field(default_factory=list)


@dataclass(frozen=True)
class ItemRow:
    """A snapshot of one ``job_items`` row."""

    item_id: str
    status: str
    output_key: str | None
    sha256: str | None
    duration: float | None
    watermark_id: int | None
    voice_id: str | None
    error: str | None

    def entry(self) -> ManifestEntry:
        key = self.output_key or ""
        return ManifestEntry(
            id=self.item_id,
            path=key,
            duration=float(self.duration or 0.0),
            sha256=self.sha256 or "",
            watermark_id=self.watermark_id,
            voice=self.voice_id or "",
            format=format_of(key),
        )


@dataclass
class Lease:
    """A runner's hold on a job: the OS lock it keeps open and the lease value it last wrote."""

    job_id: str
    token: str
    renewed_at: Any  # the heartbeat_at this runner wrote last (compare-and-set on renewal)
    lock: IO[bytes] | None = None

    def close(self) -> None:
        if self.lock is not None:
            with contextlib.suppress(OSError):
                self.lock.close()  # closing the descriptor releases the flock
            self.lock = None


def _lock_path(lock_dir: Path, job_id: str) -> Path:
    return lock_dir / f"batch-{job_id}.lock"


def _try_lock(path: Path) -> IO[bytes] | None:
    """The open, exclusively locked lock file; None while a live process (any pid, this host) holds it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = open(path, "ab")  # noqa: SIM115 - held for the whole run
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        return None
    return handle


class JobRecords:
    """The batch job's rows. Only the driver writes them."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def ensure(
        self,
        job_id: str,
        *,
        spec: dict[str, Any],
        total: int,
        project_id: str | None = None,
        key_id: str | None = None,
        status: str = "queued",
    ) -> None:
        """Create the job, or refresh its spec and size when it exists (a re-run with an edited file)."""
        with self.db.session() as s:
            job = s.get(Job, job_id)
            if job is None:
                s.add(
                    Job(
                        id=job_id,
                        kind=JOB_KIND,
                        status=status,
                        project_id=project_id,
                        key_id=key_id,
                        spec=spec,
                        total=total,
                        result={},
                    )
                )
            else:
                if job.kind != JOB_KIND:
                    raise VoxError("job_conflict", f"job {job_id} is not a batch job", 409)
                job.spec = spec
                job.total = total

    def claim(self, job_id: str, lock_dir: Path) -> Lease:
        """Become the job's only runner; ``batch_busy`` while a live runner holds it.

        The OS lock is taken first: if a process on this host holds it, that runner is alive. Holding it
        ourselves proves that an owner recorded with the same lock file on this host is dead; an owner
        elsewhere is dead once its lease has expired.
        """
        path = _lock_path(lock_dir, job_id)
        lock = _try_lock(path)
        if lock is None:
            raise VoxError(
                "batch_busy", f"batch job {job_id} is being run by a live process on this host", 409
            )
        try:
            with self.db.session() as s:
                job = s.get(Job, job_id)
                if job is None:
                    raise VoxError("not_found", "no such batch job", 404)
                observed = job.heartbeat_at
                owner = (job.result or {}).get("owner")
                if job.status == "running" and owner and not self._owner_gone(owner, observed, path):
                    raise VoxError(
                        "batch_busy",
                        f"batch job {job_id} is being run by pid {owner.get('pid')} on {owner.get('host')} "
                        f"(its lease expires {LEASE_S:.0f} s after its last renewal)",
                        409,
                    )
                result = dict(job.result or {})
            token = uuid.uuid4().hex
            result["owner"] = {
                "host": socket.gethostname(),
                "pid": os.getpid(),
                "token": token,
                "lock": str(path),
            }
            unchanged = Job.heartbeat_at.is_(None) if observed is None else Job.heartbeat_at == observed
            now = utcnow()
            with self.db.session() as s:
                outcome = s.execute(
                    update(Job)
                    .where(Job.id == job_id, unchanged)
                    .values(status="running", heartbeat_at=now, result=result, error=None)
                )
                claimed = cast(CursorResult[Any], outcome).rowcount
            if claimed != 1:
                raise VoxError("batch_busy", f"batch job {job_id} was just claimed by another runner", 409)
        except BaseException:
            lock.close()
            raise
        return Lease(job_id, token, now, lock)

    @staticmethod
    def _owner_gone(owner: dict[str, Any], heartbeat: Any, held_lock: Path) -> bool:
        """True when the recorded owner cannot be running (a pid proves nothing: zombies, reuse)."""
        if owner.get("host") == socket.gethostname() and owner.get("lock") == str(held_lock):
            return True  # we hold the lock it held until it died
        return heartbeat is None or (utcnow() - heartbeat).total_seconds() > LEASE_S

    def renew(self, lease: Lease) -> bool:
        """Extend the lease (compare-and-set on the value last written); False when another runner took it."""
        now = utcnow()
        with self.db.session() as s:
            outcome = s.execute(
                update(Job)
                .where(Job.id == lease.job_id, Job.heartbeat_at == lease.renewed_at)
                .values(heartbeat_at=now)
            )
            renewed = cast(CursorResult[Any], outcome).rowcount == 1
        if renewed:
            lease.renewed_at = now
        return renewed

    def heartbeat(self, job_id: str, counts: BatchCounts, extra: dict[str, Any] | None = None) -> None:
        """Progress for readers; the lease itself is renewed by ``renew``."""
        with self.db.session() as s:
            job = s.get(Job, job_id)
            if job is None:
                return
            job.done = counts.done
            job.progress = (counts.done + counts.failed) / counts.total if counts.total else 1.0
            job.result = {**(job.result or {}), "counts": counts.to_dict(), **(extra or {})}

    def release(
        self,
        job_id: str,
        status: str,
        counts: BatchCounts,
        error: str | None = None,
        extra: dict[str, Any] | None = None,
        token: str | None = None,
    ) -> None:
        with self.db.session() as s:
            job = s.get(Job, job_id)
            if job is None:
                return
            owner = (job.result or {}).get("owner") or {}
            if token is not None and owner.get("token") not in (None, token):
                log.warning("batch %s: another runner owns the job now; leaving its record alone", job_id)
                return
            job.status = status
            job.error = error
            job.done = counts.done
            job.progress = (counts.done + counts.failed) / counts.total if counts.total else 1.0
            result = {**(job.result or {}), "counts": counts.to_dict(), **(extra or {})}
            result.pop("owner", None)
            job.result = result

    def rows(self, job_id: str) -> dict[str, ItemRow]:
        with self.db.session() as s:
            found = s.scalars(select(JobItem).where(JobItem.job_id == job_id))
            return {
                r.item_id: ItemRow(
                    r.item_id,
                    r.status,
                    r.output_key,
                    r.sha256,
                    r.duration,
                    r.watermark_id,
                    r.voice_id,
                    r.error,
                )
                for r in found
            }

    def _set(self, job_id: str, item_id: str, **values: Any) -> None:
        with self.db.session() as s:
            row = s.get(JobItem, (job_id, item_id))
            if row is None:
                s.add(JobItem(job_id=job_id, item_id=item_id, **values))
            else:
                for name, value in values.items():
                    setattr(row, name, value)

    def running(self, job_id: str, item_id: str, watermark_id: int, voice_id: str) -> None:
        self._set(
            job_id,
            item_id,
            status="running",
            watermark_id=watermark_id,
            voice_id=voice_id,
            output_key=None,
            sha256=None,
            duration=None,
            error=None,
        )

    def done(self, job_id: str, entry: ManifestEntry) -> None:
        self._set(
            job_id,
            entry.id,
            status="done",
            output_key=entry.path,
            sha256=entry.sha256,
            duration=entry.duration,
            watermark_id=entry.watermark_id,
            voice_id=entry.voice,
            error=None,
        )

    def failed(self, job_id: str, item_id: str, failure: ItemFailure) -> None:
        self._set(job_id, item_id, status="failed", error=f"{failure.code}: {failure.message}")

    def reset(self, job_id: str, item_id: str) -> None:
        self._set(job_id, item_id, status="pending", output_key=None, sha256=None, duration=None)

    def status_counts(self, job_id: str) -> dict[str, int]:
        with self.db.session() as s:
            found = s.execute(
                select(JobItem.status, func.count()).where(JobItem.job_id == job_id).group_by(JobItem.status)
            )
            return {status: int(n) for status, n in found}

    def errors(self, job_id: str, *, limit: int = 100, offset: int = 0) -> list[dict[str, str]]:
        with self.db.session() as s:
            found = s.execute(
                select(JobItem.item_id, JobItem.error)
                .where(JobItem.job_id == job_id, JobItem.status == "failed")
                .order_by(JobItem.item_id)
                .limit(limit)
                .offset(offset)
            )
            return [_error_dict(item_id, error) for item_id, error in found]


def _error_dict(item_id: str, error: str | None) -> dict[str, str]:
    code, _, message = (error or "internal_error: ").partition(": ")
    return {"id": item_id, "code": code, "message": message}


def batch_job_id(sink_url: str) -> str:
    """The job id a CLI run uses for an output: the same output always resumes the same job."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"voxvault-batch:{sink_url}"))


class BatchRunner:
    """Runs (or resumes) one batch job to the end, then returns its counts.

    ``progress`` is called with the counts after each item; setting ``cancel`` stops dispatching, lets
    in-flight items finish, and leaves the job ``interrupted`` (resumable).
    """

    def __init__(
        self,
        vv: VoxVault,
        job_id: str,
        spec: BatchSpec,
        sink: Sink,
        executor: Executor,
        options: WorkerOptions,
        *,
        key_id: str | None = None,
        progress: Callable[[BatchCounts], None] | None = None,
        cancel: threading.Event | None = None,
        heartbeat_s: float = 2.0,
    ) -> None:
        self.vv = vv
        self.job_id = job_id
        self.spec = spec
        self.sink = sink
        self.executor = executor
        self.options = options
        self.key_id = key_id
        self.progress = progress
        self.cancel = cancel or threading.Event()
        self.heartbeat_s = heartbeat_s
        self.records = JobRecords(vv.db)
        self.counts = BatchCounts(total=len(spec.items))
        self._listed: dict[str, ManifestEntry] = {}
        self._failures: list[dict[str, str]] = []
        self._audio_s = 0.0
        self._last_beat = 0.0
        self.lost_lease = False

    # -- the run ---------------------------------------------------------------------------------------------
    def run(self) -> BatchResult:
        lease = self.records.claim(self.job_id, self.vv.settings.data_dir.resolve() / "locks")
        stop_renewing = threading.Event()
        renewer = threading.Thread(
            target=self._renew_lease, args=(lease, stop_renewing), name=f"lease-{self.job_id}", daemon=True
        )
        renewer.start()
        try:
            return self._run(lease)
        finally:
            stop_renewing.set()
            renewer.join()
            lease.close()

    def _renew_lease(self, lease: Lease, stop: threading.Event) -> None:
        """Renew the lease until the run ends; a lease taken over stops dispatching (the job is not ours)."""
        while not stop.wait(self.heartbeat_s):
            try:
                if not self.records.renew(lease):
                    log.warning("batch %s: lease taken over by another runner; stopping", self.job_id)
                    self.lost_lease = True
                    return
            except Exception:  # noqa: BLE001 - a database hiccup: try again at the next beat
                log.warning("batch %s: lease renewal failed; retrying", self.job_id, exc_info=True)

    def _stopping(self) -> bool:
        return self.cancel.is_set() or self.lost_lease

    def _run(self, lease: Lease) -> BatchResult:
        status, error = "failed", None
        t_start = time.perf_counter()
        startup_s = processing_s = 0.0
        try:
            scan = self.sink.open()
            try:
                todo = self._reconcile(scan)
                self._report()
                t0 = time.perf_counter()
                if todo and not self._stopping():
                    self.executor.start(self.vv, self.sink, self.options)
                    startup_s = time.perf_counter() - t0
                    try:
                        self._dispatch(iter(todo))
                    finally:
                        self.executor.close()
                processing_s = time.perf_counter() - t0 - startup_s
            finally:
                self.sink.close()
            if self._stopping() and self.counts.pending:
                status = "interrupted"
            else:
                status = "completed_with_errors" if self.counts.failed else "completed"
        except VoxError as exc:
            error = f"{exc.code}: {exc.message}"
            raise
        except BaseException as exc:
            status = "interrupted" if isinstance(exc, KeyboardInterrupt) else "failed"
            error = type(exc).__name__
            raise
        finally:
            self.records.release(
                self.job_id,
                status,
                self.counts,
                error,
                extra={"audio_seconds": round(self._audio_s, 3)},
                token=lease.token,
            )
            log.info(
                "batch %s %s: %s in %.1fs",
                self.job_id,
                status,
                self.counts.to_dict(),
                time.perf_counter() - t_start,
            )
        return BatchResult(
            self.job_id, status, self.counts, self._audio_s, startup_s, processing_s, self._failures
        )

    # -- resume ----------------------------------------------------------------------------------------------
    def _reconcile(self, scan: ManifestScan) -> list[BatchItem]:
        """Work out what is finished, fix the manifest to match, and return the items left to make."""
        rows = self.records.rows(self.job_id)
        existing = self.sink.existing_outputs()
        finished: dict[str, ManifestEntry] = {}
        for row in rows.values():
            if row.status != "done":
                continue
            if row.output_key and row.output_key in existing:
                finished[row.item_id] = row.entry()
            else:
                self.records.reset(self.job_id, row.item_id)  # its output was removed: make it again
        listed: dict[str, ManifestEntry] = {}
        for entry in scan.entries:
            listed.setdefault(entry.id, entry)
        todo: list[BatchItem] = []
        for item in self.spec.items:
            reason = unsafe_id_reason(item.id)
            if reason is not None:
                self._fail(item.id, ItemFailure("unsafe_item_id", reason))
                continue
            key = self._output_key(item)
            done = finished.get(item.id)
            if done is not None and done.path == key:
                self.counts.done += 1
                self.counts.skipped += 1
                continue
            adopted = self._adopt(item, listed.get(item.id), key, existing) if done is None else None
            if adopted is not None:
                finished[item.id] = adopted
                self.counts.done += 1
                self.counts.skipped += 1
                continue
            todo.append(item)
        # The manifest must list exactly the finished items, each once.
        order = list(dict.fromkeys([e.id for e in scan.entries if e.id in finished] + list(finished)))
        self._listed = {item_id: finished[item_id] for item_id in order}
        consistent = (
            not scan.damaged
            and len(scan.entries) == len(listed)
            and all(finished.get(e.id) == e for e in scan.entries)
        )
        if consistent:
            self.sink.append_manifest(e for e in self._listed.values() if e.id not in listed)
        else:
            log.info("batch %s: rewriting a manifest that did not match the job's records", self.job_id)
            self.sink.rewrite_manifest(self._listed.values())
        log.info(
            "batch %s: %d items, %d already done, %d to make",
            self.job_id,
            self.counts.total,
            self.counts.skipped,
            len(todo),
        )
        return todo

    def _output_key(self, item: BatchItem) -> str:
        """Where ``item``'s committed output lives (a transcription batch names its transcript instead)."""
        return output_key(item.id, item.format or self.options.default_format)

    def _adopt(
        self, item: BatchItem, listed: ManifestEntry | None, key: str, existing: set[str]
    ) -> ManifestEntry | None:
        """An item with no done row whose manifest line still matches its file: record it, do not redo it."""
        if listed is None or listed.path != key or key not in existing:
            return None
        if hashlib.sha256(self.sink.read_output(key)).hexdigest() != listed.sha256:
            return None
        self.records.done(self.job_id, listed)
        return listed

    # -- dispatch --------------------------------------------------------------------------------------------
    def _dispatch(self, todo: Iterator[BatchItem]) -> None:
        window = max(2, 2 * self.executor.workers)
        inflight: dict[Future[Any], tuple[str, BatchItem]] = {}
        opened: dict[str, Generation] = {}

        def fill() -> None:
            while len(inflight) < window and not self._stopping():
                item = next(todo, None)
                if item is None:
                    return
                inflight[self.executor.prepare(item)] = ("prepare", item)

        fill()
        while inflight:
            finished, _ = wait(list(inflight), timeout=self.heartbeat_s, return_when=FIRST_COMPLETED)
            for future in finished:
                stage, item = inflight.pop(future)
                if stage == "prepare":
                    prepared = self._result(future, PrepareResult(item.id))
                    if prepared.failure is not None or prepared.record is None:
                        self._fail(item.id, prepared.failure or ItemFailure("internal_error", "no result"))
                        continue
                    generation = self.vv.generation.open(prepared.record, self.key_id)
                    self.records.running(
                        self.job_id, item.id, generation.watermark_id, prepared.record.voice.voice_id
                    )
                    opened[item.id] = generation
                    inflight[self.executor.render(item.id, generation.watermark_id)] = ("render", item)
                else:
                    generation = opened.pop(item.id)
                    self._finish(item, generation, self._result(future, RenderResult(item.id)))
            self._report()
            fill()

    def _result(self, future: Future[Any], empty: Any) -> Any:
        try:
            return future.result()
        except Exception as exc:  # noqa: BLE001 - a lost worker fails its items, not the job
            log.warning("batch %s: item %s lost: %s", self.job_id, empty.item_id, type(exc).__name__)
            return type(empty)(empty.item_id, failure=ItemFailure("worker_failed", type(exc).__name__))

    def _finish(self, item: BatchItem, generation: Generation, rendered: RenderResult) -> None:
        if rendered.failure is not None:
            generation.finish(
                output_sha256=_EMPTY_SHA256,
                duration_s=0.0,
                latency_ms=rendered.latency_ms,
                completed=False,
            )
            self._fail(item.id, rendered.failure)
            return
        generation.finish(
            output_sha256=rendered.sha256, duration_s=rendered.duration, latency_ms=rendered.latency_ms
        )
        record = generation.prepared
        entry = ManifestEntry(
            id=item.id,
            path=rendered.key,
            duration=round(rendered.duration, 3),
            sha256=rendered.sha256,
            watermark_id=generation.watermark_id,
            voice=record.voice.voice_id,
            format=record.format,
        )
        self.records.done(self.job_id, entry)
        if entry.id in self._listed:  # made again in another format: replace its line, never add a second
            self._listed[entry.id] = entry
            self.sink.rewrite_manifest(self._listed.values())
        else:
            self._listed[entry.id] = entry
            self.sink.append_manifest([entry])
        self.counts.done += 1
        self._audio_s += rendered.duration

    def _fail(self, item_id: str, failure: ItemFailure) -> None:
        self.records.failed(self.job_id, item_id, failure)
        self.counts.failed += 1
        if len(self._failures) < 1000:
            self._failures.append({"id": item_id, "code": failure.code, "message": failure.message})
        log.info("batch %s: item %s failed: %s", self.job_id, item_id, failure.code)

    def _report(self) -> None:
        if self.progress is not None:
            self.progress(self.counts)
        now = time.monotonic()
        if now - self._last_beat >= self.heartbeat_s:
            self._last_beat = now
            self.records.heartbeat(self.job_id, self.counts)
            self.sink.flush()


def run_batch(
    vv: VoxVault,
    spec: BatchSpec,
    out: str | Sink,
    *,
    executor: Executor | None = None,
    options: WorkerOptions | None = None,
    progress: Callable[[BatchCounts], None] | None = None,
    cancel: threading.Event | None = None,
    info: dict[str, Any] | None = None,
) -> BatchResult:
    """Run (or resume) the job that writes ``spec`` to ``out`` (a folder, ``file://`` or ``s3://`` URL).

    The job id comes from the output, so calling this again with the same output resumes the job.
    Defaults: the in-process pool with one worker, the configured default voice, WAV.
    """
    from voxvault.jobs.executors import LocalExecutor
    from voxvault.jobs.sinks import open_sink_for

    sink = out if isinstance(out, Sink) else open_sink_for(vv, out)
    options = options or WorkerOptions(default_voice=vv.settings.default_voice)
    executor = executor or LocalExecutor(1)
    job_id = batch_job_id(sink.url)
    JobRecords(vv.db).ensure(
        job_id,
        spec={
            "sink": sink.url,
            "items_sha256": spec.sha256,
            "executor": executor.name,
            "options": {"voice": options.default_voice, "format": options.default_format},
            **(info or {}),
        },
        total=len(spec.items),
    )
    runner = BatchRunner(vv, job_id, spec, sink, executor, options, progress=progress, cancel=cancel)
    return runner.run()
