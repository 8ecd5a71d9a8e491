"""Batch transcription (issue 23): audio files in; per item a JSON transcript, SRT subtitles and RTTM turns.

It runs through the speech batches' driver (jobs/batch.py): the same job rows, one runner per job (lock and
lease), the same resume after kill -9 and the same manifest, which lists each finished item exactly once.
Only the per-item work differs: one call on a worker (decode once, Whisper, the diarizer on the same
samples), no generation record or watermark. Outputs lie under ``transcripts/<id>.{srt,rttm,json}``; SRT
and RTTM are written first and the JSON last, each atomically, so the JSON is the item's commit point (the
manifest's ``path``): a committed JSON always has its two siblings, and a run killed between the writes
writes all three again.

Inputs are local files (``voxvault batch transcribe``; ids are the file names' stems) or audio uploaded
to ``POST /v1/transcription-batches``, kept in the blob store sealed like every payload, as are the
outputs of such a job (jobs/sinks.py). Each finished item adds one ``transcription.created`` audit entry:
ids, sizes, durations and counts, never text or audio.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, cast

import numpy as np

from voxvault.errors import VoxError
from voxvault.jobs.batch import BatchResult, BatchRunner, JobRecords, batch_job_id
from voxvault.jobs.executors import Executor, RayExecutor
from voxvault.jobs.sinks import TRANSCRIPT_PREFIX, ManifestEntry, Sink
from voxvault.jobs.spec import MAX_ID_LENGTH, BatchItem, BatchSpec
from voxvault.jobs.worker import ItemFailure, WorkerOptions

if TYPE_CHECKING:  # jobs take a VoxVault, never import it: service.py is the composition root
    from voxvault.service import VoxVault

log = logging.getLogger(__name__)

TASK = "transcribe"  # jobs.spec["task"] of a transcription batch (speech batches have none)
#: What a folder given to ``voxvault batch transcribe`` is searched for (other files are left alone).
AUDIO_SUFFIXES = (".wav", ".flac", ".mp3", ".ogg", ".opus", ".oga", ".webm", ".m4a", ".mp4", ".aac")
OUTPUT_SUFFIXES = ("json", "srt", "rttm")
MAX_SPEAKERS = 32


@dataclass(frozen=True)
class TranscribeItem(BatchItem):
    """One file to transcribe (``text`` stays empty: there is none to speak).

    ``audio`` is a local path, or with ``sealed`` the blob-store key of an uploaded file.
    """

    audio: str = ""
    sealed: bool = False


@dataclass(frozen=True)
class TranscribeJobOptions:
    """Job-wide settings (picklable, JSON-able: kept in the job row so a restarted server resumes alike)."""

    model: str | None = None  # None: the configured asr_model
    language: str | None = None  # None: detected per file
    diarize: bool = True
    num_speakers: int | None = None  # None: estimated per file

    def check(self) -> TranscribeJobOptions:
        from voxvault.engines.whisper import MODEL_NAMES

        if self.model is not None and self.model not in MODEL_NAMES:
            raise VoxError("unsupported_model", f"model must be one of {', '.join(MODEL_NAMES)}", 400)
        if self.num_speakers is not None and not 1 <= self.num_speakers <= MAX_SPEAKERS:
            raise VoxError(
                "invalid_num_speakers", f"num_speakers must be an integer from 1 to {MAX_SPEAKERS}", 400
            )
        if self.language is not None and not (0 < len(self.language) <= 8 and self.language.isalpha()):
            raise VoxError("unsupported_language", "language must be an ISO 639-1 code such as en", 400)
        return self


def transcript_key(item_id: str, suffix: str = "json") -> str:
    """Where one of an item's outputs lives, relative to the output root."""
    return f"{TRANSCRIPT_PREFIX}{item_id}.{suffix}"


def spec_of(items: list[TranscribeItem]) -> BatchSpec:
    """A spec over ``items``; its hash covers ids and sources (the job row says what it was run on)."""
    digest = hashlib.sha256()
    for item in items:
        digest.update(f"{item.id}\0{item.audio}\n".encode())
    return BatchSpec(items=list(items), kind="jsonl", sha256=digest.hexdigest())


def items_from_paths(paths: Iterable[Path]) -> BatchSpec:
    """Files (and folders: their audio files, sorted, not recursive) as items named by their stems.

    Refused up front, naming every problem: a missing path, an empty selection, two files with one id.
    """
    files: list[Path] = []
    problems: list[str] = []
    for path in paths:
        if path.is_dir():
            files += sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in AUDIO_SUFFIXES)
        elif path.is_file():
            files.append(path)
        else:
            problems.append(f"{path}: no such file or folder")
    seen: dict[str, Path] = {}
    items: list[TranscribeItem] = []
    for number, file in enumerate(files, start=1):
        item_id = file.stem
        if len(item_id) > MAX_ID_LENGTH:
            problems.append(f"{file}: the name is over {MAX_ID_LENGTH} characters (it names the outputs)")
            continue
        first = seen.get(item_id.casefold())
        if first is not None:
            problems.append(f"{file}: same name as {first} (names are compared ignoring case)")
            continue
        seen[item_id.casefold()] = file
        items.append(TranscribeItem(id=item_id, text="", audio=str(file.resolve()), line=number))
    if not items and not problems:
        problems.append("no audio files given")
    if problems:
        raise VoxError(
            "invalid_batch_inputs",
            f"{len(problems)} problem(s) with the inputs; first: {problems[0]}",
            problems=problems[:100],
        )
    return spec_of(items)


# -------------------------------------------------------------------------------------------- worker
@dataclass(frozen=True)
class TranscribeResult:
    """What the driver needs to record an item: the committed JSON and metadata (never text)."""

    item_id: str
    key: str = ""
    sha256: str = ""
    duration: float = 0.0
    language: str = ""
    segments: int = 0
    words: int = 0
    speakers: int = 0
    input_bytes: int = 0
    latency_ms: float = 0.0
    failure: ItemFailure | None = None


def _teed(blocks: Iterator[np.ndarray], kept: list[np.ndarray] | None) -> Iterator[np.ndarray]:
    """The blocks, each also kept for the diarizer (decoded once for both; float32 at 16 kHz: 230 MB/h)."""
    for block in blocks:
        if kept is not None:
            kept.append(np.asarray(block, dtype=np.float32))
        yield block


class TranscribeWorker:
    """Loaded engines and the sink; ``transcribe`` does one item from source to committed outputs."""

    def __init__(self, vv: VoxVault, sink: Sink, options: TranscribeJobOptions) -> None:
        self.vv = vv
        self.sink = sink
        self.options = options

    def warm_up(self) -> None:
        """Load the models now, so the first item's timing is not the load."""
        self.vv.engines.transcriber(self.options.model)
        if self.options.diarize:
            self.vv.engines.diarizer()

    def _source(self, item: TranscribeItem) -> tuple[bytes | Path, int, int]:
        """The input (bytes or a path), its size, and the byte limit it is decoded under."""
        if item.sealed:
            data = self.vv.envelope.open(self.vv.blobs.get(item.audio), aad=item.audio)
            return data, len(data), self.vv.settings.max_upload_bytes
        path = Path(item.audio)
        try:
            size = path.stat().st_size
        except OSError as exc:
            raise VoxError("input_unreadable", f"cannot read the file: {exc.strerror or exc}") from None
        return path, size, 1 << 40  # a file of the user's own: only its duration is bounded

    def transcribe(self, item: BatchItem) -> TranscribeResult:
        assert isinstance(item, TranscribeItem)
        t0 = time.perf_counter()
        try:
            return self._transcribe(item, t0)
        except VoxError as exc:
            return TranscribeResult(item.id, failure=ItemFailure(exc.code, exc.message))
        except Exception as exc:  # noqa: BLE001 - one item's crash is that item's error, not the job's
            log.exception("transcription batch item %s failed", item.id)
            return TranscribeResult(item.id, failure=ItemFailure("internal_error", type(exc).__name__))

    def _transcribe(self, item: TranscribeItem, t0: float) -> TranscribeResult:
        from voxvault.engines.diarize import SAMPLE_RATE as DIARIZE_RATE
        from voxvault.engines.whisper import SAMPLE_RATE, TranscribeOptions, upload_blocks
        from voxvault.transcripts import collect, full_json, to_rttm, to_srt

        source, size, max_bytes = self._source(item)
        settings = self.vv.settings
        blocks = upload_blocks(
            source, max_bytes=max_bytes, max_seconds=settings.asr_max_seconds, timeout_s=3600.0
        )
        kept: list[np.ndarray] | None = [] if self.options.diarize else None
        engine = self.vv.engines.transcriber(self.options.model)
        options = TranscribeOptions(language=self.options.language)
        transcript = collect(engine.recognize_blocks(_teed(blocks, kept), options))
        turns = []
        if kept is not None:
            assert SAMPLE_RATE == DIARIZE_RATE
            audio = np.concatenate(kept) if kept else np.zeros(0, np.float32)
            kept.clear()
            turns = self.vv.engines.diarizer().diarize(audio, SAMPLE_RATE, self.options.num_speakers)
            del audio
        body = full_json(transcript, turns if self.options.diarize else None)
        body["id"] = item.id
        data = (json.dumps(body, ensure_ascii=False, indent=1) + "\n").encode("utf-8")
        # SRT and RTTM first, the JSON last: the JSON is the commit point (module docstring).
        self.sink.write_output(
            transcript_key(item.id, "srt"), to_srt(transcript.segments, turns).encode("utf-8")
        )
        self.sink.write_output(transcript_key(item.id, "rttm"), to_rttm(turns, item.id).encode("utf-8"))
        key = transcript_key(item.id, "json")
        self.sink.write_output(key, data)
        return TranscribeResult(
            item.id,
            key=key,
            sha256=hashlib.sha256(data).hexdigest(),
            duration=transcript.duration,
            language=transcript.info.language,
            segments=len(transcript.segments),
            words=len(transcript.words),
            speakers=len({t.speaker for t in turns}),
            input_bytes=size,
            latency_ms=(time.perf_counter() - t0) * 1000,
        )


class TranscribeExecutor(Protocol):
    name: str
    workers: int
    options: TranscribeJobOptions

    def start(self, vv: VoxVault, sink: Sink, options: WorkerOptions) -> None: ...

    def transcribe(self, item: BatchItem) -> Future[TranscribeResult]: ...

    def close(self) -> None: ...


class LocalTranscribeExecutor:
    """A thread pool in this process sharing one worker (CTranslate2 and ONNX Runtime release the GIL)."""

    name = "local"

    def __init__(self, options: TranscribeJobOptions, workers: int = 1) -> None:
        if workers < 1:
            raise VoxError("invalid_workers", "workers must be at least 1")
        self.options = options
        self.workers = workers
        self._pool: ThreadPoolExecutor | None = None
        self._worker: TranscribeWorker | None = None

    def start(self, vv: VoxVault, sink: Sink, options: WorkerOptions) -> None:
        self._worker = TranscribeWorker(vv, sink, self.options)
        self._worker.warm_up()
        self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="voxvault-transcribe")

    def transcribe(self, item: BatchItem) -> Future[TranscribeResult]:
        assert self._pool is not None and self._worker is not None, "start() the executor first"
        return self._pool.submit(self._worker.transcribe, item)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None


class RayTranscribeActor:
    """One Ray actor: its own ``VoxVault`` (Whisper and the diarizer loaded once) and handle on the output."""

    def __init__(
        self, service: type[VoxVault], settings: dict[str, Any], sink_url: str, options: TranscribeJobOptions
    ) -> None:
        from voxvault.config import Settings
        from voxvault.jobs.sinks import open_sink_for

        logging.basicConfig(level=logging.WARNING)
        vv = service(Settings(**settings))
        self.worker = TranscribeWorker(vv, open_sink_for(vv, sink_url), options)
        self.worker.warm_up()

    def ready(self) -> int:
        import os

        return os.getpid()

    def transcribe(self, item: BatchItem) -> TranscribeResult:
        return self.worker.transcribe(item)


class RayTranscribeExecutor(RayExecutor):
    """Ray actors that transcribe (the speech executor's cluster handling, another actor). Every actor
    must reach the inputs (the same paths, or the blob store of a submitted job) and the output."""

    def __init__(self, options: TranscribeJobOptions, workers: int = 2, address: str | None = None) -> None:
        super().__init__(workers, address)
        self.options = options

    def actor_class(self) -> type:
        return RayTranscribeActor

    def actor_options(self, options: WorkerOptions) -> Any:
        return self.options

    def transcribe(self, item: BatchItem) -> Future[TranscribeResult]:
        with self._lock:
            index = self._pick()
        return self._track(index, self._actors[index].transcribe.remote(item))


# -------------------------------------------------------------------------------------------- driver
class TranscribeRunner(BatchRunner):
    """The batch driver with one step per item: transcribe (on the executor), then record it (here)."""

    def __init__(
        self,
        vv: VoxVault,
        job_id: str,
        spec: BatchSpec,
        sink: Sink,
        executor: TranscribeExecutor,
        *,
        key_id: str | None = None,
        progress: Callable[[Any], None] | None = None,
        cancel: threading.Event | None = None,
        heartbeat_s: float = 2.0,
    ) -> None:
        # The driver only starts, sizes and closes its executor; items go to transcribe() below.
        super().__init__(
            vv,
            job_id,
            spec,
            sink,
            cast(Executor, executor),
            WorkerOptions(default_voice=""),
            key_id=key_id,
            progress=progress,
            cancel=cancel,
            heartbeat_s=heartbeat_s,
        )
        self.transcriber = executor

    def _output_key(self, item: BatchItem) -> str:
        return transcript_key(item.id)

    def _dispatch(self, todo: Iterator[BatchItem]) -> None:
        window = max(2, 2 * self.transcriber.workers)
        inflight: dict[Future[TranscribeResult], BatchItem] = {}

        def fill() -> None:
            while len(inflight) < window and not self._stopping():
                item = next(todo, None)
                if item is None:
                    return
                inflight[self.transcriber.transcribe(item)] = item

        fill()
        while inflight:
            finished, _ = wait(list(inflight), timeout=self.heartbeat_s, return_when=FIRST_COMPLETED)
            for future in finished:
                item = inflight.pop(future)
                try:
                    result = future.result()
                except Exception as exc:  # noqa: BLE001 - a lost worker fails its item, not the job
                    lost = ItemFailure("worker_failed", type(exc).__name__)
                    result = TranscribeResult(item.id, failure=lost)
                self._record(item, result)
            self._report()
            fill()

    def _record(self, item: BatchItem, result: TranscribeResult) -> None:
        details: dict[str, Any] = {
            "route": "batch",
            "job": self.job_id,
            "item": item.id,
            "model": self.transcriber.options.model or self.vv.settings.asr_model,
            "upload_bytes": result.input_bytes,
            "language": result.language,
            "audio_s": round(result.duration, 3),
            "segments": result.segments,
            "words": result.words,
            "speakers": result.speakers,
            "latency_ms": round(result.latency_ms),
            "completed": result.failure is None,
        }
        if result.failure is not None:
            details["error"] = result.failure.code
        self.vv.audit.record(
            "transcription.created", actor=self.key_id, target=f"{self.job_id}/{item.id}", details=details
        )
        if result.failure is not None:
            self._fail(item.id, result.failure)
            return
        entry = ManifestEntry(
            id=item.id,
            path=result.key,
            duration=round(result.duration, 3),
            sha256=result.sha256,
            watermark_id=None,
            voice="",
            format="json",
        )
        self.records.done(self.job_id, entry)
        if entry.id in self._listed:  # made again: replace its line, never add a second
            self._listed[entry.id] = entry
            self.sink.rewrite_manifest(self._listed.values())
        else:
            self._listed[entry.id] = entry
            self.sink.append_manifest([entry])
        self.counts.done += 1
        self._audio_s += result.duration


def make_transcribe_executor(
    kind: str, options: TranscribeJobOptions, workers: int, address: str | None = None
) -> TranscribeExecutor:
    if kind == "local":
        if address:
            raise VoxError("invalid_executor", "--address only applies to the Ray executor")
        return LocalTranscribeExecutor(options, workers)
    if kind == "ray":
        return RayTranscribeExecutor(options, workers, address)
    raise VoxError("invalid_executor", f"executor {kind!r} is not one of local, ray")


def transcribe_batch(
    vv: VoxVault,
    spec: BatchSpec,
    out: str | Sink,
    *,
    options: TranscribeJobOptions | None = None,
    workers: int = 1,
    executor: str = "local",
    address: str | None = None,
    progress: Callable[[Any], None] | None = None,
    cancel: threading.Event | None = None,
    info: dict[str, Any] | None = None,
) -> BatchResult:
    """Run (or resume) the job that transcribes ``spec``'s files into ``out`` (folder or ``s3://``).

    Keyed by the output like ``run_batch``: calling it again with the same output resumes the job.
    """
    from voxvault.jobs.sinks import open_sink_for

    options = (options or TranscribeJobOptions()).check()
    sink = out if isinstance(out, Sink) else open_sink_for(vv, out)
    job_id = batch_job_id(sink.url)
    JobRecords(vv.db).ensure(
        job_id,
        spec={
            "task": TASK,
            "sink": sink.url,
            "items_sha256": spec.sha256,
            "executor": executor,
            "transcribe": asdict(options),
            **(info or {}),
        },
        total=len(spec.items),
    )
    runner = TranscribeRunner(
        vv,
        job_id,
        spec,
        sink,
        make_transcribe_executor(executor, options, workers, address),
        progress=progress,
        cancel=cancel,
    )
    return runner.run()


# -------------------------------------------------------------------------------------- jobs over HTTP
#: Most files one ``POST /v1/transcription-batches`` may carry (their total size is max_upload_bytes).
MAX_UPLOAD_FILES = 100


def stored_items(data: bytes) -> BatchSpec:
    """The items a submitted job stored (``{"id", "audio": <blob key>}`` lines), as sealed inputs."""
    rows = [json.loads(line) for line in data.decode("utf-8").splitlines() if line.strip()]
    return spec_of(
        [
            TranscribeItem(id=str(r["id"]), text="", audio=str(r["audio"]), sealed=True, line=n)
            for n, r in enumerate(rows, start=1)
        ]
    )


def submit_job(
    service: Any,
    files: list[tuple[str, bytes]],
    *,
    principal: Any,
    options: TranscribeJobOptions,
) -> Any:
    """Store the uploaded files sealed, create the job and queue it on ``service`` (a BatchService).

    ``files`` are (file name, bytes); ids are the names' stems. Refused before anything is stored: no
    file, an empty file, a name that cannot be an id, two files with one id.
    """
    from voxvault.jobs.spec import unsafe_id_reason
    from voxvault.store.models import new_id

    vv = service.vv
    options = options.check()
    if not files:
        raise VoxError("missing_file", "send the audio as one or more multipart fields 'file'", 422)
    problems: list[dict[str, str]] = []
    seen: set[str] = set()
    named: list[tuple[str, str, bytes]] = []
    for filename, data in files:
        path = Path(filename or "")
        item_id = path.stem
        reason = unsafe_id_reason(item_id) if item_id else "the file has no name"
        if reason is None and len(item_id) > MAX_ID_LENGTH:
            reason = f"the name is over {MAX_ID_LENGTH} characters"
        if reason is None and item_id.casefold() in seen:
            reason = "another file has the same name (names are compared ignoring case)"
        if reason is None and not data:
            reason = "the file is empty"
        if reason is not None:
            problems.append({"file": filename[:100], "message": reason})
            continue
        seen.add(item_id.casefold())
        suffix = path.suffix.lower() if path.suffix[1:].isalnum() and len(path.suffix) <= 8 else ""
        named.append((item_id, suffix, data))
    if problems:
        raise VoxError(
            "invalid_batch_inputs",
            f"{len(problems)} problem(s) with the files; first: {problems[0]['file']!r}: "
            f"{problems[0]['message']}",
            errors=problems,
        )
    job_id = new_id()
    lines = []
    for item_id, suffix, data in named:
        key = f"batches/{job_id}/inputs/{item_id}{suffix}"
        vv.blobs.put(key, vv.envelope.seal(data, aad=key))  # speech at rest is sealed (issue 7)
        lines.append(json.dumps({"id": item_id, "audio": key}) + "\n")
    input_key = f"batches/{job_id}/items.jsonl"
    listing = "".join(lines).encode("utf-8")
    vv.blobs.put(input_key, vv.envelope.seal(listing, aad=input_key))
    spec = stored_items(listing)
    service.records.ensure(
        job_id,
        spec={
            "task": TASK,
            "input_key": input_key,
            "sink": f"{vv.settings.resolved_blob_url.rstrip('/')}/batches/{job_id}",
            "items_sha256": spec.sha256,
            "transcribe": asdict(options),
        },
        total=len(spec.items),
        project_id=principal.project_id,
        key_id=principal.key_id,
    )
    vv.audit.record(
        "batch.created",
        actor=principal.key_id,
        target=job_id,
        details={
            "task": TASK,
            "items": len(spec.items),
            "upload_bytes": sum(len(d) for _, _, d in named),
            "model": options.model or vv.settings.asr_model,
            "diarize": options.diarize,
        },
    )
    service.enqueue(job_id)
    return service.status(job_id, principal.project_id, TASK)


def run_stored_job(
    vv: VoxVault, job_id: str, spec: dict[str, Any], key_id: str | None, cancel: threading.Event
) -> BatchResult:
    """Run or resume a submitted job (the batch service's thread; again after a restart)."""
    from voxvault.jobs.sinks import open_sink_for

    key = spec["input_key"]
    items = stored_items(vv.envelope.open(vv.blobs.get(key), aad=key))
    options = TranscribeJobOptions(**spec.get("transcribe", {}))
    executor = LocalTranscribeExecutor(options, vv.settings.batch_workers)
    sink = open_sink_for(vv, spec["sink"])
    runner = TranscribeRunner(vv, job_id, items, sink, executor, key_id=key_id, cancel=cancel)
    return runner.run()


def read_transcript(service: Any, job_id: str, project_id: str, item_id: str, suffix: str) -> bytes:
    """One of a finished item's outputs (opened: outputs of a submitted job are sealed at rest)."""
    from voxvault.store.blobs import BlobNotFound
    from voxvault.store.models import JobItem

    if suffix not in OUTPUT_SUFFIXES:
        raise VoxError("unsupported_format", f"format must be one of {', '.join(OUTPUT_SUFFIXES)}", 400)
    job = service.job(job_id, project_id, TASK)
    with service.vv.db.session() as s:
        row = s.get(JobItem, (job_id, item_id))
        done = row is not None and row.status == "done" and row.output_key == transcript_key(item_id)
    if not done:
        raise VoxError("not_found", "no finished item with this id in the batch", 404)
    try:
        data: bytes = service.sink(job).read_output(transcript_key(item_id, suffix))
    except BlobNotFound:
        raise VoxError("not_found", "the item's transcript is gone", 404) from None
    return data
