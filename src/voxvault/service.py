"""The ``VoxVault`` facade: one object that owns settings, engines, storage and the speech pipeline.

The HTTP API, the CLI and Python users all go through it, so behaviour is the same everywhere.
Engines load lazily on first use and are then shared by every request.
"""

from __future__ import annotations

import importlib.metadata
import time
from functools import cached_property
from typing import Any

from voxvault.config import Settings
from voxvault.engines.registry import EngineRegistry
from voxvault.synthesis import RenderedSpeech, SpeechPipeline
from voxvault.text import TextFrontend
from voxvault.voices.catalog import VoiceCatalog, VoiceInfo


class VoxVault:
    """Entry point of the Python API.

    >>> vv = VoxVault()
    >>> speech = vv.speak("Hello world.", voice="alpha", format="mp3")
    >>> open("hello.mp3", "wb").write(speech.audio)
    """

    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = (settings or Settings()).prepare()
        self.engines = EngineRegistry(self.settings)

    @cached_property
    def frontend(self) -> TextFrontend:
        return TextFrontend(max_phonemes=self.engines.tts().max_phonemes)

    @cached_property
    def pipeline(self) -> SpeechPipeline:
        return SpeechPipeline(
            self.engines.tts(),
            self.frontend,
            loudness_lufs=self.settings.loudness_lufs,
            max_input_chars=self.settings.max_input_chars,
        )

    @cached_property
    def catalog(self) -> VoiceCatalog:
        return VoiceCatalog(self.engines.tts())

    def voices(self) -> list[VoiceInfo]:
        return self.catalog.presets()

    def speak(
        self,
        text: str,
        *,
        voice: str | None = None,
        format: str = "wav",
        speed: float = 1.0,
        sample_rate: int | None = None,
    ) -> RenderedSpeech:
        """Synthesize ``text`` completely and return the encoded file plus its samples."""
        style = self.catalog.resolve(voice or self.settings.default_voice)
        prepared = self.pipeline.prepare(text, style, fmt=format, speed=speed, sample_rate=sample_rate)
        return self.pipeline.render(prepared)

    def warm_up(self) -> None:
        """Load every engine the speech path needs and run one tiny synthesis (first request is fast)."""
        self.speak("Ready.", format="pcm")

    def doctor(self) -> dict[str, Any]:
        """Load each engine, time it, and report versions: the first thing to run when something is off."""
        report: dict[str, Any] = {"versions": {}, "engines": {}, "settings": self.settings.public_dict()}
        for pkg in ("voxvault", "onnxruntime", "torch", "av", "fastapi", "sqlalchemy", "pocketsphinx"):
            try:
                report["versions"][pkg] = importlib.metadata.version(pkg)
            except importlib.metadata.PackageNotFoundError:
                report["versions"][pkg] = None
        for kind, getter in (
            ("tts", self.engines.tts),
            ("speaker", self.engines.speaker),
            ("vad", self.engines.vad),
            ("asr", self.engines.asr),
        ):
            t0 = time.perf_counter()
            try:
                engine = getter()
                report["engines"][kind] = {
                    "name": getattr(engine, "name", "?"),
                    "ok": True,
                    "load_s": round(time.perf_counter() - t0, 3),
                }
            except Exception as exc:  # noqa: BLE001 - doctor reports every failure instead of stopping
                report["engines"][kind] = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
        if report["engines"]["tts"]["ok"]:
            t0 = time.perf_counter()
            speech = self.speak("The quick brown fox jumps over the lazy dog.", format="wav")
            took = time.perf_counter() - t0
            report["engines"]["tts"]["sample"] = {
                "audio_s": round(speech.duration, 3),
                "synth_s": round(took, 3),
                "rtf": round(took / max(speech.duration, 1e-6), 3),
            }
        return report
