"""Which voices exist and what the acoustic model needs to speak in them.

Presets come from the engine's shipped styles; cloned voices (enrollment issue) come from the store.
Resolution enforces the voice's status at request time: a revoked or expired voice refuses to speak.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from voxvault.engines.base import TTSEngine
from voxvault.errors import VoxError
from voxvault.synthesis import VoiceStyle
from voxvault.voices.presets import PRESETS, resolve_preset


@dataclass(frozen=True)
class VoiceInfo:
    id: str
    name: str
    kind: str  # preset | cloned
    status: str
    description: str = ""


class VoiceCatalog:
    def __init__(self, tts: TTSEngine) -> None:
        self.tts = tts
        styles = getattr(tts, "preset_styles", None)
        self._preset_styles: dict[str, np.ndarray] = styles() if callable(styles) else {}

    def presets(self) -> list[VoiceInfo]:
        return [
            VoiceInfo(id=pid, name=pid, kind="preset", status="active", description=desc)
            for pid, (style, desc) in PRESETS.items()
            if style in self._preset_styles
        ]

    def resolve(self, voice_id: str, project_id: str | None = None) -> VoiceStyle:
        preset = resolve_preset(voice_id)
        if preset is not None and preset.engine_style in self._preset_styles:
            return VoiceStyle(voice_id=preset.id, style=self._preset_styles[preset.engine_style])
        raise VoxError("voice_not_found", f"no voice {voice_id!r}; GET /v1/voices lists the voices", 404)
