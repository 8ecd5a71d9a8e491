"""Consent-verified enrollment: from a consent recording and voice samples to a stored, speakable voice.

Order of work (cheap refusals first, the expensive models last):

1. the consent is open (code not spent, not expired), the key, tenant and speaker are not locked out by
   earlier refusals (:mod:`voxvault.voices.attempts`), and the echoed code matches its hash;
2. the code is spent (a conditional update: only one attempt per consent ever gets past this line);
3. the recording's bytes were never submitted before (replay);
4. no file carries a voxvault watermark (:mod:`voxvault.voices.synthetic`); every file decodes within
   the byte, duration and time bounds, and passes the quality gates;
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
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sqlalchemy import update

from voxvault.audio.io import decode
from voxvault.cloning.cloner import ClonedVoice, VoiceCloner
from voxvault.cloning.instant_decoder import INSTANT_DECODER_BLOB
from voxvault.config import Settings
from voxvault.engines.registry import EngineRegistry
from voxvault.engines.speaker import cosine
from voxvault.errors import VoxError
from voxvault.governance.audit import AuditTrail
from voxvault.store.db import Database
from voxvault.store.models import Consent, Voice, new_id, utcnow
from voxvault.voices.attempts import AttemptGuard
from voxvault.voices.consent import ConsentService, build_script
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
from voxvault.voices.lifecycle import VoiceRegistry, array_bytes, pack_deltas
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

    def _refuse_synthetic(
        self, label: str, audio: np.ndarray, checks: dict[str, Any], consent_id: str, actor: str | None
    ) -> None:
        """A file carrying a voxvault watermark is synthetic: refused, and audited as attempted misuse."""
        finder = self._synthetic() if self._synthetic is not None else None
        if finder is None:
            return
        found = finder.find(label, audio, ANALYSIS_RATE)
        checks.setdefault("watermark", {})[label] = found is not None
        if found is None:
            return
        self.audit.record("consent.synthetic_audio", actor=actor, target=consent_id, details=found.details())
        raise finder.refusal(found)

    def _measure_all(
        self,
        recording: Upload | None,
        samples: list[Upload],
        checks: dict[str, Any],
        *,
        consent_id: str,
        actor: str | None,
    ) -> tuple[AudioMeasures | None, list[AudioMeasures]]:
        vad = self.engines.vad()
        rec_m = None
        if recording is not None:
            audio, rate = self._decode(recording, "recording", MAX_RECORDING_SECONDS)
            self._refuse_synthetic("recording", audio, checks, consent_id, actor)
            rec_m = measure("recording", audio, rate, vad)
            checks["recording"] = rec_m.scores()
            check_file(rec_m, self.policy.quality, min_speech_s=self.policy.quality.min_recording_speech_s)
        budget = float(self.settings.max_upload_seconds)
        sample_ms: list[AudioMeasures] = []
        checks["samples"] = []
        for i, upload in enumerate(samples):
            label = sample_label(i, upload)
            if budget <= 0:
                raise VoxError(
                    "audio_too_long",
                    f"{label}: the samples are longer than {self.settings.max_upload_seconds:g} s in total",
                    413,
                    file=label,
                )
            audio, rate = self._decode(upload, label, budget)
            self._refuse_synthetic(label, audio, checks, consent_id, actor)
            budget -= len(audio) / ANALYSIS_RATE
            m = measure(label, audio, rate, vad)
            checks["samples"].append(m.scores())
            check_file(m, self.policy.quality)
            sample_ms.append(m)
        return rec_m, sample_ms

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
    ) -> tuple[Consent, str]:
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
        return row, sha

    def _count_refusal(self, row: Consent, actor: str | None) -> None:
        if self.attempts is not None:
            self.attempts.refused(actor, row.project_id, row.speaker_name, consent_id=row.id)

    def _check_replay(self, row: Consent, sha: str) -> None:
        if self.consents.seen_before(sha, exclude=row.id):
            raise VoxError(
                "recording_replayed",
                "recording: this exact recording was submitted before; record the new script live",
                409,
                file="recording",
            )

    def _check_script(
        self, row: Consent, challenge: str, rec_m: AudioMeasures, checks: dict[str, Any]
    ) -> ScriptScores | HeardScores:
        # Whisper hears the whole statement (names included) when configured; else PocketSphinx's grammar
        checker: ScriptChecker | HeardScriptChecker = (
            self._heard_checker() if self._heard_checker is not None else self._script_checker()
        )
        try:
            scores = checker.check(
                rec_m.audio,
                speaker_name=row.speaker_name,
                organization=row.organization_name,
                purpose=row.purpose,
                challenge=challenge,
            )
        except VoxError as exc:
            checks["script"] = {
                k: v for k, v in exc.details.items() if k not in ("file", "measure", "threshold", "heard")
            }
            raise
        checks["script"] = scores.numbers()
        return scores

    def _judges(self, encoder: Any) -> dict[str, Any]:
        """GE2E (the encoder clones are made with) and CAM++ (one no clone objective uses), when enabled."""
        judges = {"ge2e": encoder}
        if self.settings.consent_campp:
            judges["campp"] = self.engines.speaker_named("campp")
        return judges

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
    ) -> dict[str, Any]:
        """Verify the consent and the samples, then create the voice; returns the voice's description."""
        self._validate_request(samples)
        voice_name = " ".join((name or "").split())[:200]
        t0 = time.perf_counter()
        row, sha = self._start(consent_id, project_id, challenge, recording, actor)
        voice_id = new_id()
        checks: dict[str, Any] = {"thresholds": self.policy.numbers()}
        try:
            self._check_replay(row, sha)
            rec_m, sample_ms = self._measure_all(recording, samples, checks, consent_id=row.id, actor=actor)
            assert rec_m is not None
            checks["total_speech_s"] = round(check_total_speech(sample_ms, self.policy.quality), 3)
            encoder = self.engines.speaker()
            checks["splits"] = {}
            for m in sample_ms:
                split = speaker_split(encoder, m, self.policy.identity)
                checks["splits"][m.label] = split.numbers()
                check_one_speaker(split, m, self.policy.identity)
            script = self._check_script(row, challenge, rec_m, checks)
            rec_emb = embed_measures(encoder, [rec_m])
            voice_emb = embed_measures(encoder, sample_ms)
            similarity = cosine(rec_emb, voice_emb)
            checks["speaker_similarity"] = round(similarity, 4)
            matches = match_files(self._judges(encoder), rec_m, sample_ms)
            checks["file_similarity"] = {m.file: m.numbers() for m in matches}
            check_same_speaker(similarity, self.policy.identity)
            check_each_file(matches, self.policy.identity)
            speech = np.concatenate([speech_only(m.audio, m.segments) for m in sample_ms])
            clone = self.cloner.clone(voice_emb, speech, ANALYSIS_RATE)
            voice = self._store(
                row=row,
                sha=sha,
                voice_id=voice_id,
                name=voice_name or row.speaker_name,
                recording=recording,
                samples=samples,
                challenge=challenge,
                script=script,
                checks=checks,
                embedding=voice_emb,
                clone=clone,
                actor=actor,
            )
        except VoxError as exc:
            self.registry.delete_all_blobs(voice_id)
            self.consents.refuse(row.id, exc, checks, actor=actor, voice_id=None)
            self._count_refusal(row, actor)
            log.info("enrollment refused consent=%s code=%s", row.id, exc.code)
            raise
        except BaseException:
            self.registry.delete_all_blobs(voice_id)
            self.consents.refuse(
                row.id, VoxError("internal_error", "enrollment failed"), checks, actor=actor, voice_id=None
            )
            raise
        log.info("enrollment done consent=%s voice=%s in %.2fs", row.id, voice_id, time.perf_counter() - t0)
        return voice

    def _evidence(
        self,
        *,
        row: Consent,
        sha: str,
        voice_id: str,
        recording: Upload,
        challenge: str,
        script: ScriptScores | HeardScores,
        checks: dict[str, Any],
        verified_at: dt.datetime,
        actor: str | None,
    ) -> bytes:
        """The consent artifact: a zip with the record (JSON) and the recording exactly as uploaded."""
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
                "sha256": sha,
                "bytes": len(recording.data),
                "filename": safe_filename(recording.filename, "recording"),
                "content_type": recording.content_type,
            },
            "transcript": script.transcript,
            "heard_code": script.heard_code,
            "heard": script.evidence() if isinstance(script, HeardScores) else None,
            "scores": checks,
            "actor": actor,
        }
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_STORED) as zf:
            zf.writestr("consent.json", json.dumps(record, indent=2, default=str))
            zf.writestr(f"recording.{ext}", recording.data)
        return buf.getvalue()

    def _store(
        self,
        *,
        row: Consent,
        sha: str,
        voice_id: str,
        name: str,
        recording: Upload,
        samples: list[Upload],
        challenge: str,
        script: ScriptScores | HeardScores,
        checks: dict[str, Any],
        embedding: np.ndarray,
        clone: ClonedVoice,
        actor: str | None,
    ) -> dict[str, Any]:
        now = utcnow()
        reg = self.registry
        evidence_what = f"consents/{row.id}"
        embedding_key = reg.put_sealed(voice_id, "embedding", array_bytes(embedding))
        style_key = reg.put_sealed(voice_id, "style", array_bytes(clone.style))
        decoder = clone.decoder
        if decoder is not None:  # the voice's own decoder biases (cloning/instant_decoder.py)
            reg.put_sealed(voice_id, INSTANT_DECODER_BLOB, pack_deltas(dict(decoder)))
        factor = clone.pitch_factor
        evidence_key = reg.put_sealed(
            voice_id,
            evidence_what,
            self._evidence(
                row=row,
                sha=sha,
                voice_id=voice_id,
                recording=recording,
                challenge=challenge,
                script=script,
                checks=checks,
                verified_at=now,
                actor=actor,
            ),
        )
        days = self.settings.retain_samples_days
        if days > 0:
            for i, upload in enumerate(samples):
                reg.put_sealed(voice_id, f"samples/{i}", upload.data)
            sample_retention = {
                "kept": True,
                "count": len(samples),
                "until": (now + dt.timedelta(days=days)).isoformat(),
            }
        else:
            sample_retention = {"kept": False, "count": len(samples), "deleted_at": now.isoformat()}
        retention = {
            "samples": sample_retention,
            "embedding": {"kept": True, "until": "erasure"},
            "style": {"kept": True, "until": "erasure"},
            "consent_evidence": {"kept": True, "until": "erasure"},
        }
        if decoder is not None:
            retention["decoder"] = {"kept": True, "until": "erasure"}
        consent_scores = {"checks": checks, "voice_id": voice_id}
        with self.db.session() as s:
            result = s.execute(
                update(Consent)
                .where(Consent.id == row.id, Consent.status == "pending", Consent.recording_sha256 == sha)
                .values(status="verified", verified_at=now, scores=consent_scores, evidence_blob=evidence_key)
            )
            if getattr(result, "rowcount", 0) != 1:
                raise VoxError("challenge_used", "this consent changed while the enrollment ran", 409)
            s.add(
                Voice(
                    id=voice_id,
                    project_id=row.project_id,
                    name=name,
                    kind="cloned",
                    status="active",
                    engine=self.settings.tts_engine,
                    consent_id=row.id,
                    embedding_blob=embedding_key,
                    style_blob=style_key,
                    meta={
                        "scores": checks,
                        "conditioning": {
                            "method": clone.method,
                            "weights": clone.weights,
                            "decoder_step": decoder is not None,
                            # the factor on the F0 contour that gives the voice its speaker's pitch
                            "pitch_factor": None if factor is None else round(factor, 4),
                        },
                        "samples": len(samples),
                        "decoder": {"current": INSTANT_DECODER_BLOB if decoder is not None else None},
                    },
                    retention=retention,
                    created_at=now,
                    updated_at=now,
                    expires_at=row.expires_at,
                )
            )
        self.audit.record(
            "consent.verified",
            actor=actor,
            target=row.id,
            details={"voice_id": voice_id, "checks": checks},
        )
        self.audit.record(
            "voice.created",
            actor=actor,
            target=voice_id,
            details={"consent_id": row.id, "samples": len(samples), "retention": retention},
        )
        return self.registry.get(voice_id, row.project_id)

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
    ) -> dict[str, Any]:
        """Verify a new consent recording for an existing voice (renewal); the voice is changed by PATCH."""
        self.registry.get(voice_id, project_id)  # 404 before the code is spent
        row, sha = self._start(consent_id, project_id, challenge, recording, actor)
        checks: dict[str, Any] = {"thresholds": self.policy.numbers()}
        written = False
        try:
            self._check_replay(row, sha)
            rec_m, _ = self._measure_all(recording, [], checks, consent_id=row.id, actor=actor)
            assert rec_m is not None
            script = self._check_script(row, challenge, rec_m, checks)
            encoder = self.engines.speaker()
            similarity = cosine(
                embed_measures(encoder, [rec_m]), self.registry.embedding_for(voice_id, project_id)
            )
            checks["speaker_similarity"] = round(similarity, 4)
            # the same per-file GE2E + CAM++ check as enrollment, against the voice's own recordings
            matches = match_files(self._judges(encoder), rec_m, self._references(voice_id))
            checks["file_similarity"] = {m.file: m.numbers() for m in matches}
            check_same_speaker(similarity, self.policy.identity)
            check_each_file(matches, self.policy.identity)
            now = utcnow()
            what = f"consents/{row.id}"
            evidence = self._evidence(
                row=row,
                sha=sha,
                voice_id=voice_id,
                recording=recording,
                challenge=challenge,
                script=script,
                checks=checks,
                verified_at=now,
                actor=actor,
            )
            written = True
            key = self.registry.put_sealed(voice_id, what, evidence)
            with self.db.session() as s:
                result = s.execute(
                    update(Consent)
                    .where(Consent.id == row.id, Consent.status == "pending", Consent.recording_sha256 == sha)
                    .values(
                        status="verified",
                        verified_at=now,
                        evidence_blob=key,
                        scores={"checks": checks, "voice_id": voice_id},
                    )
                )
                if getattr(result, "rowcount", 0) != 1:
                    raise VoxError("challenge_used", "this consent changed while the verification ran", 409)
        except BaseException as exc:
            if written:
                self.registry.blobs.delete(f"voices/{voice_id}/consents/{row.id}")
            error = exc if isinstance(exc, VoxError) else VoxError("internal_error", "verification failed")
            self.consents.refuse(row.id, error, checks, actor=actor, voice_id=voice_id)
            if isinstance(exc, VoxError):
                self._count_refusal(row, actor)
            raise
        self.audit.record(
            "consent.verified", actor=actor, target=row.id, details={"voice_id": voice_id, "checks": checks}
        )
        return self.consents.view(row.id, project_id)
