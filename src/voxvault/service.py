"""The ``VoxVault`` facade: one object that owns settings, engines, storage and the speech pipeline.

The HTTP API, the CLI and Python users all go through it, so behaviour is the same everywhere.
Engines load lazily on first use and are then shared by every request.
"""

from __future__ import annotations

import dataclasses
import importlib.metadata
import logging
import time
from collections.abc import Callable
from functools import cached_property
from typing import TYPE_CHECKING, Any

from voxvault.cloning.cloner import InstantCloner
from voxvault.cloning.conditioning import StyleConditioner
from voxvault.config import Settings
from voxvault.engines.registry import EngineRegistry
from voxvault.errors import VoxError
from voxvault.governance.audit import AuditTrail, ChainKeys
from voxvault.governance.crypto import Envelope, KeyLocation, KeyManager, LocalKeyManager, key_location
from voxvault.governance.keys import CreatedKey, KeyService, Principal
from voxvault.governance.provenance import Provenance
from voxvault.governance.ratelimit import SpeechLimits, open_rate_limiter
from voxvault.governance.reseal import reseal_personal_fields
from voxvault.governance.text_hash import TEXT_HASH, TextHasher
from voxvault.store.blobs import BlobStore, open_blob_store
from voxvault.store.db import Database
from voxvault.store.models import Project
from voxvault.synthesis import RenderedSpeech, SpeechPipeline, VoiceStyle
from voxvault.synthesis.generation import GenerationService
from voxvault.text import TextFrontend
from voxvault.voices.attempts import AttemptGuard, AttemptPolicy
from voxvault.voices.catalog import VoiceCatalog, VoiceInfo
from voxvault.voices.consent import ConsentService
from voxvault.voices.enrollment import Enrollment
from voxvault.voices.lifecycle import OutputErasure, VoiceRegistry
from voxvault.voices.spoof import shipped_detector

if TYPE_CHECKING:
    from voxvault.cloning.instant_decoder import InstantDecoder
    from voxvault.engines.watermark import Watermarker
    from voxvault.voices.script_check import ScriptChecker
    from voxvault.voices.script_heard import HeardScriptChecker
    from voxvault.voices.synthetic import SyntheticAudioCheck

log = logging.getLogger(__name__)


class VoxVault:
    """Entry point of the Python API.

    >>> vv = VoxVault()
    >>> speech = vv.speak("Hello world.", voice="alpha", format="mp3")
    >>> open("hello.mp3", "wb").write(speech.audio)
    """

    def __init__(self, settings: Settings | None = None, *, key_manager: KeyManager | None = None) -> None:
        """``key_manager``: a KMS or HSM behind the ``KeyManager`` interface instead of the local key."""
        self.settings = (settings or Settings()).prepare()
        self.engines = EngineRegistry(self.settings)
        self._custom_keys = key_manager

    # -- storage and governance (opened on first use; the schema is migrated then) ------------------------
    @cached_property
    def db(self) -> Database:
        db = Database(self.settings.resolved_database_url)
        db.migrate()
        # Personal fields are sealed at rest; rows an earlier version wrote in clear are sealed now.
        db.seal_with(self.envelope)
        with db.session() as s:
            resealed = reseal_personal_fields(s)
        if resealed:
            db.scrub()
            log.info("sealed the personal fields of %d rows written in clear", resealed)
        return db

    @cached_property
    def blobs(self) -> BlobStore:
        return open_blob_store(self.settings.resolved_blob_url, s3_endpoint_url=self.settings.s3_endpoint_url)

    @cached_property
    def key_manager(self) -> LocalKeyManager:
        """The local master keys (environment or key file). A file inside the data dir is warned about
        where it matters, once (server start, ``voxvault doctor``, ``voxvault keys``): ``key_location``."""
        if self.settings.master_key is not None:
            return LocalKeyManager.from_env_value(self.settings.master_key.get_secret_value())
        return LocalKeyManager.from_file(self.settings.resolved_master_key_file)

    @property
    def key_location(self) -> KeyLocation:
        return key_location(
            from_env=self.settings.master_key is not None,
            key_file=self.settings.resolved_master_key_file,
            data_dir=self.settings.data_dir,
            custom=self._custom_keys is not None,
        )

    @cached_property
    def envelope(self) -> Envelope:
        return Envelope(self._custom_keys or self.key_manager)

    @cached_property
    def keys(self) -> KeyService:
        return KeyService(self.db, self.audit)

    @cached_property
    def audit(self) -> AuditTrail:
        # Keyed chain and checkpoint outside the database (issue 29, finding 5).
        return AuditTrail(self.db, ChainKeys(self.blobs, self.envelope))

    def bootstrap(self) -> CreatedKey | None:
        """First start: create the default tenant and an admin key (returned once), unless keys exist.

        With ``VOXVAULT_BOOTSTRAP_KEY`` set, that value becomes the admin key (automated deployments).
        """
        if self.keys.count() > 0:
            return None
        org_id, project_id = self.keys.ensure_default_project()
        secret = self.settings.bootstrap_key.get_secret_value() if self.settings.bootstrap_key else None
        try:
            return self.keys.create(
                org_id=org_id,
                project_id=project_id,
                scopes=["admin"],
                name="bootstrap admin",
                secret=secret,
                bootstrap=True,
            )
        except VoxError as exc:
            if exc.code == "key_exists":  # another process started at the same time with the same key
                return None
            raise

    @cached_property
    def limits(self) -> SpeechLimits:
        """Speech rate limits per key and per voice (Redis when ``VOXVAULT_REDIS_URL`` is set)."""
        return SpeechLimits(
            open_rate_limiter(self.settings.redis_url),
            self.audit,
            per_key=self.settings.rate_limit_per_key_per_minute,
            per_voice=self.settings.rate_limit_per_voice_per_minute,
        )

    @cached_property
    def frontend(self) -> TextFrontend:
        return TextFrontend(
            max_phonemes=self.engines.tts().max_phonemes, max_breaks=self.settings.max_ssml_breaks
        )

    @cached_property
    def pipeline(self) -> SpeechPipeline:
        return SpeechPipeline(
            self.engines.tts(),
            self.frontend,
            loudness_lufs=self.settings.loudness_lufs,
            max_input_chars=self.settings.max_input_chars,
            max_audio_s=self.settings.max_audio_seconds,
            text_hash=self.text_hasher.new,
            adaptable_tts=self.engines.adaptable_tts,
            adapted_on_tts=self.settings.adapted_voice_engine == "onnxruntime"
            or (self.settings.adapted_voice_engine == "auto" and self.settings.device == "cpu"),
            follow_as_trained=self.settings.adapted_voice_engine == "auto",
        )

    @cached_property
    def catalog(self) -> VoiceCatalog:
        return VoiceCatalog(self.engines.tts(), cloned=self.voice_registry)

    # -- consent and cloned voices (docs/consent.md) -------------------------------------------------------
    @cached_property
    def voice_registry(self) -> VoiceRegistry:
        from voxvault.jobs.erasure import erase_voice_outputs

        def erase_outputs(voice_id: str) -> OutputErasure:
            return erase_voice_outputs(self, voice_id)

        return VoiceRegistry(self.db, self.blobs, self.envelope, self.audit, erase_outputs)

    @cached_property
    def consents(self) -> ConsentService:
        return ConsentService(
            self.db,
            self.audit,
            challenge_ttl_s=self.settings.consent_challenge_ttl_s,
            max_days=self.settings.consent_max_days,
        )

    @cached_property
    def script_checker(self) -> ScriptChecker:
        from voxvault.voices.script_check import ScriptChecker

        return ScriptChecker()

    @cached_property
    def conditioner(self) -> StyleConditioner:
        styles = self.catalog.preset_styles()

        def synthesize(text: str, preset: str) -> tuple[Any, int]:
            speech = self.speak(text, voice=preset, format="pcm")
            return speech.samples, speech.sample_rate

        tts = self.engines.tts()
        return StyleConditioner(
            styles,
            self.engines.speaker(),
            synthesize,
            cache_dir=self.settings.resolved_cache_dir,
            engine_id=f"{type(tts).__module__}.{tts.name}:{self.settings.kokoro_precision}",
        )

    @cached_property
    def instant_decoder(self) -> InstantDecoder | None:
        """The enrollment's decoder step, when enabled and the serving engine can speak its biases."""
        from voxvault.cloning.instant_decoder import InstantDecoder

        if not self.settings.instant_decoder:
            return None
        return InstantDecoder.for_engine(
            self.engines.tts(),
            self.engines.speaker(),
            prior=self.settings.instant_decoder_prior,
            predicted=self.settings.instant_decoder_embedding == "predicted",
            pitch=self.settings.instant_pitch,
        )

    @cached_property
    def enrollment(self) -> Enrollment:
        return Enrollment(
            settings=self.settings,
            db=self.db,
            audit=self.audit,
            engines=self.engines,
            consents=self.consents,
            registry=self.voice_registry,
            script_checker=lambda: self.script_checker,
            cloner=InstantCloner(lambda: self.conditioner, lambda: self.instant_decoder),
            synthetic=lambda: self.synthetic_check,
            heard_checker=self._heard_checker_factory(),
            synthetic_speech=shipped_detector if self.settings.consent_synthetic_speech else None,
            attempts=AttemptGuard(
                self.db,
                self.audit,
                AttemptPolicy(
                    slow_after=self.settings.consent_refusals_before_cooldown,
                    cooldown_s=self.settings.consent_refusal_cooldown_s,
                    lock_after=self.settings.consent_refusals_before_lock,
                    lock_s=self.settings.consent_lock_s,
                ),
                digest=self.text_hasher.hexdigest,
            ),
        )

    def _heard_checker_factory(self) -> Callable[[], HeardScriptChecker] | None:
        return (lambda: self.heard_checker) if self.settings.consent_script_check == "whisper" else None

    @property
    def heard_checker(self) -> HeardScriptChecker:
        """The consent script heard by Whisper: name, organisation, purpose and code (docs/consent.md).
        Built per use, so an idle Whisper can be unloaded (engine_idle_ttl_s) instead of held here."""
        from voxvault.voices.script_heard import EnglishWhisper, HeardScriptChecker

        return HeardScriptChecker(EnglishWhisper(self.engines.transcriber()))

    @cached_property
    def synthetic_check(self) -> SyntheticAudioCheck:
        """Consent audio carrying a voxvault mark (this server's, the built-in or a listed key) is refused."""
        from voxvault.engines.watermark import DEFAULT_KEY, Watermarker
        from voxvault.voices.synthetic import SyntheticAudioCheck, watermarkers

        listed = self.settings.consent_watermark_keys
        keys = [k.strip().encode() for k in (listed.get_secret_value() if listed else "").split(",")]
        own = self.settings.watermark_key
        server = own.get_secret_value().encode() if own else DEFAULT_KEY
        found = watermarkers(server, DEFAULT_KEY, [k for k in keys if k], Watermarker)
        return SyntheticAudioCheck(found, self.provenance.generation)

    @cached_property
    def generation(self) -> GenerationService:
        """Every output goes through it: record opened, watermark attached, record finished once."""
        return GenerationService(
            lambda: self.db,
            lambda: self.audit,
            pipeline=lambda: self.pipeline,
            watermarker=lambda: self.watermarker,
            text_hash=TEXT_HASH,
        )

    @cached_property
    def text_hasher(self) -> TextHasher:
        """Keyed digests of spoken text for records (audit finding 9): ``text_hasher.hexdigest(text)``."""
        return TextHasher(self.blobs, self.envelope)

    @cached_property
    def watermarker(self) -> Watermarker:
        from voxvault.engines.watermark import DEFAULT_KEY, Watermarker  # SciPy's FFT: loaded when needed

        key = self.settings.watermark_key.get_secret_value().encode() if self.settings.watermark_key else None
        return Watermarker(key or DEFAULT_KEY)

    @cached_property
    def provenance(self) -> Provenance:
        return Provenance(
            self.watermarker,
            self.db,
            self.audit,
            max_bytes=self.settings.max_upload_bytes,
            max_seconds=self.settings.max_upload_seconds,
        )

    def may_see_generation(self, principal: Principal, record: dict[str, object]) -> bool:
        """Generation records are disclosed to the operator org, or to the org whose key made the output."""
        if principal.org_id == self.keys.operator_org_id():
            return True
        key_id = record.get("key_id")
        return isinstance(key_id, str) and key_id in self.keys.org_key_ids(principal.org_id)

    def voice_for(self, principal: Principal, voice_id: str) -> VoiceStyle:
        """Resolve a voice for a caller: tenant, key voice list and consent status all enforced here."""
        style = self.catalog.resolve(voice_id, project_id=principal.project_id)
        if not principal.may_use_voice(style.voice_id):
            self.audit.record(
                "access.denied",
                actor=principal.key_id,
                target=style.voice_id,
                details={"reason": "voice_not_allowed"},
            )
            raise VoxError("voice_not_allowed", f"this API key may not use voice {voice_id!r}", 403)
        self.limits.check(principal, style.voice_id)
        return style

    def lexicon_for(self, principal: Principal) -> dict[str, str]:
        with self.db.session() as s:
            project = s.get(Project, principal.project_id)
            return dict(project.lexicon or {}) if project is not None else {}

    def voices(self) -> list[VoiceInfo]:
        return self.catalog.presets()

    def speak(
        self,
        text: str,
        *,
        voice: str | None = None,
        format: str = "wav",
        speed: float = 1.0,
        sample_rate: int | None = None,
    ) -> RenderedSpeech:
        """Synthesize ``text`` completely and return the encoded file plus its samples.

        Like every output, it is watermarked with the id of a generation record and audited (actor: none,
        i.e. the local operator).
        """
        t0 = time.perf_counter()
        style = self.catalog.resolve(voice or self.settings.default_voice)
        prepared = self.pipeline.prepare(text, style, fmt=format, speed=speed, sample_rate=sample_rate)
        return self.generation.render(prepared, None, started=t0)

    def warm_up(self) -> None:
        """Load every engine the speech path needs and run one tiny synthesis (first request is fast).

        Not a generation: the audio is thrown away, so nothing is recorded, audited or counted (the audit
        log and the generation count show what users made, not the server starting).
        """
        style = self.catalog.resolve(self.settings.default_voice)
        prepared = self.pipeline.prepare("Ready.", style, fmt="pcm")
        self.generation.rehearse(prepared)
        _ = self.db  # the database, migrated, before the first request

    def doctor(self) -> dict[str, Any]:
        """Load each engine, time it, and report versions: the first thing to run when something is off."""
        report: dict[str, Any] = {"versions": {}, "engines": {}, "settings": self.settings.public_dict()}
        location = self.key_location
        report["master_key"] = {**dataclasses.asdict(location), "warning": location.warning}
        for pkg in ("voxvault", "onnxruntime", "torch", "av", "fastapi", "sqlalchemy", "pocketsphinx"):
            try:
                report["versions"][pkg] = importlib.metadata.version(pkg)
            except importlib.metadata.PackageNotFoundError:
                report["versions"][pkg] = None
        for kind, getter in (
            ("tts", self.engines.tts),
            ("speaker", self.engines.speaker),
            ("vad", self.engines.vad),
            ("asr", self.engines.asr),
        ):
            t0 = time.perf_counter()
            try:
                engine = getter()
                report["engines"][kind] = {
                    "name": getattr(engine, "name", "?"),
                    "ok": True,
                    "load_s": round(time.perf_counter() - t0, 3),
                }
            except Exception as exc:  # noqa: BLE001 - doctor reports every failure instead of stopping
                report["engines"][kind] = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
        if report["engines"]["tts"]["ok"]:
            t0 = time.perf_counter()
            speech = self.speak("The quick brown fox jumps over the lazy dog.", format="wav")
            took = time.perf_counter() - t0
            report["engines"]["tts"]["sample"] = {
                "audio_s": round(speech.duration, 3),
                "synth_s": round(took, 3),
                "rtf": round(took / max(speech.duration, 1e-6), 3),
            }
        return report
