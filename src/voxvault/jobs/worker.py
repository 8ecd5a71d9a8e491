"""The part of a batch that runs where the model is: check and plan an item, then render and commit it.

Work is split in two calls so the driver can open the item's generation record (which hands out the
watermark id) between them without the worker ever touching the database: ``prepare`` resolves the voice
and plans the text, ``render`` synthesises with that id's watermark and writes the output atomically.
On Ray each actor holds one ``BatchWorker``; in-process, the pool threads share one.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from voxvault.errors import VoxError
from voxvault.jobs.sinks import Sink
from voxvault.jobs.spec import BatchItem, output_key
from voxvault.synthesis import PreparedSpeech, VoiceStyle

if TYPE_CHECKING:  # jobs take a VoxVault, never import it: service.py is the composition root
    from voxvault.service import VoxVault

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WorkerOptions:
    """Job-wide settings every worker needs (picklable: it travels to Ray actors)."""

    default_voice: str
    default_format: str = "wav"
    project_id: str | None = None
    allowed_voices: tuple[str, ...] | None = None  # None: every voice the project can use
    lexicon: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ItemFailure:
    code: str
    message: str


@dataclass(frozen=True)
class PrepareResult:
    """``record``: the prepared request without pieces or style, enough for the generation log."""

    item_id: str
    record: PreparedSpeech | None = None
    failure: ItemFailure | None = None


@dataclass(frozen=True)
class RenderResult:
    item_id: str
    key: str = ""
    sha256: str = ""
    duration: float = 0.0
    latency_ms: float = 0.0
    failure: ItemFailure | None = None


class BatchWorker:
    """Holds a loaded ``VoxVault`` and the items prepared but not yet rendered. Thread-safe."""

    def __init__(self, vv: VoxVault, sink: Sink, options: WorkerOptions) -> None:
        self.vv = vv
        self.sink = sink
        self.options = options
        self._prepared: dict[str, PreparedSpeech] = {}
        self._lock = threading.Lock()

    def warm_up(self) -> None:
        """Load the model now, so the first item's timing is not the load."""
        _ = self.vv.pipeline

    def prepare(self, item: BatchItem) -> PrepareResult:
        try:
            style = self.vv.catalog.resolve(
                item.voice or self.options.default_voice, project_id=self.options.project_id
            )
            allowed = self.options.allowed_voices
            if allowed is not None and style.voice_id not in allowed:
                raise VoxError("voice_not_allowed", f"this API key may not use voice {style.voice_id!r}", 403)
            prepared = self.vv.pipeline.prepare(
                item.text,
                style,
                fmt=item.format or self.options.default_format,
                speed=item.speed or 1.0,
                lexicon=self.options.lexicon or None,
                ssml=item.ssml,
                first_piece_phonemes=None,
            )
        except VoxError as exc:
            return PrepareResult(item.id, failure=ItemFailure(exc.code, exc.message))
        except Exception as exc:  # noqa: BLE001 - one item's crash is that item's error, not the job's
            log.exception("batch item %s: prepare failed", item.id)
            return PrepareResult(item.id, failure=ItemFailure("internal_error", type(exc).__name__))
        with self._lock:
            self._prepared[item.id] = prepared
        record = dataclasses.replace(
            prepared, pieces=[], voice=VoiceStyle(prepared.voice.voice_id, np.zeros(0, np.float32))
        )
        return PrepareResult(item.id, record=record)

    def render(self, item_id: str, watermark_id: int) -> RenderResult:
        with self._lock:
            prepared = self._prepared.pop(item_id, None)
        if prepared is None:
            return RenderResult(
                item_id, failure=ItemFailure("not_prepared", "the worker lost this item; re-run")
            )
        t0 = time.perf_counter()
        try:
            speech = self.vv.generation.render_marked(prepared, watermark_id)
            key = output_key(item_id, prepared.format)
            self.sink.write_output(key, speech.audio)  # the commit point
        except VoxError as exc:
            return RenderResult(item_id, failure=ItemFailure(exc.code, exc.message))
        except Exception as exc:  # noqa: BLE001
            log.exception("batch item %s: render failed", item_id)
            return RenderResult(item_id, failure=ItemFailure("internal_error", type(exc).__name__))
        return RenderResult(
            item_id,
            key=key,
            sha256=speech.output_sha256,
            duration=speech.duration,
            latency_ms=(time.perf_counter() - t0) * 1000,
        )

    def discard(self, item_id: str) -> None:
        with self._lock:
            self._prepared.pop(item_id, None)
