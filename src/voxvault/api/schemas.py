"""Request and response bodies. OpenAI-compatible where OpenAI defines the shape."""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from voxvault.governance.keys import CreatedKey, KeyInfo

ResponseFormat = Literal["mp3", "opus", "aac", "flac", "wav", "pcm"]

BINARY: dict[str, Any] = {"type": "string", "format": "binary"}


def multipart_body(required: list[str], properties: dict[str, Any]) -> dict[str, Any]:
    """``openapi_extra`` for a route that reads its multipart form by hand (bounded): the document shows
    the form's fields, and the error rules (api/openapi_errors.py) see that the route takes an upload."""
    schema = {"type": "object", "required": required, "properties": properties}
    return {"requestBody": {"required": True, "content": {"multipart/form-data": {"schema": schema}}}}


class SpeechRequest(BaseModel):
    """``POST /v1/audio/speech`` body, as OpenAI's. Unknown fields are ignored."""

    model_config = ConfigDict(extra="ignore")

    model: str = Field(
        default="tts-1", description="Accepted for compatibility; the configured engine speaks."
    )
    input: str = Field(description="Text (or SSML starting with <speak>) to speak.")
    voice: str = Field(default="kumo", description="Preset id, OpenAI voice name, or a cloned voice id.")
    response_format: ResponseFormat = "mp3"
    speed: float = Field(default=1.0, ge=0.25, le=4.0)
    sample_rate: int | None = Field(default=None, description="Output sample rate (voxvault extension).")
    stream_format: Literal["audio", "sse"] = "audio"

    @field_validator("voice", mode="before")
    @classmethod
    def _voice(cls, v: Any) -> Any:
        # OpenAI also accepts {"id": "voice_..."} for custom voices.
        if isinstance(v, dict) and isinstance(v.get("id"), str):
            return v["id"]
        return v


class VoiceOut(BaseModel):
    voice_id: str
    name: str
    kind: str
    status: str
    description: str = ""
    expires_at: dt.datetime | None = None  # cloned voices: when their consent ends
    # ElevenLabs' fields (LiveKit's list_voices reads ``category``): premade (presets) or cloned.
    category: str | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    preview_url: str | None = None
    settings: dict[str, Any] | None = None


class VoicesOut(BaseModel):
    voices: list[VoiceOut]


class VoiceConsentOut(BaseModel):
    consent_id: str
    status: str
    speaker_name: str
    organization: str
    purpose: str
    verified_at: dt.datetime | None
    expires_at: dt.datetime | None


class VoiceDetailOut(BaseModel):
    voice_id: str
    name: str
    kind: str
    status: str = Field(description="active, revoked, expired (consent past its end) or pending")
    engine: str
    created_at: dt.datetime | None = None
    updated_at: dt.datetime | None = None
    expires_at: dt.datetime | None = None
    revoked_at: dt.datetime | None = None
    consent: VoiceConsentOut | None = None
    retention: dict[str, Any] = Field(default_factory=dict, description="What was kept, and until when.")
    scores: dict[str, Any] = Field(default_factory=dict, description="Every enrollment check's measure.")
    conditioning: dict[str, Any] = Field(default_factory=dict)


class KeyOut(BaseModel):
    id: str
    prefix: str
    name: str
    project_id: str | None
    scopes: list[str]
    voice_ids: list[str] | None
    created_at: dt.datetime | None
    expires_at: dt.datetime | None
    revoked_at: dt.datetime | None = None
    last_used_at: dt.datetime | None = None
    state: str = "active"

    @classmethod
    def of(cls, k: KeyInfo) -> KeyOut:
        return cls(
            id=k.id,
            prefix=k.prefix,
            name=k.name,
            project_id=k.project_id,
            scopes=k.scopes,
            voice_ids=k.voice_ids,
            created_at=k.created_at,
            expires_at=k.expires_at,
            revoked_at=k.revoked_at,
            last_used_at=k.last_used_at,
            state=k.state,
        )


class KeyCreated(KeyOut):
    key: str = Field(description="The secret. Shown this once; only its SHA-256 is stored.")

    @classmethod
    def created(cls, c: CreatedKey) -> KeyCreated:
        return cls(
            id=c.id,
            prefix=c.prefix,
            name=c.name,
            project_id=c.project_id,
            scopes=c.scopes,
            voice_ids=c.voice_ids,
            created_at=c.created_at,
            expires_at=c.expires_at,
            key=c.secret,
        )


class BatchOut(BaseModel):
    id: str
    status: str
    total: int
    done: int
    failed: int
    skipped: int
    pending: int
    audio_seconds: float
    error: str | None
    created_at: str
    updated_at: str
    manifest_url: str
    errors_url: str


class BatchErrorOut(BaseModel):
    id: str
    code: str
    message: str


class BatchErrorsOut(BaseModel):
    errors: list[BatchErrorOut]
