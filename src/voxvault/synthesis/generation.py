"""The one place where audio becomes an output: recorded, watermarked, and finished exactly once.

Every output (the Python API and the CLI, the OpenAI and ElevenLabs routes whole, streamed and over the
WebSocket, batch items in-process or on Ray) goes through ``GenerationService``. It alone opens the
generation record (whose ``watermark_id`` the mark carries), hands the renderer the watermark hook, and
finishes the record with its ``speech.created`` or ``speech.cancelled`` audit entry. A caller that only
has this service cannot make audio without a record, nor a record without a mark
(tests/synthesis/test_generation_paths.py checks that no other module reaches the log or the hook).

Three shapes, as callers need them:

* ``render(prepared, key_id)``: the whole file (``RenderedSpeech``), begun and finished here.
* ``stream(prepared, key_id)``: a ``GenerationStream`` of encoded bytes; it finishes the record when it
  runs out (completed), or when closed early or when rendering fails (cancelled), once.
* ``session(speech_session, key_id)``: a WebSocket text stream; the record opens with its first
  speakable segment and finishes once when the socket's stream ends.

A batch opens the record in the driver (``open``) and renders where the model is (``render_marked``,
which touches no database, so a Ray actor can run it), then finishes the ``Generation`` in the driver.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable, Iterator
from functools import cached_property
from types import TracebackType
from typing import TYPE_CHECKING

from voxvault.governance.audit import AuditTrail
from voxvault.store.db import Database
from voxvault.synthesis.hangup import on_client_gone
from voxvault.synthesis.pipeline import ChunkHook, PreparedSpeech, RenderedSpeech, SpeechPipeline
from voxvault.synthesis.records import GenerationLog, GenerationTicket
from voxvault.synthesis.streaming import SpeechSession

if TYPE_CHECKING:
    from voxvault.engines.watermark import Watermarker

# Renders a prepared request's encoded audio: (watermark hook, cancel event, stats to fill) -> bytes.
# ``stats`` receives audio_s (and first_audio_s, total_s) as SpeechPipeline.stream fills it.
Render = Callable[[ChunkHook, threading.Event, dict[str, float]], Iterator[bytes]]


class Generation:
    """One open output record: its ids, a digest of the bytes handed out, and ``finish`` (once)."""

    def __init__(
        self,
        log: GenerationLog,
        ticket: GenerationTicket,
        prepared: PreparedSpeech,
        key_id: str | None,
        started: float,
    ) -> None:
        self._log = log
        self.ticket = ticket
        self.prepared = prepared
        self.key_id = key_id
        self.started = started
        self.digest = hashlib.sha256()
        self._lock = threading.Lock()
        self.finished = False

    @property
    def id(self) -> str:
        return self.ticket.id

    @property
    def watermark_id(self) -> int:
        return self.ticket.watermark_id

    def add(self, data: bytes) -> None:
        """Bytes that left for the client: their digest becomes the record's ``output_sha256``."""
        self.digest.update(data)

    def finish(
        self,
        *,
        duration_s: float,
        completed: bool = True,
        output_sha256: str | None = None,
        latency_ms: float | None = None,
        prepared: PreparedSpeech | None = None,
    ) -> bool:
        """Write the record's outcome and audit entry; False (and nothing written) when already finished."""
        with self._lock:
            if self.finished:
                return False
            self.finished = True
        self._log.finish(
            self.ticket,
            output_sha256=self.digest.hexdigest() if output_sha256 is None else output_sha256,
            duration_s=duration_s,
            latency_ms=(time.perf_counter() - self.started) * 1000 if latency_ms is None else latency_ms,
            key_id=self.key_id,
            prepared=prepared or self.prepared,
            completed=completed,
        )
        return True


class GenerationStream:
    """Encoded bytes of one generation as they are rendered; iterate it, then it is finished.

    Running out finishes the record as completed; ``close`` before that (a client that hung up, a
    caller that stopped reading), or an error while rendering, finishes it as cancelled. Either way the
    render is told to stop (``cancel``) and the record is written once. Usable as a context manager.
    """

    def __init__(
        self,
        generation: Generation,
        chunks: Iterator[bytes],
        cancel: threading.Event,
        stats: dict[str, float],
    ) -> None:
        self.generation = generation
        self.cancel = cancel
        self.stats = stats
        self._chunks = chunks
        self.completed = False

    def __iter__(self) -> GenerationStream:
        return self

    def __next__(self) -> bytes:
        if self.generation.finished:
            raise StopIteration
        on_client_gone(self.cancel.set)  # a hang-up cuts the model call in flight short
        try:
            data = next(self._chunks)
        except StopIteration:
            # A render told to stop (a hang-up cuts its model call short) ends early: not completed.
            self.completed = not self.cancel.is_set()
            self._finish()
            raise
        except BaseException:
            self.close()
            raise
        self.generation.add(data)
        return data

    def close(self) -> None:
        """Stop rendering and finish the record (cancelled, unless it already ran out)."""
        self.cancel.set()
        try:
            close = getattr(self._chunks, "close", None)
            if close is not None:
                close()
        finally:
            self._finish()

    def _finish(self) -> None:
        self.generation.finish(duration_s=self.stats.get("audio_s", 0.0), completed=self.completed)

    def __enter__(self) -> GenerationStream:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


class SessionGeneration:
    """A WebSocket text stream's record: opened by its first speakable segment, which also gives the
    session its watermark hook; finished once with the whole stream's text digest and length."""

    def __init__(
        self, service: GenerationService, session: SpeechSession, key_id: str | None, started: float
    ) -> None:
        self._service = service
        self.session = session
        self.key_id = key_id
        self.started = started
        self.generation: Generation | None = None
        self.digest = hashlib.sha256()

    def prepare(self, text: str) -> PreparedSpeech | None:
        """Plan a segment (``SpeechSession.prepare``); the first one that speaks opens the record."""
        prepared = self.session.prepare(text)
        if prepared is not None and self.generation is None:
            self.generation = self._service.open(prepared, self.key_id, started=self.started)
            self.session.hook = self._service.hook(self.generation.watermark_id)
        return prepared

    def add(self, data: bytes) -> None:
        """Audio sent to the client."""
        self.digest.update(data)

    def finish(self, *, completed: bool) -> bool:
        """Close the record (nothing to close when no segment spoke); False when there was none or it was
        already closed."""
        if self.generation is None:
            return False
        s = self.session
        summary = PreparedSpeech(
            pieces=[],
            voice=s.voice,
            format=s.format,
            speed=s.speed,
            sample_rate=s.out_sample_rate,
            text_sha256=s.text_sha256,
            text_chars=s.text_chars,
        )
        return self.generation.finish(
            duration_s=s.audio_s,
            completed=completed,
            output_sha256=self.digest.hexdigest(),
            prepared=summary,
        )


class GenerationService:
    """Opens, marks and finishes every output (see the module docstring for the shapes)."""

    def __init__(
        self,
        db: Callable[[], Database],
        audit: Callable[[], AuditTrail],
        *,
        pipeline: Callable[[], SpeechPipeline],
        watermarker: Callable[[], Watermarker],
        text_hash: str = "sha256",
    ) -> None:
        # All opened on first use: a batch worker (a Ray actor) only renders, and never opens the database.
        self._db = db
        self._audit = audit
        self._text_hash = text_hash
        self._pipeline = pipeline
        self._watermarker = watermarker

    @cached_property
    def log(self) -> GenerationLog:
        return GenerationLog(self._db(), self._audit(), text_hash=self._text_hash)

    @property
    def pipeline(self) -> SpeechPipeline:
        return self._pipeline()

    def hook(self, watermark_id: int) -> ChunkHook:
        """Per-output hook that marks every chunk with the generation's id at its absolute position."""
        return self._watermarker().embedder(watermark_id, self.pipeline.tts.sample_rate).process

    # -- whole outputs -----------------------------------------------------------------------------
    def open(
        self, prepared: PreparedSpeech, key_id: str | None, *, started: float | None = None
    ) -> Generation:
        """Open the record (its id is the watermark's payload) for audio rendered elsewhere: a batch item
        is rendered by ``render_marked`` on a worker, then the ``Generation`` is finished here."""
        started = time.perf_counter() if started is None else started
        return Generation(self.log, self.log.begin(prepared, key_id), prepared, key_id, started)

    def render_marked(self, prepared: PreparedSpeech, watermark_id: int) -> RenderedSpeech:
        """The whole file marked with a record opened by ``open`` (no database here: Ray workers)."""
        speech = self.pipeline.render(prepared, hook=self.hook(watermark_id))
        speech.watermark_id = watermark_id
        return speech

    def render(
        self, prepared: PreparedSpeech, key_id: str | None, *, started: float | None = None
    ) -> RenderedSpeech:
        """The whole file: record opened, audio marked with its id, record finished (cancelled on error)."""
        generation = self.open(prepared, key_id, started=started)
        try:
            speech = self.render_marked(prepared, generation.watermark_id)
        except BaseException:
            generation.finish(duration_s=0.0, completed=False, output_sha256="")
            raise
        speech.generation_id = generation.id
        generation.finish(duration_s=speech.duration, output_sha256=speech.output_sha256)
        return speech

    def rehearse(self, prepared: PreparedSpeech) -> None:
        """Render once through the mark and throw the audio away (warm-up): no record, nothing audited."""
        self.pipeline.render(prepared, hook=self.hook(0))

    # -- streams -----------------------------------------------------------------------------------
    def stream(
        self,
        prepared: PreparedSpeech,
        key_id: str | None,
        *,
        render: Render | None = None,
        started: float | None = None,
    ) -> GenerationStream:
        """Open the record and start rendering (default: ``SpeechPipeline.stream``).

        ``render`` is called here, so whatever it sets up (its encoder) fails before a response starts;
        the record is then finished as cancelled and the error raised.
        """
        generation = self.open(prepared, key_id, started=started)
        cancel = threading.Event()
        stats: dict[str, float] = {}
        try:
            hook = self.hook(generation.watermark_id)
            if render is None:
                chunks = self.pipeline.stream(prepared, hook=hook, cancel=cancel, stats=stats)
            else:
                chunks = render(hook, cancel, stats)
        except BaseException:
            generation.finish(duration_s=0.0, completed=False, output_sha256="")
            raise
        return GenerationStream(generation, chunks, cancel, stats)

    def session(
        self, session: SpeechSession, key_id: str | None, *, started: float | None = None
    ) -> SessionGeneration:
        """The record of a text stream fed segment by segment (the ElevenLabs WebSocket)."""
        return SessionGeneration(self, session, key_id, time.perf_counter() if started is None else started)
