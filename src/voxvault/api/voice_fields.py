"""The ElevenLabs fields every voice listing carries (``GET /v1/voices``, ``/v2/voices``): category,
labels, description, preview URL and default settings."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request

DEFAULT_SETTINGS = {
    "stability": 0.5,
    "similarity_boost": 0.75,
    "style": 0.0,
    "use_speaker_boost": False,
    "speed": 1.0,
}


def _labels(description: str, kind: str) -> dict[str, str]:
    gender = description.split(",")[0].strip() if description else ""
    labels = {"use_case": "general", "source": "voxvault"}
    if gender in {"female", "male"}:
        labels["gender"] = gender
    if kind == "preset":
        labels["accent"] = "japanese"  # Kokoro's shipped styles are Japanese speakers
    return labels


def voice_fields(request: Request, voice_id: str, kind: str, description: str) -> dict[str, Any]:
    """The ElevenLabs fields of a voice (``GET /v1/voices`` and ``/v2/voices`` both carry them)."""
    return {
        "category": "premade" if kind == "preset" else "cloned",
        "labels": _labels(description, kind),
        "description": description,
        "preview_url": str(request.url_for("voice_preview", voice_id=voice_id)),
        "settings": dict(DEFAULT_SETTINGS),
    }
