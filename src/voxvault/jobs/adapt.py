"""Fine-tuning a cloned voice as a resumable background job (``POST /v1/voices/{id}/adapt``).

Each iteration is checkpointed into the ``Job`` row (``result["checkpoint"]``), so a crashed job resumes
where it stopped. When done the voice switches to the best style (and, for the decoder method, its own
decoder weights); what it had is kept for rollback. The optimisers live in ``cloning/adapt``; this module
owns the job rows and the voice's stored weights.
"""

from __future__ import annotations

import abc
import datetime as dt
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from voxvault.cloning.adapt.search import StyleObjective, finished, start_checkpoint, stepper
from voxvault.cloning.adapt.state import JOB_KIND, RESUMABLE, AdaptOptions, Checkpoint
from voxvault.cloning.instant import StyleBasis
from voxvault.engines.base import AdaptedSpeaker, FloatArray
from voxvault.errors import VoxError
from voxvault.store.models import Job, utcnow
from voxvault.text import TextFrontend
from voxvault.voices.lifecycle import Adaptation, VoiceView, blob_key, pack_deltas, unpack_deltas

if TYPE_CHECKING:
    from voxvault.cloning.adapt.decoder import RuntimeChoice
    from voxvault.cloning.adapt.gradient import StyleGradient

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class JobStatus:
    """An adaptation job as ``GET /v1/jobs/{id}`` shows it."""

    job_id: str
    kind: str
    status: str  # queued, running, interrupted, succeeded or failed
    voice_id: str | None
    progress: float
    iteration: int
    max_iterations: int
    best: dict[str, float] | None  # best objective, similarity, recall so far
    start: dict[str, float] | None  # the same scores for the start style
    stop_reason: str | None
    error: str | None
    created_at: dt.datetime | None
    updated_at: dt.datetime | None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


class AdaptService:
    """Submits, runs (resumably), and applies style adaptation jobs; rollback swaps back the old style."""

    def __init__(self, vv: Any) -> None:
        self.vv = vv
        self._lock = threading.Lock()
        self._threads: dict[str, threading.Thread] = {}
        self._stop = threading.Event()
        self._torch_tts: Any = None

    # -- jobs ---------------------------------------------------------------------------------------------
    def submit(
        self,
        voice_id: str,
        project_id: str | None,
        *,
        key_id: str | None,
        options: dict[str, Any] | None = None,
    ) -> str:
        opts = AdaptOptions.from_dict(options or {})
        self.vv.voice_registry.style_for(voice_id, project_id)  # 404/403/409 before any work is queued
        with self.vv.db.session() as s:
            job = Job(
                kind=JOB_KIND,
                status="queued",
                project_id=project_id,
                key_id=key_id,
                total=opts.max_iterations,
                spec={"voice_id": voice_id, "options": opts.to_dict()},
            )
            s.add(job)
            s.flush()
            job_id = job.id
        self.vv.audit.record(
            "voice.adapt.submitted", actor=key_id, target=voice_id, details={"job_id": job_id}
        )
        return job_id

    def status(self, job_id: str, project_id: str | None) -> JobStatus:
        with self.vv.db.session() as s:
            job = s.get(Job, job_id)
            if (
                job is None
                or job.kind != JOB_KIND
                or (project_id is not None and job.project_id != project_id)
            ):
                raise VoxError("job_not_found", f"no job {job_id!r}", 404)
            result = dict(job.result or {})
            ck = result.get("checkpoint") or {}
            return JobStatus(
                job_id=job.id,
                kind=job.kind,
                status=job.status,
                voice_id=job.spec.get("voice_id"),
                progress=round(float(job.progress), 4),
                iteration=int(ck.get("iteration", 0)),
                max_iterations=job.total,
                best=ck.get("best"),
                start=ck.get("start"),
                stop_reason=result.get("stop_reason"),
                error=job.error,
                created_at=job.created_at,
                updated_at=job.updated_at,
            )

    def run(
        self,
        job_id: str,
        *,
        max_steps: int | None = None,
        on_progress: Callable[[JobStatus], None] | None = None,
    ) -> str:
        """Run (or resume) a job in this thread; returns its status. ``max_steps`` stops early, leaving the
        row ``running`` exactly as a crash would (used to test resuming)."""
        with self.vv.db.session() as s:
            job = s.get(Job, job_id)
            if job is None or job.kind != JOB_KIND:
                raise VoxError("job_not_found", f"no job {job_id!r}", 404)
            if job.status not in RESUMABLE:
                return job.status
            spec, result, project_id = dict(job.spec), dict(job.result or {}), job.project_id
            job.status = "running"
            job.heartbeat_at = utcnow()
        voice_id = spec["voice_id"]
        options = AdaptOptions.from_dict(spec.get("options", {}))
        try:
            plan = self._plan(job_id, voice_id, project_id, options)
            raw = result.get("checkpoint")
            ck = Checkpoint(**raw) if raw else plan.start()
            if not raw:
                self._save(job_id, ck, options)
                plan.saved(ck)
            steps = 0
            while (reason := finished(ck, options)) is None:
                if self._stop.is_set():
                    self._set_status(job_id, "interrupted")
                    return "interrupted"
                if max_steps is not None and steps >= max_steps:
                    return "running"
                ck = plan.step(ck)
                steps += 1
                self._save(job_id, ck, options)
                plan.saved(ck)
                if on_progress is not None:
                    on_progress(self.status(job_id, None))
            plan.finish(ck, reason)
            log.info(
                "adapt job=%s voice=%s method=%s done: %s after %d iterations",
                job_id,
                voice_id,
                options.method,
                reason,
                ck.iteration,
            )
            return "succeeded"
        except VoxError as exc:
            self._fail(job_id, voice_id, f"{exc.code}: {exc.message}")
            return "failed"
        except Exception as exc:  # noqa: BLE001 - a background job records its failure instead of dying silently
            log.exception("adapt job=%s failed", job_id)
            self._fail(job_id, voice_id, type(exc).__name__)
            return "failed"

    def _plan(self, job_id: str, voice_id: str, project_id: str | None, options: AdaptOptions) -> _Plan:
        if options.method == "decoder":
            return _DecoderPlan(self, job_id, voice_id, project_id, options)
        objective, z0 = self._objective(voice_id, project_id, options)
        gradient = self._gradient(objective) if options.method == "gradient" else None
        return _StylePlan(self, job_id, voice_id, project_id, options, objective, z0, gradient)

    def _objective(
        self, voice_id: str, project_id: str | None, options: AdaptOptions
    ) -> tuple[StyleObjective, FloatArray]:
        vv = self.vv
        tts = vv.engines.tts()
        basis = StyleBasis.from_presets(vv.catalog.preset_styles())
        target = vv.voice_registry.embedding_for(voice_id, project_id)
        current = vv.voice_registry.style_for(voice_id, project_id)
        asr = vv.engines.asr() if options.intelligibility_weight > 0 else None
        objective = StyleObjective(tts, vv.engines.speaker(), asr, basis, target, options)
        return objective, basis.coords(current)

    def _gradient(self, objective: StyleObjective) -> StyleGradient:
        """PyTorch Kokoro (the configured engine when it is one, else loaded once) and GE2E."""
        from voxvault.cloning.adapt.gradient import StyleGradient  # PyTorch: loaded when a gradient job runs

        tts: Any = self.vv.engines.adaptable_tts()
        return StyleGradient(tts, objective.encoder, objective.basis, objective.target, objective.phonemes)  # type: ignore[arg-type]

    def _save(self, job_id: str, ck: Checkpoint, options: AdaptOptions) -> None:
        with self.vv.db.session() as s:
            job = s.get(Job, job_id)
            if job is None:
                return
            job.result = {"checkpoint": asdict(ck)}
            job.done = ck.iteration
            job.progress = min(
                1.0, max(ck.iteration / options.max_iterations, ck.seconds / options.max_seconds)
            )
            job.heartbeat_at = utcnow()

    def _set_status(self, job_id: str, status: str) -> None:
        with self.vv.db.session() as s:
            job = s.get(Job, job_id)
            if job is not None:
                job.status = status

    def _fail(self, job_id: str, voice_id: str, error: str) -> None:
        """Record the failure and remove the job's working state (a decoder job's stored weights)."""
        with self.vv.db.session() as s:
            job = s.get(Job, job_id)
            if job is not None:
                job.status, job.error = "failed", error
        blobs = self.vv.voice_registry.blobs
        try:
            for key in list(blobs.list(blob_key(voice_id, working_folder(job_id)))):
                blobs.delete(key)
        except Exception:  # noqa: BLE001 - the failure is recorded; leftovers go with the voice's erasure
            log.warning("adapt job=%s: could not remove its working state", job_id)

    def _apply(
        self,
        job_id: str,
        voice_id: str,
        project_id: str | None,
        pack: FloatArray,
        ck: Checkpoint,
        reason: str,
        decoder: str | None = None,
        runtime: dict[str, Any] | None = None,
    ) -> None:
        """Switch the voice to the adapted style (and decoder weights, blob ``decoder``; None: shipped)
        through the registry, and mark the job succeeded in the same transaction. ``runtime``: the
        weights' ``RuntimeChoice``, kept per blob with the voice."""
        adaptation = Adaptation(
            adapt_job=job_id,
            similarity=round(float(ck.best["similarity"]), 4),
            recall=round(float(ck.best["recall"]), 4),
            rolled_back=False,
            runtime=runtime,
        )

        def succeeded(s: Session) -> None:
            job = s.get(Job, job_id)
            if job is not None:
                job.status, job.progress = "succeeded", 1.0
                job.result = {"checkpoint": asdict(ck), "stop_reason": reason}

        self.vv.voice_registry.adopt_adaptation(
            voice_id, project_id, style=pack, adaptation=adaptation, decoder=decoder, within=succeeded
        )
        self.vv.audit.record(
            "voice.adapted",
            target=voice_id,
            details={
                "job_id": job_id,
                "method": "decoder" if decoder else "style",
                "iterations": ck.iteration,
                "similarity": round(ck.best["similarity"], 4),
            },
        )

    def rollback(self, voice_id: str, project_id: str | None, *, actor: str | None) -> VoiceView:
        """Swap the current and the previous style and decoder weights (the registry owns the row)."""
        return self.vv.voice_registry.roll_back(voice_id, project_id, actor=actor)

    # -- background threads --------------------------------------------------------------------------------
    def start(self, job_id: str) -> None:
        """Run a job in a daemon thread (one per job; the engines are shared and thread-safe)."""
        with self._lock:
            thread = self._threads.get(job_id)
            if thread is not None and thread.is_alive():
                return
            thread = threading.Thread(
                target=self.run, args=(job_id,), name=f"adapt-{job_id[:8]}", daemon=True
            )
            self._threads[job_id] = thread
            thread.start()

    def resume_unfinished(self) -> list[str]:
        """At start-up: restart every adaptation job a previous process left unfinished."""
        with self.vv.db.session() as s:
            ids = list(s.scalars(select(Job.id).where(Job.kind == JOB_KIND, Job.status.in_(RESUMABLE))))
        for job_id in ids:
            self.start(job_id)
        return ids

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        with self._lock:
            threads = list(self._threads.values())
        for thread in threads:
            thread.join(timeout)


def working_folder(job_id: str) -> str:
    """Where (under the voice's prefix) a decoder job keeps its state and candidate weights."""
    return f"decoder/{job_id}/"


class _Plan(abc.ABC):
    """How one method starts, steps and finishes a job of ``voice_id`` (the service checkpoints)."""

    def __init__(
        self, service: AdaptService, job_id: str, voice_id: str, project_id: str | None, options: AdaptOptions
    ) -> None:
        self.service, self.job_id, self.voice_id, self.project_id = service, job_id, voice_id, project_id
        self.options = options

    @abc.abstractmethod
    def start(self) -> Checkpoint: ...

    @abc.abstractmethod
    def step(self, ck: Checkpoint) -> Checkpoint: ...

    def saved(self, ck: Checkpoint) -> None:  # noqa: B027 - most methods keep nothing outside the row
        """The job row now holds ``ck`` (a plan may drop state no row names any more)."""

    @abc.abstractmethod
    def finish(self, ck: Checkpoint, reason: str) -> None: ...


class _StylePlan(_Plan):
    """Search or gradient on the style: the whole state fits the checkpoint's JSON."""

    def __init__(
        self,
        service: AdaptService,
        job_id: str,
        voice_id: str,
        project_id: str | None,
        options: AdaptOptions,
        objective: StyleObjective,
        z0: FloatArray,
        gradient: StyleGradient | None,
    ) -> None:
        super().__init__(service, job_id, voice_id, project_id, options)
        self.objective, self.z0 = objective, z0
        self._step = stepper(objective, options, gradient)

    def start(self) -> Checkpoint:
        return start_checkpoint(self.objective, self.z0, self.options)

    def step(self, ck: Checkpoint) -> Checkpoint:
        return self._step(ck)

    def finish(self, ck: Checkpoint, reason: str) -> None:
        pack = self.objective.basis.pack(np.asarray(ck.best_z))
        self.service._apply(self.job_id, self.voice_id, self.project_id, pack, ck, reason)


class _DecoderPlan(_Plan):
    """Decoder adaptation: weights and Adam's moments (450 kB for the biases) live in sealed blobs under
    ``voices/<id>/decoder/<job>/``, the checkpoint's JSON names the current ones. A blob is written before
    the row that names it, and blobs no row names are removed once the row is saved, so a crash at any
    point leaves a consistent checkpoint to resume from."""

    def __init__(
        self,
        service: AdaptService,
        job_id: str,
        voice_id: str,
        project_id: str | None,
        options: AdaptOptions,
    ) -> None:
        super().__init__(service, job_id, voice_id, project_id, options)
        vv = service.vv
        self.registry = reg = vv.voice_registry
        self.style = reg.style_for(voice_id, project_id)
        target = self.target = reg.embedding_for(voice_id, project_id)
        from voxvault.cloning.adapt.decoder import DecoderTuner  # PyTorch: loaded when a decoder job runs

        tts: Any = vv.engines.adaptable_tts()
        frontend = self.frontend = TextFrontend(max_phonemes=tts.max_phonemes)
        phonemes = [frontend.phonemes(text) for text in options.sentences]
        self.tuner = DecoderTuner(
            tts,
            vv.engines.speaker(),
            vv.engines.asr() if options.intelligibility_weight > 0 else None,
            self.style,
            target,
            options.sentences,
            phonemes,
            similarity_weight=options.similarity_weight,
            intelligibility_weight=options.intelligibility_weight,
            naturalness_weight=options.naturalness_weight,
            learning_rate=options.step_size,
            l2=options.l2,
            start=reg.adapted_for(voice_id, project_id),
            scope=options.scope,
        )
        self.folder = working_folder(job_id)

    def _put(self, what: str, data: bytes) -> str:
        self.registry.put_sealed(self.voice_id, self.folder + what, data)
        return self.folder + what

    def _tidy(self, keep: set[str]) -> None:
        prefix = blob_key(self.voice_id, self.folder)
        for key in list(self.registry.blobs.list(prefix)):
            if key[len(blob_key(self.voice_id, "")) :] not in keep:
                self.registry.blobs.delete(key)

    def _advance(self, ck: Checkpoint | None) -> Checkpoint:
        """One tuner step (scores the current weights, then moves them) recorded as a checkpoint."""
        t0 = time.perf_counter()
        self.registry.style_for(self.voice_id, self.project_id)  # revoked or erased meanwhile: stop here
        score, deltas = self.tuner.step()
        iteration = 0 if ck is None else ck.iteration + 1
        scored = asdict(score)
        improved = ck is None or score.objective > ck.best["objective"]
        best_blob = self._put(f"best-{iteration}", pack_deltas(deltas)) if improved else ck.adam["best"]  # type: ignore[union-attr]
        state_blob = self._put(f"state-{iteration}", self.tuner.state_bytes())
        best = scored if improved else ck.best  # type: ignore[union-attr]
        seconds = time.perf_counter() - t0
        return Checkpoint(
            iteration=iteration,
            best_z=[],
            best=best,
            start=scored if ck is None else ck.start,
            sigma=0.0,
            stall=0 if improved else ck.stall + 1,  # type: ignore[union-attr]
            seconds=seconds if ck is None else ck.seconds + seconds,
            history=[round(float(best["objective"]), 5)]
            if ck is None
            else [*ck.history, round(float(best["objective"]), 5)],
            adam={"t": self.tuner.t, "state": state_blob, "best": best_blob},
        )

    def start(self) -> Checkpoint:
        return self._advance(None)

    def step(self, ck: Checkpoint) -> Checkpoint:
        if self.tuner.t != ck.adam["t"]:  # resuming: continue from the stored trajectory
            self.tuner.load_state(self.registry.get_sealed(self.voice_id, ck.adam["state"]))
        return self._advance(ck)

    def saved(self, ck: Checkpoint) -> None:
        self._tidy({ck.adam["state"], ck.adam["best"]})  # what no row names any more (or a crash left)

    def finish(self, ck: Checkpoint, reason: str) -> None:
        self._tidy({ck.adam["best"]})
        runtime = self.runtime_choice(ck.adam["best"])
        self.service._apply(
            self.job_id,
            self.voice_id,
            self.project_id,
            self.style,
            ck,
            reason,
            decoder=ck.adam["best"],
            runtime=runtime.to_dict() if runtime is not None else None,
        )

    def runtime_choice(self, best: str) -> RuntimeChoice | None:
        """Which runtime speaks the chosen weights closer to the speaker (``choose_runtime``); None when the
        serving engine cannot take them or is the one they were trained through."""
        serving = self.service.vv.engines.tts()
        trained = self.tuner.tts
        adapted = unpack_deltas(best, self.registry.get_sealed(self.voice_id, best))
        if serving is trained or not (isinstance(serving, AdaptedSpeaker) and serving.speaks(adapted)):
            return None
        from voxvault.cloning.adapt.decoder import VALIDATION_SENTENCES, choose_runtime

        t0 = time.perf_counter()
        phonemes = [self.frontend.phonemes(text) for text in VALIDATION_SENTENCES]
        choice = choose_runtime(
            serving, trained, self.service.vv.engines.speaker(), phonemes, self.style, adapted, self.target
        )
        log.info(
            "adapt job=%s runtime check: served %.4f as trained %.4f as_trained=%s (%.2f s)",
            self.job_id,
            choice.served_similarity,
            choice.trained_similarity,
            choice.as_trained,
            time.perf_counter() - t0,
        )
        return choice
