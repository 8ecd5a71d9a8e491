"""``GET /v1/models``: the model list both SDKs ask for, from one path in two shapes.

OpenAI's SDK expects ``{"object": "list", "data": [{"id", "object": "model", ...}]}``; ElevenLabs' SDK
calls the same path and expects a bare JSON list of ``{"model_id", "name", "can_do_text_to_speech",
"languages", ...}``. The shape follows how the client authenticates: a request with an ``xi-api-key``
header and no ``Authorization: Bearer`` is an ElevenLabs client (its SDK, Pipecat and LiveKit all send
that header); everything else gets OpenAI's shape. ``?shape=openai|elevenlabs`` overrides the guess.

Every model name is accepted by the speech routes and speaks with the configured engine; the list says
which names a client may send, not that different models exist.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import JSONResponse

from voxvault.api.deps import SettingsDep, VoicesReader
from voxvault.errors import VoxError

router = APIRouter(tags=["models"])

CREATED = 1_735_689_600  # 2025-01-01: a fixed date, so the list does not change between calls


@dataclass(frozen=True)
class OpenAIModel:
    id: str
    purpose: str  # speech | transcription


OPENAI_MODELS = (
    OpenAIModel("tts-1", "speech"),
    OpenAIModel("tts-1-hd", "speech"),
    OpenAIModel("gpt-4o-mini-tts", "speech"),
    OpenAIModel("whisper-1", "transcription"),
    OpenAIModel("gpt-4o-transcribe", "transcription"),
    OpenAIModel("gpt-4o-mini-transcribe", "transcription"),
)


@dataclass(frozen=True)
class ElevenLabsModel:
    model_id: str
    name: str
    tts: bool
    description: str


ELEVENLABS_MODELS = (
    ElevenLabsModel("eleven_multilingual_v2", "Eleven Multilingual v2", True, "voxvault's Kokoro engine"),
    ElevenLabsModel("eleven_flash_v2_5", "Eleven Flash v2.5", True, "voxvault's Kokoro engine"),
    ElevenLabsModel("eleven_turbo_v2_5", "Eleven Turbo v2.5", True, "voxvault's Kokoro engine"),
    ElevenLabsModel("eleven_v3", "Eleven v3", True, "voxvault's Kokoro engine"),
    ElevenLabsModel("scribe_v1", "Scribe v1", False, "voxvault's Whisper transcriber"),
)
ENGLISH = [{"language_id": "en", "name": "English"}]


def is_elevenlabs_client(request: Request) -> bool:
    """An ElevenLabs client: ``xi-api-key`` header and no ``Authorization: Bearer``."""
    bearer = request.headers.get("authorization", "")[:7].lower() == "bearer "
    return bool(request.headers.get("xi-api-key")) and not bearer


def _openai(model: OpenAIModel) -> dict[str, Any]:
    return {"id": model.id, "object": "model", "created": CREATED, "owned_by": "voxvault"}


def _elevenlabs(model: ElevenLabsModel, max_chars: int) -> dict[str, Any]:
    return {
        "model_id": model.model_id,
        "name": model.name,
        "description": model.description,
        "can_do_text_to_speech": model.tts,
        "can_do_voice_conversion": False,
        "can_be_finetuned": False,
        "can_use_style": False,
        "can_use_speaker_boost": False,
        "serves_pro_voices": False,
        "requires_alpha_access": False,
        "token_cost_factor": 0.0,
        "maximum_text_length_per_request": max_chars,
        "max_characters_request_free_user": max_chars,
        "max_characters_request_subscribed_user": max_chars,
        "languages": ENGLISH,
    }


@router.get("/v1/models", response_class=JSONResponse)
def list_models(
    request: Request,
    settings: SettingsDep,
    principal: VoicesReader,
    shape: Annotated[Literal["openai", "elevenlabs"] | None, Query(description="Override the guess.")] = None,
) -> JSONResponse:
    """OpenAI's ``{"object": "list", "data": [...]}``, or ElevenLabs' bare list for ElevenLabs clients."""
    if shape == "elevenlabs" or (shape is None and is_elevenlabs_client(request)):
        max_chars = settings.max_input_chars
        return JSONResponse([_elevenlabs(m, max_chars) for m in ELEVENLABS_MODELS])
    return JSONResponse({"object": "list", "data": [_openai(m) for m in OPENAI_MODELS]})


@router.get("/v1/models/{model_id}", response_class=JSONResponse)
def get_model(model_id: Annotated[str, Path(max_length=64)], principal: VoicesReader) -> JSONResponse:
    """OpenAI's ``models.retrieve``."""
    for model in OPENAI_MODELS:
        if model.id == model_id:
            return JSONResponse(_openai(model))
    raise VoxError("model_not_found", f"no model {model_id[:64]!r}; GET /v1/models lists them", 404)
