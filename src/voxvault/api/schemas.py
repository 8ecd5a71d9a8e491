"""Request and response bodies. OpenAI-compatible where OpenAI defines the shape."""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

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
