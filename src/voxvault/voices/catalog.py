"""Which voices exist and what the acoustic model needs to speak in them.

Presets come from the engine's shipped styles; cloned voices (enrollment issue) come from the store.
Resolution enforces the voice's status at request time: a revoked or expired voice refuses to speak.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from voxvault.engines.base import TTSEngine
from voxvault.errors import VoxError
from voxvault.synthesis import VoiceStyle
from voxvault.voices.presets import PRESETS, resolve_preset

if TYPE_CHECKING:
    from voxvault.voices.lifecycle import VoiceRegistry


@dataclass(frozen=True)
class VoiceInfo:
    id: str
    name: str
    kind: str  # preset | cloned
    status: str
    description: str = ""


class VoiceCatalog:
    def __init__(self, tts: TTSEngine, cloned: VoiceRegistry | None = None) -> None:
        self.tts = tts
        self.cloned = cloned
        styles = getattr(tts, "preset_styles", None)
        self._preset_styles: dict[str, np.ndarray] = styles() if callable(styles) else {}

    def presets(self) -> list[VoiceInfo]:
        return [
            VoiceInfo(id=pid, name=pid, kind="preset", status="active", description=desc)
            for pid, (style, desc) in PRESETS.items()
            if style in self._preset_styles
        ]

    def preset_styles(self) -> dict[str, np.ndarray]:
        """Preset id -> the engine's style for it (what cloned voices are blended from)."""
        styles = self._preset_styles
        return {pid: styles[style] for pid, (style, _) in PRESETS.items() if style in styles}

    def resolve(self, voice_id: str, project_id: str | None = None) -> VoiceStyle:
        """A preset, or a cloned voice of ``project_id`` (any project when None: the local operator).

        Cloned voices are checked on every call: revoked -> 403 ``consent_revoked``, past the consent's
        expiry -> 403 ``consent_expired``, erased, unknown or another tenant's -> 404 ``voice_not_found``.
        """
        preset = resolve_preset(voice_id)
        if preset is not None and preset.engine_style in self._preset_styles:
            return VoiceStyle(voice_id=preset.id, style=self._preset_styles[preset.engine_style])
        if self.cloned is not None and preset is None and _looks_like_id(voice_id):
            style, adapted = self.cloned.speaking_parts(voice_id, project_id)
            return VoiceStyle(voice_id, style, adapted=adapted)
        raise VoxError("voice_not_found", f"no voice {voice_id!r}; GET /v1/voices lists the voices", 404)


def _looks_like_id(voice_id: str) -> bool:
    return 0 < len(voice_id) <= 64 and all(ch.isalnum() or ch == "-" for ch in voice_id)
