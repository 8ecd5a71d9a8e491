"""Consent-verified enrollment: from a consent recording and voice samples to a stored, speakable voice.

Order of work (cheap refusals first, the expensive models last):

1. the consent is open (code not spent, not expired), the key, tenant and speaker are not locked out by
   earlier refusals (:mod:`voxvault.voices.attempts`), and the echoed code matches its hash;
2. the code is spent (a conditional update: only one attempt per consent ever gets past this line);
3. the recording's bytes were never submitted before (replay);
4. no file carries a voxvault watermark (:mod:`voxvault.voices.synthetic`); every file decodes within
   the byte, duration and time bounds, and passes the quality gates; the consent recording does not
   sound synthesised (:mod:`voxvault.voices.spoof`, the detector of the project's own engine);
5. each sample file holds one speaker;
6. the recording says the script: name, organisation, purpose and code, heard by Whisper
   (:mod:`voxvault.voices.script_heard`; PocketSphinx's grammar pass when configured);
7. the recording's voice is the voice of the samples' pool (GE2E) and of every sample file on its own
   (GE2E and CAM++);
8. the style is derived, payloads are sealed and written under ``voices/<voice id>/``, then the consent
   and the voice row are written in one transaction. If anything fails after the first blob is written,
   every blob under that prefix is deleted: a refusal or a crash leaves no voice row and no blob.

Every refusal after step 2 marks the consent ``refused`` with the reason and every score measured so far.
Raw samples are processed in memory and dropped unless ``retain_samples_days`` asks to keep them (sealed).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import logging
import re
import time
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sqlalchemy.orm import Session

from voxvault.audio.io import decode
from voxvault.cloning.cloner import VoiceCloner
from voxvault.config import Settings
from voxvault.engines.registry import EngineRegistry
from voxvault.engines.speaker import cosine
from voxvault.errors import VoxError
from voxvault.governance.audit import AuditTrail
from voxvault.store.db import Database
from voxvault.store.models import Consent, new_id, utcnow
from voxvault.voices.attempts import AttemptGuard
from voxvault.voices.checks import EnrollmentChecks
from voxvault.voices.consent import ConsentService, ConsentView, build_script
from voxvault.voices.identity import (
    IdentityPolicy,
    check_each_file,
    check_one_speaker,
    check_same_speaker,
    embed_measures,
    match_files,
    speaker_split,
    speech_only,
)
from voxvault.voices.lifecycle import NewVoice, VoiceRegistry, VoiceView, blob_key
from voxvault.voices.quality import (
    ANALYSIS_RATE,
    AudioMeasures,
    QualityPolicy,
    check_file,
    check_total_speech,
    measure,
)
from voxvault.voices.references import renewal_references
from voxvault.voices.script_check import ScriptChecker, ScriptScores
from voxvault.voices.script_heard import HeardScores, HeardScriptChecker
from voxvault.voices.spoof import SpoofDetector
from voxvault.voices.synthetic import SyntheticAudioCheck

log = logging.getLogger(__name__)

MAX_RECORDING_SECONDS = 120.0
DECODE_TIMEOUT_S = 30.0
_SAFE_NAME = re.compile(r"[^A-Za-z0-9._ -]+")


@dataclass(frozen=True)
class Upload:
    """One uploaded file, as bytes (the HTTP layer has already bounded the total size)."""

    filename: str
    data: bytes
    content_type: str | None = None


@dataclass(frozen=True)
class EnrollmentPolicy:
    quality: QualityPolicy = field(default_factory=QualityPolicy)
    identity: IdentityPolicy = field(default_factory=IdentityPolicy)
    max_files: int = 20

    @classmethod
    def from_settings(cls, settings: Settings) -> EnrollmentPolicy:
        return cls(
            quality=QualityPolicy(min_total_speech_s=settings.enroll_min_speech_s),
            identity=IdentityPolicy(same_speaker_threshold=settings.speaker_match_threshold),
            max_files=settings.enroll_max_files,
        )

    def numbers(self) -> dict[str, Any]:
        q, i = self.quality, self.identity
        return {
            "min_sample_rate": q.min_sample_rate,
            "min_total_speech_s": q.min_total_speech_s,
            "min_recording_speech_s": q.min_recording_speech_s,
            "min_snr_db": q.min_snr_db,
            "max_clipped_fraction": q.max_clipped_fraction,
            "same_speaker_threshold": i.same_speaker_threshold,
            "short_speech_s": i.short_speech_s,
            "short_same_speaker_threshold": i.short_same_speaker_threshold,
            "split_threshold": i.split_threshold,
            "file_ge2e_threshold": i.file_ge2e_threshold,
            "file_campp_threshold": i.file_campp_threshold,
        }


def safe_filename(name: str | None, fallback: str) -> str:
    base = (name or "").replace("\\", "/").rsplit("/", 1)[-1]
    base = _SAFE_NAME.sub("_", base).strip(" ._")[:80]
    return base or fallback


def sample_label(index: int, upload: Upload) -> str:
    return f"samples[{index}] ({safe_filename(upload.filename, 'unnamed')})"


@dataclass(frozen=True)
class Attempt:
    """One enrollment or renewal attempt whose code was spent: the consent, the recording, who sent it."""

    consent: Consent
    sha: str  # the recording's SHA-256 (what the consent was claimed with)
    challenge: str
    recording: Upload
    actor: str | None


@dataclass(frozen=True)
class FileCheck:
    """One file decoded, looked at for a watermark, measured and judged. The caller records the scores
    before raising ``refusal``, so a refused consent keeps every score measured up to the refusal."""

    label: str
    measures: AudioMeasures | None  # None: refused as synthetic before it was measured
    marked: bool | None  # carries a voxvault watermark; None: no watermark check configured
    refusal: VoxError | None = None

    def passed(self) -> AudioMeasures:
        if self.refusal is not None:
            raise self.refusal
        assert self.measures is not None
        return self.measures


@dataclass(frozen=True)
class ScriptCheck:
    """What the recording was heard to say (``numbers`` also when refused), and the refusal if any."""

    scores: ScriptScores | HeardScores | None
    numbers: dict[str, Any]
    refusal: VoxError | None = None

    def passed(self) -> ScriptScores | HeardScores:
        if self.refusal is not None:
            raise self.refusal
        assert self.scores is not None
        return self.scores


class Enrollment:
    """Runs the checks and writes the voice. One instance per process, shared by requests."""

    def __init__(
        self,
        *,
        settings: Settings,
        db: Database,
        audit: AuditTrail,
        engines: EngineRegistry,
        consents: ConsentService,
        registry: VoiceRegistry,
        script_checker: Callable[[], ScriptChecker],
        cloner: VoiceCloner,
        policy: EnrollmentPolicy | None = None,
        synthetic: Callable[[], SyntheticAudioCheck | None] | None = None,
        heard_checker: Callable[[], HeardScriptChecker] | None = None,
        attempts: AttemptGuard | None = None,
        synthetic_speech: Callable[[], SpoofDetector] | None = None,
    ) -> None:
        self.settings = settings
        self.db = db
        self.audit = audit
        self.engines = engines
        self.consents = consents
        self.registry = registry
        self._script_checker = script_checker
        self.cloner = cloner
        self._synthetic = synthetic
        self._heard_checker = heard_checker
        self.attempts = attempts
        #: the synthetic-speech detector for the consent recording; None: not judged (setting off)
        self.synthetic_speech = synthetic_speech
        self.policy = policy or EnrollmentPolicy.from_settings(settings)

    # -- decoding and measuring -----------------------------------------------------------------------------
    def _decode(self, upload: Upload, label: str, max_seconds: float) -> tuple[np.ndarray, int]:
        try:
            audio = decode(
                upload.data,
                max_bytes=self.settings.max_upload_bytes,
                max_seconds=max_seconds,
                target_sr=ANALYSIS_RATE,
                timeout_s=DECODE_TIMEOUT_S,
            )
        except VoxError as exc:
            message = exc.message
            if exc.code == "audio_too_long":
                message = f"the audio is longer than the {max_seconds:g} s this file may have"
            raise VoxError(exc.code, f"{label}: {message}", exc.status, file=label, **exc.details) from None
        return audio.samples, audio.source_sample_rate

    def _file(
        self,
        upload: Upload,
        label: str,
        max_seconds: float,
        vad: Any,
        *,
        consent_id: str,
        actor: str | None,
        min_speech_s: float | None = None,
    ) -> FileCheck:
        """Decode one file within its bounds, look for a voxvault watermark, measure it and judge it."""
        audio, rate = self._decode(upload, label, max_seconds)
        finder = self._synthetic() if self._synthetic is not None else None
        found = finder.find(label, audio, ANALYSIS_RATE) if finder is not None else None
        marked = None if finder is None else found is not None
        if finder is not None and found is not None:
            # synthetic: refused, and audited as attempted misuse
            details = found.details()
            self.audit.record("consent.synthetic_audio", actor=actor, target=consent_id, details=details)
            return FileCheck(label, None, marked, finder.refusal(found))
        m = measure(label, audio, rate, vad)
        try:
            check_file(m, self.policy.quality, min_speech_s=min_speech_s)
        except VoxError as exc:
            return FileCheck(label, m, marked, exc)
        return FileCheck(label, m, marked)

    def _files(
        self, recording: Upload, samples: list[Upload], *, consent_id: str, actor: str | None
    ) -> Iterator[FileCheck]:
        """The recording, then each sample, one at a time: the caller records each file's scores and stops
        at the first refusal. The samples share one duration budget."""
        vad = self.engines.vad()
        yield self._file(
            recording,
            "recording",
            MAX_RECORDING_SECONDS,
            vad,
            consent_id=consent_id,
            actor=actor,
            min_speech_s=self.policy.quality.min_recording_speech_s,
        )
        budget = float(self.settings.max_upload_seconds)
        for i, upload in enumerate(samples):
            label = sample_label(i, upload)
            if budget <= 0:
                raise VoxError(
                    "audio_too_long",
                    f"{label}: the samples are longer than {self.settings.max_upload_seconds:g} s in total",
                    413,
                    file=label,
                )
            checked = self._file(upload, label, budget, vad, consent_id=consent_id, actor=actor)
            budget -= checked.measures.duration_s if checked.measures is not None else 0.0
            yield checked

    def _measure_all(
        self, checks: EnrollmentChecks, recording: Upload, samples: list[Upload], attempt: Attempt
    ) -> tuple[AudioMeasures, list[AudioMeasures]]:
        measured: list[AudioMeasures] = []
        for f in self._files(recording, samples, consent_id=attempt.consent.id, actor=attempt.actor):
            scores = f.measures.scores() if f.measures is not None else None
            checks.add_file(f.label, marked=f.marked, scores=scores, passed=f.refusal is None)
            measured.append(f.passed())
        return measured[0], measured[1:]

    def _judge_synthetic(self, checks: EnrollmentChecks, rec_m: AudioMeasures, attempt: Attempt) -> None:
        """The consent recording must not sound like the project's own engine (watermark stripped or not):
        refused with ``synthetic_audio`` (measure ``synthetic_speech``) and audited, scores only."""
        if self.synthetic_speech is None:
            return
        judged = self.synthetic_speech().judge(rec_m.label, rec_m.audio, ANALYSIS_RATE)
        checks.synthetic_speech = judged.numbers()
        if judged.synthetic:
            details = {"file": rec_m.label, "measure": "synthetic_speech", **judged.numbers()}
            self.audit.record(
                "consent.synthetic_audio", actor=attempt.actor, target=attempt.consent.id, details=details
            )
            log.info("synthetic speech file=%s score=%.3f", rec_m.label, judged.score)
            raise SpoofDetector.refusal(judged)

    def _validate_request(self, samples: list[Upload] | None) -> None:
        if samples is not None:
            if not samples:
                raise VoxError("missing_samples", "upload at least one voice sample file ('samples')", 422)
            if len(samples) > self.policy.max_files:
                raise VoxError(
                    "too_many_files", f"at most {self.policy.max_files} sample files per enrollment", 422
                )

    def _start(
        self, consent_id: str, project_id: str | None, challenge: str, recording: Upload, actor: str | None
    ) -> Attempt:
        row = self.consents.check_open(consent_id, project_id, actor=actor)
        if self.attempts is not None:
            self.attempts.check(actor, row.project_id, row.speaker_name)
        try:
            self.consents.check_challenge(row, challenge)
        except VoxError:
            self._count_refusal(row, actor)
            raise
        if not recording.data:
            raise VoxError("invalid_audio", "recording: the upload is empty", 422, file="recording")
        sha = hashlib.sha256(recording.data).hexdigest()
        if not self.consents.claim(row.id, sha):
            raise VoxError("challenge_used", "this consent's one-time code has already been used", 409)
        return Attempt(row, sha, challenge, recording, actor)

    def _count_refusal(self, row: Consent, actor: str | None) -> None:
        if self.attempts is not None:
            self.attempts.refused(actor, row.project_id, row.speaker_name, consent_id=row.id)

    def _check_replay(self, attempt: Attempt) -> None:
        if self.consents.seen_before(attempt.sha, exclude=attempt.consent.id):
            raise VoxError(
                "recording_replayed",
                "recording: this exact recording was submitted before; record the new script live",
                409,
                file="recording",
            )

    def _hear_script(self, attempt: Attempt, rec_m: AudioMeasures) -> ScriptCheck:
        """Whisper hears the whole statement (names included) when configured; else PocketSphinx's grammar."""
        row = attempt.consent
        checker: ScriptChecker | HeardScriptChecker = (
            self._heard_checker() if self._heard_checker is not None else self._script_checker()
        )
        try:
            scores = checker.check(
                rec_m.audio,
                speaker_name=row.speaker_name,
                organization=row.organization_name,
                purpose=row.purpose,
                challenge=attempt.challenge,
            )
        except VoxError as exc:
            hidden = ("file", "measure", "threshold", "heard")
            return ScriptCheck(None, {k: v for k, v in exc.details.items() if k not in hidden}, exc)
        return ScriptCheck(scores, scores.numbers())

    def _judges(self, encoder: Any) -> dict[str, Any]:
        """GE2E (the encoder clones are made with) and CAM++ (one no clone objective uses), when enabled."""
        judges = {"ge2e": encoder}
        if self.settings.consent_campp:
            judges["campp"] = self.engines.speaker_named("campp")
        return judges

    def _refused(
        self, attempt: Attempt, exc: BaseException, checks: EnrollmentChecks, voice_id: str | None
    ) -> None:
        """A refusal (or a crash) after the code was spent: the consent keeps the reason and the scores."""
        doing = self._doing(voice_id)
        error = exc if isinstance(exc, VoxError) else VoxError("internal_error", f"{doing} failed")
        self.consents.refuse(attempt.consent.id, error, checks, actor=attempt.actor, voice_id=voice_id)
        if isinstance(exc, VoxError):
            self._count_refusal(attempt.consent, attempt.actor)
            log.info("%s refused consent=%s code=%s", doing, attempt.consent.id, exc.code)

    @staticmethod
    def _doing(voice_id: str | None) -> str:
        return "enrollment" if voice_id is None else "verification"

    # -- enrollment ---------------------------------------------------------------------------------------
    def enroll(
        self,
        *,
        consent_id: str,
        project_id: str | None,
        challenge: str,
        recording: Upload,
        samples: list[Upload],
        name: str | None = None,
        actor: str | None = None,
    ) -> VoiceView:
        """Verify the consent and the samples, then create the voice; returns the voice's description."""
        self._validate_request(samples)
        voice_name = " ".join((name or "").split())[:200]
        t0 = time.perf_counter()
        attempt = self._start(consent_id, project_id, challenge, recording, actor)
        row = attempt.consent
        voice_id = new_id()
        checks = EnrollmentChecks(thresholds=self.policy.numbers())
        try:
            self._check_replay(attempt)
            rec_m, sample_ms = self._measure_all(checks, recording, samples, attempt)
            self._judge_synthetic(checks, rec_m, attempt)
            checks.total_speech_s = round(check_total_speech(sample_ms, self.policy.quality), 3)
            encoder = self.engines.speaker()
            checks.splits = {}
            for m in sample_ms:
                split = speaker_split(encoder, m, self.policy.identity)
                checks.add_split(m.label, split.numbers())
                check_one_speaker(split, m, self.policy.identity)
            heard = self._hear_script(attempt, rec_m)
            checks.script = heard.numbers
            script = heard.passed()
            rec_emb = embed_measures(encoder, [rec_m])
            voice_emb = embed_measures(encoder, sample_ms)
            similarity = cosine(rec_emb, voice_emb)
            checks.speaker_similarity = round(similarity, 4)
            matches = match_files(self._judges(encoder), rec_m, sample_ms)
            checks.file_similarity = {m.file: m.numbers() for m in matches}
            shorter = min(rec_m.speech_s, sum(m.speech_s for m in sample_ms))
            check_same_speaker(similarity, self.policy.identity, shorter)
            check_each_file(matches, self.policy.identity)
            speech = np.concatenate([speech_only(m.audio, m.segments) for m in sample_ms])
            clone = self.cloner.clone(voice_emb, speech, ANALYSIS_RATE)
            now = utcnow()
            days = self.settings.retain_samples_days
            voice = NewVoice(
                id=voice_id,
                project_id=row.project_id,
                name=voice_name or row.speaker_name,
                engine=self.settings.tts_engine,
                consent_id=row.id,
                expires_at=row.expires_at,
                embedding=voice_emb,
                clone=clone,
                samples=[upload.data for upload in samples],
                samples_until=now + dt.timedelta(days=days) if days > 0 else None,
                scores=checks.to_json(),
            )
            self._store(attempt, voice, script, checks, now)
        except BaseException as exc:
            self.registry.delete_all_blobs(voice_id)
            self._refused(attempt, exc, checks, None)
            raise
        log.info("enrollment done consent=%s voice=%s in %.2fs", row.id, voice_id, time.perf_counter() - t0)
        return self.registry.get(voice_id, row.project_id)

    def _evidence(
        self,
        attempt: Attempt,
        voice_id: str,
        script: ScriptScores | HeardScores,
        checks: EnrollmentChecks,
        verified_at: dt.datetime,
    ) -> bytes:
        """The consent artifact: a zip with the record (JSON) and the recording exactly as uploaded."""
        row, recording, challenge = attempt.consent, attempt.recording, attempt.challenge
        ext = safe_filename(recording.filename, "recording").rsplit(".", 1)[-1].lower()
        ext = ext if ext.isalnum() and len(ext) <= 5 else "bin"
        record = {
            "consent_id": row.id,
            "voice_id": voice_id,
            "project_id": row.project_id,
            "speaker_name": row.speaker_name,
            "organization": row.organization_name,
            "purpose": row.purpose,
            "script": build_script(row.speaker_name, row.organization_name, row.purpose, challenge.split()),
            "challenge": challenge,
            "created_at": row.created_at.isoformat(),
            "challenge_expires_at": row.challenge_expires_at.isoformat(),
            "verified_at": verified_at.isoformat(),
            "expires_at": row.expires_at.isoformat() if row.expires_at else None,
            "recording": {
                "sha256": attempt.sha,
                "bytes": len(recording.data),
                "filename": safe_filename(recording.filename, "recording"),
                "content_type": recording.content_type,
            },
            "transcript": script.transcript,
            "heard_code": script.heard_code,
            "heard": script.evidence() if isinstance(script, HeardScores) else None,
            "scores": checks.to_json(),
            "actor": attempt.actor,
        }
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_STORED) as zf:
            zf.writestr("consent.json", json.dumps(record, indent=2, default=str))
            zf.writestr(f"recording.{ext}", recording.data)
        return buf.getvalue()

    def _store(
        self,
        attempt: Attempt,
        voice: NewVoice,
        script: ScriptScores | HeardScores,
        checks: EnrollmentChecks,
        now: dt.datetime,
    ) -> None:
        """Seal the evidence, then the registry writes the voice and the consent turns verified, together."""
        row = attempt.consent
        evidence = self._evidence(attempt, voice.id, script, checks, now)
        evidence_key = self.registry.put_sealed(voice.id, f"consents/{row.id}", evidence)

        def verified(s: Session) -> None:
            self.consents.mark_verified_in(
                s,
                row.id,
                attempt.sha,
                at=now,
                checks=checks,
                voice_id=voice.id,
                evidence_blob=evidence_key,
                during="enrollment",
            )

        retention = self.registry.create(voice, at=now, within=verified)
        self.consents.record_verified(row.id, voice.id, checks, actor=attempt.actor)
        self.audit.record(
            "voice.created",
            actor=attempt.actor,
            target=voice.id,
            details={"consent_id": row.id, "samples": len(voice.samples), "retention": retention},
        )

    # -- renewal ------------------------------------------------------------------------------------------
    def _references(self, voice_id: str) -> list[AudioMeasures]:
        """The enrollment recording and any retained samples, measured (no quality gate: kept as given)."""
        vad = self.engines.vad()
        longest = max(MAX_RECORDING_SECONDS, float(self.settings.max_upload_seconds))
        out = []
        for label, data in renewal_references(self.db, self.registry, voice_id):
            audio, rate = self._decode(Upload(label, data), label, longest)
            out.append(measure(label, audio, rate, vad))
        return out

    def verify_for_voice(
        self,
        *,
        consent_id: str,
        project_id: str | None,
        challenge: str,
        recording: Upload,
        voice_id: str,
        actor: str | None = None,
    ) -> ConsentView:
        """Verify a new consent recording for an existing voice (renewal); the voice is changed by PATCH."""
        self.registry.get(voice_id, project_id)  # 404 before the code is spent
        attempt = self._start(consent_id, project_id, challenge, recording, actor)
        row = attempt.consent
        checks = EnrollmentChecks(thresholds=self.policy.numbers())
        written = False
        try:
            self._check_replay(attempt)
            rec_m, _ = self._measure_all(checks, recording, [], attempt)
            self._judge_synthetic(checks, rec_m, attempt)
            heard = self._hear_script(attempt, rec_m)
            checks.script = heard.numbers
            script = heard.passed()
            encoder = self.engines.speaker()
            similarity = cosine(
                embed_measures(encoder, [rec_m]), self.registry.embedding_for(voice_id, project_id)
            )
            checks.speaker_similarity = round(similarity, 4)
            # the same per-file GE2E + CAM++ check as enrollment, against the voice's own recordings
            matches = match_files(self._judges(encoder), rec_m, self._references(voice_id))
            checks.file_similarity = {m.file: m.numbers() for m in matches}
            check_same_speaker(similarity, self.policy.identity)
            check_each_file(matches, self.policy.identity)
            now = utcnow()
            evidence = self._evidence(attempt, voice_id, script, checks, now)
            written = True
            key = self.registry.put_sealed(voice_id, f"consents/{row.id}", evidence)
            self.consents.verify(
                row.id, attempt.sha, at=now, checks=checks, voice_id=voice_id, evidence_blob=key
            )
        except BaseException as exc:
            if written:
                self.registry.blobs.delete(blob_key(voice_id, f"consents/{row.id}"))
            self._refused(attempt, exc, checks, voice_id)
            raise
        self.consents.record_verified(row.id, voice_id, checks, actor=actor)
        return self.consents.view(row.id, project_id)
