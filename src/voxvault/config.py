"""All configuration in one place: environment ``VOXVAULT_*`` first, then an optional TOML/.env file.

Nothing else in the package reads the environment; components receive a ``Settings`` instance.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from platformdirs import user_data_path
from pydantic import Field, SecretStr, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)


def _config_file() -> str | None:
    return os.environ.get("VOXVAULT_CONFIG") or None


def default_data_dir() -> Path:
    """The data dir unless ``VOXVAULT_DATA_DIR`` names one: a per-user folder (``~/.local/share/voxvault``
    on Linux), so ``voxvault serve``, the CLI and ``VoxVault()`` share one database and model cache from any
    working directory, and a script run elsewhere never leaves a new ``./data`` (265 MB) behind."""
    return user_data_path("voxvault", appauthor=False)


class Settings(BaseSettings):
    """Runtime configuration. Env vars are ``VOXVAULT_<FIELD>``; a TOML file via ``VOXVAULT_CONFIG``."""

    model_config = SettingsConfigDict(env_prefix="VOXVAULT_", extra="ignore", env_file=None)

    data_dir: Path = Field(
        default_factory=default_data_dir,
        description="Root for the database, blobs and caches; a per-user folder if unset (default_data_dir).",
    )
    database_url: str | None = Field(default=None, description="SQLAlchemy URL; SQLite in data_dir if unset.")
    blob_url: str | None = Field(
        default=None, description="file:///path or s3://bucket/prefix; data_dir/blobs if unset."
    )
    s3_endpoint_url: str | None = None
    cache_dir: Path | None = Field(
        default=None, description="Where joined model weights live; data_dir/cache if unset."
    )
    host: str = "127.0.0.1"
    port: int = 8000
    log_level: str = "info"

    tts_engine: str = "kokoro"
    speaker_engine: str = "ge2e"
    vad_engine: str = "silero"
    asr_engine: str = Field(
        default="pocketsphinx",
        description="Recogniser for internal checks (clone WER, fine-tuning intelligibility): pocketsphinx "
        "(fast, closed vocabulary) or whisper (the asr_model; accurate, slower). Transcription routes always "
        "use Whisper; the consent script check always uses PocketSphinx's grammar search.",
    )
    asr_model: Literal["base", "tiny.en"] = Field(
        default="base",
        description="Whisper model for transcription: base (multilingual, WER 0.02-0.05 on read English) or "
        "tiny.en (English only, about 3x faster). Loaded on first use, never by a server that only speaks.",
    )
    transcriber_engine: Literal["whisper", "fake"] = Field(
        default="whisper",
        description="What the transcription routes, CLI and batch run: whisper (asr_model) or fake "
        "(engines/fake.py: one made-up word per burst of sound, with the fake VAD and speaker encoder as "
        "the diarizer; no weights; for demos and the tests that check the plumbing, not the words).",
    )
    asr_max_seconds: float = Field(
        default=4 * 3600.0, gt=0, description="Longest audio a transcription accepts (decoded in windows)."
    )
    max_concurrent_transcriptions: int = Field(
        default=1, ge=1, description="Transcriptions running at once; more wait in the queue (queue_size)."
    )
    device: str = Field(default="cpu", description="cpu or cuda (PyTorch engines only).")
    kokoro_precision: str = Field(
        default="auto",
        description="auto (int8-vnni where the CPU has VNNI, else int8), int8, int8-vnni or float "
        "(dequantised graph; closest to fp32 but slower on CPU, see docs/benchmarks.md).",
    )
    kokoro_kernels: Literal["auto", "off"] = Field(
        default="auto",
        description="auto (fuse the vocoder's Snake activations into a kernel compiled with the system C "
        "compiler, about 25% faster; the plain graph where none can be built) or off.",
    )
    kokoro_arena_shrinkage: bool = Field(
        default=True,
        description="After each Kokoro call, hand the free part of onnxruntime's CPU memory arena back "
        "(it otherwise keeps the most that overlapping requests ever needed: +265 MB held after bursts of "
        "4; docs/benchmarks.md). Off: a little faster per call, memory keeps its peak.",
    )
    malloc_mmap_threshold_kb: int = Field(
        default=1024,
        ge=0,
        description="voxvault serve: glibc serves blocks of this size or more from their own mappings, "
        "returned to the system when freed (glibc's own threshold climbs to 32 MB, and freed model buffers "
        "below it stay in its per-thread arenas: RSS grew by bursts of requests). 0: glibc's default.",
    )
    adapted_voice_engine: Literal["auto", "onnxruntime", "pytorch"] = Field(
        default="auto",
        description="What speaks fine-tuned voices (decoder adaptation): onnxruntime Kokoro (its fused graph "
        "takes a voice's style biases per call; fast, measured 0.02 lower similarity than as trained) or "
        "PyTorch Kokoro (the model they were trained through). auto: onnxruntime when device is cpu, except "
        "for voices the adaptation job measured clearly closer to their speaker through PyTorch.",
    )
    instant_decoder: bool = Field(
        default=True,
        description="Give each new cloned voice its own decoder style biases at enrollment: one step toward "
        "the speaker along the shipped decoder Jacobian (cloning/instant_decoder.py; milliseconds). "
        "Measured (six test speakers): held-out similarity 0.726 with the decoder prior against 0.639 for "
        "the style alone. Needs an engine that speaks "
        "per-call biases (the fused onnxruntime graph or PyTorch Kokoro); skipped otherwise.",
    )
    instant_decoder_prior: bool = Field(
        default=True,
        description="Start the instant decoder step from the decoder prior: the biases fine-tuning reaches, "
        "predicted from the speaker embedding by a regression learned on 47 other speakers "
        "(cloning/decoder_prior.py). false = the Jacobian step alone.",
    )
    instant_decoder_embedding: Literal["predicted", "spoken"] = Field(
        default="predicted",
        description="How the instant decoder step learns how the voice's instant style sounds: predicted "
        "from the style by the shipped clone embedding map (cloning/clone_embedding.py; milliseconds) or "
        "spoken (the Jacobian's two sentences synthesised and embedded; 0.5-5 s on a 2-core CPU). "
        "predicted falls back to spoken where the map does not fit the engine.",
    )
    instant_pitch: bool = Field(
        default=True,
        description="Give each new cloned voice its speaker's pitch: a factor on the F0 contour that moves "
        "the clone's median F0, predicted from its style by the shipped pitch map (cloning/pitch.py), to "
        "the enrolment's. Without it clones of men spoke 4-6 semitones too high. Applied with the instant "
        "decoder step (same engines).",
    )
    threads: int = Field(default=0, description="Inference threads; 0 = all cores.")
    engine_idle_ttl_s: float = Field(
        default=300.0,
        ge=0,
        description="Unload an engine idle this long (Whisper, CAM++, PyTorch Kokoro...; reloaded on next "
        "use); the default TTS always stays. 0 = never unload.",
    )

    default_voice: str = "kumo"
    loudness_lufs: float = -18.0
    max_input_chars: int = 20_000
    max_audio_seconds: float = Field(
        default=3600.0,
        gt=0,
        description="Most audio one request (or one WebSocket session) may render, estimated before any "
        "synthesis; more is refused with 413 audio_too_long. 20,000 characters of prose at half speed fit.",
    )
    max_ssml_breaks: int = Field(
        default=500, ge=0, description="Most SSML <break> elements in one text (413 too_many_breaks)."
    )
    max_upload_bytes: int = 50 * 1024 * 1024
    max_upload_seconds: float = 600.0
    max_concurrent_syntheses: int = 2
    queue_size: int = 16
    max_first_audio_s: float = Field(
        default=1.5, gt=0, description="Refuse a synthesis (429) whose first audio would take longer."
    )
    stream_send_timeout_s: float = Field(
        default=20.0, gt=0, description="Drop a stream whose client has not taken audio for this long."
    )
    ws_max_message_bytes: int = Field(default=65_536, ge=1024, description="Largest WebSocket text message.")
    ws_inactivity_timeout_s: float = Field(
        default=20.0, gt=0, description="Default idle time before a text-input WebSocket is closed."
    )

    master_key: SecretStr | None = Field(default=None, description="kid:base64 pairs, comma-separated.")
    master_key_file: Path | None = Field(default=None, description="Key file; data_dir/master.key if unset.")
    watermark_key: SecretStr | None = Field(
        default=None, description="Secret that selects the watermark layout; the built-in key if unset."
    )
    consent_watermark_keys: SecretStr | None = Field(
        default=None,
        description="Other servers' watermark keys, comma-separated: consent audio marked by any is refused.",
    )
    bootstrap_key: SecretStr | None = Field(default=None, description="Admin key to create on first start.")
    retain_samples_days: int = Field(default=0, description="Keep raw enrollment samples this long (0 = no).")
    consent_challenge_ttl_s: float = Field(
        default=600.0, gt=0, description="Life of a consent's one-time code."
    )
    consent_max_days: int = Field(default=1825, ge=1, description="Longest consent (and clone) lifetime.")
    enroll_min_speech_s: float = Field(default=10.0, gt=0, description="Speech needed across the samples.")
    enroll_max_files: int = Field(default=20, ge=1, description="Most sample files per enrollment.")
    speaker_match_threshold: float = Field(
        default=0.75, ge=-1, le=1, description="GE2E cosine consent voice vs samples (docs/consent.md)."
    )
    consent_campp: bool = Field(
        default=True, description="Judge consent voice vs each sample file by CAM++ as well as GE2E."
    )
    consent_synthetic_speech: bool = Field(
        default=True,
        description="Refuse a consent recording that the synthetic-speech detector judges made by the "
        "project's engine (voices/spoof.py; docs/consent.md).",
    )
    consent_refusals_before_cooldown: int = Field(
        default=3, ge=1, description="Refused enrollments (per key, tenant, speaker) before each retry waits."
    )
    consent_refusal_cooldown_s: float = Field(default=60.0, ge=0, description="That wait.")
    consent_refusals_before_lock: int = Field(
        default=6, ge=1, description="Refused enrollments within a day that lock the key/tenant/speaker."
    )
    consent_lock_s: float = Field(default=3600.0, ge=0, description="How long such a lock lasts.")
    consent_script_check: str = Field(
        default="whisper",
        description="Who hears the consent script: whisper (names, organisation, purpose, code; asr_model) "
        "or pocketsphinx (grammar pass on the code, statement recall).",
    )
    redis_url: str | None = Field(
        default=None, description="redis://host:6379/0 shares rate limits; in-process if unset."
    )
    rate_limit_per_key_per_minute: int = Field(
        default=120, ge=0, description="Speech requests per API key (0 = off)."
    )
    rate_limit_per_voice_per_minute: int = Field(
        default=60, ge=0, description="Speech requests per voice (0 = off)."
    )
    batch_workers: int = Field(
        default=1, ge=1, description="Synthesis threads per batch job in the API server."
    )
    batch_max_items: int = Field(default=1_000_000, ge=1, description="Most items one batch job may hold.")

    @field_validator("device")
    @classmethod
    def _device(cls, v: str) -> str:
        if v not in {"cpu", "cuda"}:
            raise ValueError("device must be 'cpu' or 'cuda'")
        return v

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        path = _config_file()
        if path:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=path))
        return tuple(sources)

    # Derived locations -------------------------------------------------------------------------------
    @property
    def default_database_file(self) -> Path | None:
        """The SQLite file used when ``database_url`` is unset (None when it is set)."""
        return None if self.database_url else (self.data_dir / "voxvault.db").resolve()

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.default_database_file}"

    @property
    def resolved_blob_url(self) -> str:
        return self.blob_url or (self.data_dir / "blobs").resolve().as_uri()

    @property
    def resolved_cache_dir(self) -> Path:
        return (self.cache_dir or self.data_dir / "cache").resolve()

    @property
    def resolved_master_key_file(self) -> Path:
        return (self.master_key_file or self.data_dir / "master.key").resolve()

    def prepare(self) -> Settings:
        """Create the data and cache directories; returns self for chaining."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.resolved_cache_dir.mkdir(parents=True, exist_ok=True)
        return self

    def public_dict(self) -> dict[str, Any]:
        """Settings safe to print (no credentials in URLs)."""
        d = self.model_dump(mode="json")
        for k in ("database_url", "redis_url"):
            if d.get(k) and "@" in d[k]:
                d[k] = d[k].split("@", 1)[0].rsplit(":", 1)[0] + ":***@" + d[k].split("@", 1)[1]
        return d
