"""Engines by name, loaded lazily once per process and shared.

``EngineRegistry(settings).tts()`` returns the configured TTS engine; the first call pays the load cost.
Optional engines register a factory here; unknown names give a clear error instead of an ImportError.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from voxvault.config import Settings
from voxvault.engines.base import (
    AdaptableTTS,
    SpeakerEncoder,
    SpeechRecognizer,
    TTSEngine,
    VoiceActivityDetector,
)
from voxvault.errors import VoxError

if TYPE_CHECKING:
    from voxvault.engines.diarize import Diarizer
    from voxvault.engines.whisper import WhisperRecognizer

Factory = Callable[[Settings], Any]


def _kokoro(settings: Settings) -> TTSEngine:
    from voxvault.engines.kokoro import KokoroEngine

    return KokoroEngine(
        cache_dir=settings.resolved_cache_dir,
        precision=settings.kokoro_precision,
        threads=settings.threads,
        kernels=settings.kokoro_kernels,
    )


def _kokoro_torch(settings: Settings) -> TTSEngine:
    from voxvault.engines.kokoro_torch import KokoroTorchEngine

    return KokoroTorchEngine(
        cache_dir=settings.resolved_cache_dir, device=settings.device, threads=settings.threads
    )


def _ge2e(settings: Settings) -> SpeakerEncoder:
    from voxvault.engines.ge2e import GE2EEncoder

    return GE2EEncoder(device=settings.device)


def _campp(settings: Settings) -> SpeakerEncoder:
    from voxvault.engines.campp import CamppEncoder

    return CamppEncoder(device=settings.device)


def _silero(settings: Settings) -> VoiceActivityDetector:
    from voxvault.engines.silero import SileroVAD

    return SileroVAD()


def _pocketsphinx(settings: Settings) -> SpeechRecognizer:
    from voxvault.engines.asr import PocketSphinxASR

    return PocketSphinxASR()


def _whisper(model: str) -> Factory:
    def load(settings: Settings) -> Any:
        from voxvault.engines.whisper import WhisperRecognizer

        return WhisperRecognizer(model, cache_dir=settings.resolved_cache_dir, threads=settings.threads)

    return load


FACTORIES: dict[str, dict[str, Factory]] = {
    "tts": {"kokoro": _kokoro, "kokoro-torch": _kokoro_torch},
    "speaker": {"ge2e": _ge2e, "campp": _campp},  # campp: a second judge (consent, clone eval)
    "vad": {"silero": _silero},
    "asr": {"pocketsphinx": _pocketsphinx},
    # Open transcription (Whisper), by model name; asr_engine = "whisper" uses asr_model.
    "transcriber": {"base": _whisper("base"), "tiny.en": _whisper("tiny.en")},
}


class EngineRegistry:
    """Holds one instance per engine kind; thread-safe lazy construction."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._instances: dict[str, Any] = {}
        self._load_seconds: dict[str, float] = {}
        self._lock = threading.Lock()

    def _get(self, kind: str, name: str) -> Any:
        key = f"{kind}:{name}"
        inst = self._instances.get(key)
        if inst is not None:
            return inst
        with self._lock:
            inst = self._instances.get(key)
            if inst is None:
                factory = FACTORIES.get(kind, {}).get(name)
                if factory is None:
                    known = ", ".join(sorted(FACTORIES.get(kind, {})))
                    raise VoxError("unknown_engine", f"no {kind} engine named {name!r} (known: {known})", 500)
                t0 = time.perf_counter()
                inst = factory(self.settings)
                self._load_seconds[key] = time.perf_counter() - t0
                self._instances[key] = inst
        return inst

    def tts(self) -> TTSEngine:
        return self._get("tts", self.settings.tts_engine)

    def adaptable_tts(self) -> AdaptableTTS:
        """The engine that speaks adapted voices and computes gradients: the configured TTS when it can,
        else PyTorch Kokoro (loaded on first use, on ``VOXVAULT_DEVICE``)."""
        tts = self.tts()
        if isinstance(tts, AdaptableTTS):
            return tts
        engine: AdaptableTTS = self._get("tts", "kokoro-torch")
        return engine

    def speaker(self) -> SpeakerEncoder:
        return self._get("speaker", self.settings.speaker_engine)

    def speaker_named(self, name: str) -> SpeakerEncoder:
        """A speaker encoder by name, whatever ``speaker_engine`` is (consent fuses GE2E with CAM++)."""
        return self._get("speaker", name)

    def vad(self) -> VoiceActivityDetector:
        return self._get("vad", self.settings.vad_engine)

    def asr(self) -> SpeechRecognizer:
        if self.settings.asr_engine == "whisper":
            recognizer: SpeechRecognizer = self.transcriber()
            return recognizer
        return self._get("asr", self.settings.asr_engine)

    def diarizer(self) -> Diarizer:
        """Who spoke when: Silero VAD + CAM++ (loaded on first use, shared with the other kinds)."""
        inst = self._instances.get("diarizer:vad-campp-ahc")
        if inst is None:
            from voxvault.engines.diarize import Diarizer

            vad, encoder = self._get("vad", "silero"), self._get("speaker", "campp")
            with self._lock:
                inst = self._instances.setdefault("diarizer:vad-campp-ahc", Diarizer(vad, encoder))
        diarizer: Diarizer = inst
        return diarizer

    def transcriber(self, model: str | None = None) -> WhisperRecognizer:
        """Whisper (``model`` or the configured ``asr_model``), loaded on the first transcription."""
        return self._get("transcriber", model or self.settings.asr_model)

    @property
    def load_seconds(self) -> dict[str, float]:
        return dict(self._load_seconds)

    def loaded(self, kind: str) -> bool:
        return any(k.startswith(kind + ":") for k in self._instances)
