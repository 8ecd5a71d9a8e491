"""Fine-tuned voice: optimise a clone's style toward its speaker, as a resumable background job.

The search runs in the instant clone's basis (``voices/instant.py``): a (1+λ) evolution strategy with
step-size adaptation, so each step only needs the engine to speak (no gradients; the CPU path). The
objective rewards GE2E similarity to the enrolled embedding, rewards the ASR recognising the words
(so the voice keeps saying them) and penalises leaving the region of natural styles. Each iteration is
checkpointed into the ``Job`` row (``result["checkpoint"]``), so a crashed job resumes where it stopped.
When done the voice switches to the best style; the one it had is kept (``previous_style_blob``) for
rollback. ``method="gradient"`` replaces the search by Adam steps through differentiable copies of Kokoro
and GE2E in PyTorch (``voices/style_gradient.py``), on the CPU or a GPU.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from sqlalchemy import select

from voxvault.engines.asr import phrase_recall
from voxvault.engines.base import FloatArray, SpeakerEncoder, SpeechRecognizer, TTSEngine
from voxvault.errors import VoxError
from voxvault.store.models import Job, Voice, utcnow
from voxvault.text import TextFrontend
from voxvault.voices.instant import StyleBasis, naturalness_penalty
from voxvault.voices.lifecycle import array_bytes, array_from_bytes
from voxvault.voices.style_gradient import StyleGradient, gradient_step

log = logging.getLogger(__name__)

JOB_KIND = "voice_adapt"
METHODS = ("search", "gradient")
RESUMABLE = ("queued", "running", "interrupted")
DEFAULT_SENTENCES = (
    "The quick brown fox jumps over the lazy dog.",
    "Please call me back when you get this message.",
    "We will meet at the station at half past nine.",
)


@dataclass(frozen=True)
class AdaptOptions:
    """Search budget and objective weights (all JSON-friendly: they are stored in the job spec)."""

    max_iterations: int = 24
    population: int = 4
    max_seconds: float = 600.0
    patience: int = 8  # iterations without improvement before an early stop
    sigma: float = 0.35  # initial step, in basis standard deviations
    similarity_weight: float = 1.0
    intelligibility_weight: float = 0.3
    naturalness_weight: float = 0.05
    sentences: tuple[str, ...] = DEFAULT_SENTENCES
    seed: int = 0
    method: str = "search"  # "search": (1+λ) evolution strategy; "gradient": Adam through PyTorch Kokoro
    learning_rate: float = 0.2  # gradient method: Adam step, in basis standard deviations

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> AdaptOptions:
        known = {k: v for k, v in raw.items() if k in cls.__dataclass_fields__}
        if "sentences" in known:
            known["sentences"] = tuple(known["sentences"])
        opts = cls(**known)
        if not (1 <= opts.max_iterations <= 500 and 1 <= opts.population <= 32 and opts.max_seconds > 0):
            raise VoxError("invalid_options", "max_iterations 1-500, population 1-32, max_seconds > 0", 422)
        if not opts.sentences:
            raise VoxError("invalid_options", "at least one sentence is needed", 422)
        if opts.method not in METHODS:
            raise VoxError("invalid_options", f"method must be one of {', '.join(METHODS)}", 422)
        if not 0 < opts.learning_rate <= 2:
            raise VoxError("invalid_options", "learning_rate must be in (0, 2]", 422)
        return opts

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["sentences"] = list(self.sentences)
        return out


@dataclass
class Score:
    objective: float
    similarity: float
    recall: float
    penalty: float


@dataclass
class Checkpoint:
    """Everything needed to continue the search (stored as JSON in the job row)."""

    iteration: int
    best_z: list[float]
    best: dict[str, float]
    start: dict[str, float]
    sigma: float
    stall: int
    seconds: float
    history: list[float] = field(default_factory=list)
    rng_state: dict[str, Any] = field(default_factory=dict)
    adam: dict[str, Any] = field(default_factory=dict)  # gradient method: current z, moments, step count


class StyleObjective:
    """Scores basis coordinates: speak the sentences, embed, recognise, penalise the unnatural."""

    def __init__(
        self,
        tts: TTSEngine,
        encoder: SpeakerEncoder,
        asr: SpeechRecognizer | None,
        basis: StyleBasis,
        target: FloatArray,
        options: AdaptOptions,
    ) -> None:
        self.tts, self.encoder, self.asr, self.basis, self.options = tts, encoder, asr, basis, options
        target_arr = np.asarray(target, dtype=np.float32).reshape(-1)
        self.target = target_arr / max(float(np.linalg.norm(target_arr)), 1e-12)
        frontend = TextFrontend(max_phonemes=tts.max_phonemes)
        self.phonemes = ["".join(p.phonemes for p in frontend.plan(s)) for s in options.sentences]

    def speak(self, z: FloatArray) -> list[FloatArray]:
        pack = self.basis.pack(np.asarray(z))
        return [self.tts.synthesize(ph, pack) for ph in self.phonemes]

    def __call__(self, z: FloatArray) -> Score:
        clips = self.speak(z)
        rate = self.tts.sample_rate
        gap = np.zeros(int(0.2 * rate), dtype=np.float32)
        joined = np.concatenate([c for clip in clips for c in (clip, gap)])
        emb = np.asarray(self.encoder.embed(joined, rate), dtype=np.float32)
        similarity = float(np.dot(emb / max(float(np.linalg.norm(emb)), 1e-12), self.target))
        recall = 1.0
        if self.asr is not None and self.options.intelligibility_weight > 0:
            recalls = [
                phrase_recall(text, self.asr.transcribe(clip, rate))
                for clip, text in zip(clips, self.options.sentences, strict=True)
            ]
            recall = float(np.mean(recalls))
        penalty = naturalness_penalty(np.asarray(z))
        o = self.options
        objective = (
            o.similarity_weight * similarity
            + o.intelligibility_weight * recall
            - o.naturalness_weight * penalty
        )
        return Score(objective, similarity, recall, penalty)


def start_checkpoint(objective: StyleObjective, z0: FloatArray, options: AdaptOptions) -> Checkpoint:
    score = objective(z0)
    best = asdict(score)
    rng = np.random.default_rng(options.seed)
    return Checkpoint(
        iteration=0,
        best_z=[float(v) for v in np.asarray(z0).reshape(-1)],
        best=best,
        start=dict(best),
        sigma=options.sigma,
        stall=0,
        seconds=0.0,
        history=[round(score.objective, 5)],
        rng_state=dict(rng.bit_generator.state),
    )


def search_step(objective: StyleObjective, ck: Checkpoint, options: AdaptOptions) -> Checkpoint:
    """One (1+λ) iteration with the 1/5th success rule for the step size."""
    t0 = time.perf_counter()
    rng = np.random.default_rng()
    rng.bit_generator.state = ck.rng_state
    parent = np.asarray(ck.best_z, dtype=np.float32)
    best_z, best = parent, ck.best
    improved = False
    for _ in range(options.population):
        child = (parent + ck.sigma * rng.standard_normal(parent.size)).astype(np.float32)
        score = objective(child)
        if score.objective > best["objective"]:
            best_z, best, improved = child, asdict(score), True
    sigma = ck.sigma * (1.5 if improved else 0.85)
    return Checkpoint(
        iteration=ck.iteration + 1,
        best_z=[float(v) for v in best_z],
        best=best,
        start=ck.start,
        sigma=float(np.clip(sigma, 0.05, 1.5)),
        stall=0 if improved else ck.stall + 1,
        seconds=ck.seconds + time.perf_counter() - t0,
        history=[*ck.history, round(float(best["objective"]), 5)],
        rng_state=dict(rng.bit_generator.state),
    )


def finished(ck: Checkpoint, options: AdaptOptions) -> str | None:
    """Why the search stops now (None: go on)."""
    if ck.iteration >= options.max_iterations:
        return "max_iterations"
    if ck.seconds >= options.max_seconds:
        return "time_cap"
    if ck.stall >= options.patience:
        return "early_stop"
    return None


Step = Callable[[Checkpoint], Checkpoint]


def stepper(objective: StyleObjective, options: AdaptOptions, gradient: StyleGradient | None = None) -> Step:
    """The iteration for ``options.method``: a search step, or a gradient step (needs ``gradient``)."""
    if options.method == "gradient":
        if gradient is None:
            raise VoxError("gradient_unavailable", "the gradient method needs a differentiable model", 422)
        return lambda ck: gradient_step(objective, gradient, ck, options)
    return lambda ck: search_step(objective, ck, options)


def optimise(
    objective: StyleObjective,
    z0: FloatArray,
    options: AdaptOptions,
    on_step: Callable[[Checkpoint], None] | None = None,
    gradient: StyleGradient | None = None,
) -> Checkpoint:
    """Run the whole search in-process (evaluation, scripts); the job service checkpoints instead."""
    step = stepper(objective, options, gradient)
    ck = start_checkpoint(objective, z0, options)
    while finished(ck, options) is None:
        ck = step(ck)
        if on_step is not None:
            on_step(ck)
    return ck


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

    def status(self, job_id: str, project_id: str | None) -> dict[str, Any]:
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
            return {
                "job_id": job.id,
                "kind": job.kind,
                "status": job.status,
                "voice_id": job.spec.get("voice_id"),
                "progress": round(float(job.progress), 4),
                "iteration": int(ck.get("iteration", 0)),
                "max_iterations": job.total,
                "best": ck.get("best"),
                "start": ck.get("start"),
                "stop_reason": result.get("stop_reason"),
                "error": job.error,
                "created_at": job.created_at,
                "updated_at": job.updated_at,
            }

    def run(
        self,
        job_id: str,
        *,
        max_steps: int | None = None,
        on_progress: Callable[[dict[str, Any]], None] | None = None,
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
            objective, z0 = self._objective(voice_id, project_id, options, spec)
            step = stepper(
                objective, options, self._gradient(objective) if options.method == "gradient" else None
            )
            raw = result.get("checkpoint")
            ck = Checkpoint(**raw) if raw else start_checkpoint(objective, z0, options)
            if not raw:
                self._save(job_id, ck, options)
            steps = 0
            while (reason := finished(ck, options)) is None:
                if self._stop.is_set():
                    self._set_status(job_id, "interrupted")
                    return "interrupted"
                if max_steps is not None and steps >= max_steps:
                    return "running"
                ck = step(ck)
                steps += 1
                self._save(job_id, ck, options)
                if on_progress is not None:
                    on_progress(self.status(job_id, None))
            self._apply(job_id, voice_id, project_id, objective.basis.pack(np.asarray(ck.best_z)), ck, reason)
            log.info(
                "adapt job=%s voice=%s done: %s after %d iterations", job_id, voice_id, reason, ck.iteration
            )
            return "succeeded"
        except VoxError as exc:
            self._fail(job_id, f"{exc.code}: {exc.message}")
            return "failed"
        except Exception as exc:  # noqa: BLE001 - a background job records its failure instead of dying silently
            log.exception("adapt job=%s failed", job_id)
            self._fail(job_id, type(exc).__name__)
            return "failed"

    def _objective(
        self, voice_id: str, project_id: str | None, options: AdaptOptions, spec: dict[str, Any]
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
        """PyTorch Kokoro (the configured engine when it is one, else loaded once here) and GE2E."""
        from voxvault.engines.kokoro_torch import KokoroTorchEngine

        tts = objective.tts
        if not isinstance(tts, KokoroTorchEngine):
            with self._lock:
                if self._torch_tts is None:
                    st = self.vv.settings
                    self._torch_tts = KokoroTorchEngine(
                        st.resolved_cache_dir, device=st.device, threads=st.threads
                    )
                tts = self._torch_tts
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

    def _fail(self, job_id: str, error: str) -> None:
        with self.vv.db.session() as s:
            job = s.get(Job, job_id)
            if job is not None:
                job.status, job.error = "failed", error

    def _apply(
        self,
        job_id: str,
        voice_id: str,
        project_id: str | None,
        pack: FloatArray,
        ck: Checkpoint,
        reason: str,
    ) -> None:
        """Switch the voice to the adapted style, keeping the one it had for rollback."""
        reg = self.vv.voice_registry
        previous = reg.style_for(voice_id, project_id)
        prev_key = reg.put_sealed(voice_id, "style-previous", array_bytes(previous))
        style_key = reg.put_sealed(voice_id, "style", array_bytes(pack))
        with self.vv.db.session() as s:
            row = s.get(Voice, voice_id)
            if row is not None:
                row.style_blob, row.previous_style_blob = style_key, prev_key
                meta = dict(row.meta or {})
                meta["conditioning"] = {
                    **dict(meta.get("conditioning") or {}),
                    "method": "finetuned",
                    "adapt_job": job_id,
                    "similarity": round(float(ck.best["similarity"]), 4),
                    "recall": round(float(ck.best["recall"]), 4),
                }
                row.meta = meta
            job = s.get(Job, job_id)
            if job is not None:
                job.status, job.progress = "succeeded", 1.0
                job.result = {"checkpoint": asdict(ck), "stop_reason": reason}
        self.vv.audit.record(
            "voice.adapted",
            target=voice_id,
            details={
                "job_id": job_id,
                "iterations": ck.iteration,
                "similarity": round(ck.best["similarity"], 4),
            },
        )

    def rollback(self, voice_id: str, project_id: str | None, *, actor: str | None) -> dict[str, Any]:
        """Swap the current and the previous style (rolling back twice restores the adapted one)."""
        reg = self.vv.voice_registry
        current = reg.style_for(voice_id, project_id)
        with self.vv.db.session() as s:
            row = s.get(Voice, voice_id)
            has_previous = row is not None and row.previous_style_blob is not None
        if not has_previous:
            raise VoxError(
                "no_previous_style", f"voice {voice_id!r} has no earlier style to roll back to", 409
            )
        previous = array_from_bytes(reg.get_sealed(voice_id, "style-previous"))
        reg.put_sealed(voice_id, "style", array_bytes(previous))
        reg.put_sealed(voice_id, "style-previous", array_bytes(current))
        with self.vv.db.session() as s:
            row = s.get(Voice, voice_id)
            if row is not None:
                meta = dict(row.meta or {})
                cond = dict(meta.get("conditioning") or {})
                cond["rolled_back"] = not bool(cond.get("rolled_back", False))
                meta["conditioning"] = cond
                row.meta = meta
        self.vv.audit.record("voice.style_rolled_back", actor=actor, target=voice_id, details={})
        return reg.get(voice_id, project_id)

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
