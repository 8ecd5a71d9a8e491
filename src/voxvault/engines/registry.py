"""Engines by name, loaded lazily on first use, shared, and unloaded again when idle.

``EngineRegistry(settings).tts()`` returns the configured TTS engine; the first call pays the load cost.
Optional engines register a factory here; unknown names give a clear error instead of an ImportError.

Like speaches' model manager, an engine that is not the default TTS is dropped after
``VOXVAULT_ENGINE_IDLE_TTL_S`` seconds without use (0 = never), so a server that transcribed once does not
keep Whisper's few hundred MB for good. ``with registry.use("transcriber") as whisper:`` holds a lease:
an engine with a lease is never unloaded. An engine a caller still holds a reference to after its unload
is taken back on the next use (a weak reference), never loaded a second time beside it.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import logging
import sys
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from dataclasses import dataclass
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

log = logging.getLogger(__name__)

Factory = Callable[[Settings], Any]


def _kokoro(settings: Settings) -> TTSEngine:
    from voxvault.engines.kokoro import KokoroEngine

    return KokoroEngine(
        cache_dir=settings.resolved_cache_dir,
        precision=settings.kokoro_precision,
        threads=settings.threads,
        kernels=settings.kokoro_kernels,
        arena_shrinkage=settings.kokoro_arena_shrinkage,
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


def _fake_whisper(model: str) -> Factory:
    def load(settings: Settings) -> Any:
        from voxvault.engines.fake import FakeTranscriber

        return FakeTranscriber(model)

    return load


def _fake(name: str) -> Factory:
    """Weight-free stand-ins (engines/fake.py): demos, CI, tests that do not judge a model."""

    def load(settings: Settings) -> Any:
        from voxvault.engines import fake

        return getattr(fake, name)()

    return load


FACTORIES: dict[str, dict[str, Factory]] = {
    "tts": {"kokoro": _kokoro, "kokoro-torch": _kokoro_torch, "fake": _fake("FakeTTS")},
    # campp: a second judge (consent, clone eval)
    "speaker": {"ge2e": _ge2e, "campp": _campp, "fake": _fake("FakeSpeakerEncoder")},
    "vad": {"silero": _silero, "fake": _fake("FakeVAD")},
    "asr": {"pocketsphinx": _pocketsphinx, "fake": _fake("FakeRecognizer")},
    # Open transcription (Whisper), by model name; asr_engine = "whisper" uses asr_model.
    # transcriber_engine = "fake": "<model>:fake", the same model's options and refusals without weights.
    "transcriber": {
        "base": _whisper("base"),
        "tiny.en": _whisper("tiny.en"),
        "base:fake": _fake_whisper("base"),
        "tiny.en:fake": _fake_whisper("tiny.en"),
    },
}


DIARIZER = "diarizer:vad-campp-ahc"  # built from two other engines; unloaded like one
FAKE_DIARIZER = "diarizer:fake"  # the fake VAD and speaker encoder (transcriber_engine = "fake")


@dataclass(frozen=True)
class EngineState:
    """One loaded engine as ``/metrics`` and ``voxvault doctor`` show it."""

    kind: str
    name: str
    load_s: float
    idle_s: float  # since the last use ended (0 while in use)
    in_use: int  # leases held now
    pinned: bool  # the default TTS: never unloaded


@dataclass
class _Loaded:
    instance: Any
    load_s: float
    last_used: float
    users: int = 0


def _trim_heap() -> None:
    """Give freed memory back to the OS (glibc keeps it otherwise, and RSS would not show the unload)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


class EngineRegistry:
    """Holds one instance per engine kind; thread-safe lazy construction, idle unload (``reap``)."""

    def __init__(self, settings: Settings, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.settings = settings
        self.idle_ttl_s = settings.engine_idle_ttl_s
        self._clock = clock
        self._loaded: dict[str, _Loaded] = {}
        self._released: dict[str, weakref.ref[Any]] = {}  # unloaded, maybe still held by a caller
        self._load_seconds: dict[str, float] = {}
        self._lock = threading.Lock()  # guards the dicts; held for microseconds
        self._load_locks: dict[str, threading.Lock] = {}  # one load at a time per engine, not globally
        self._reaper: threading.Thread | None = None
        self._stop = threading.Event()

    @property
    def pinned(self) -> str:
        """The default TTS: every request needs it, so it is never unloaded."""
        return f"tts:{self.settings.tts_engine}"

    def _acquire(self, key: str, build: Callable[[], Any], lease: bool) -> Any:
        with self._lock:
            entry = self._adopt(key)
            if entry is not None:
                entry.users += lease
                entry.last_used = self._clock()
                return entry.instance
            load_lock = self._load_locks.setdefault(key, threading.Lock())
        with load_lock:
            with self._lock:
                entry = self._adopt(key)
            if entry is None:
                t0 = time.perf_counter()
                instance = build()
                load_s = time.perf_counter() - t0
                entry = _Loaded(instance, load_s, self._clock())
                with self._lock:
                    self._loaded[key] = entry
                    self._load_seconds[key] = load_s
                log.info("engine %s loaded in %.2fs", key, load_s)
            with self._lock:
                entry.users += lease
                entry.last_used = self._clock()
                return entry.instance

    def _adopt(self, key: str) -> _Loaded | None:
        """The loaded entry, or the instance an unload released while a caller still held it (under lock)."""
        entry = self._loaded.get(key)
        if entry is None and key in self._released:
            instance = self._released.pop(key)()
            if instance is not None:
                entry = self._loaded[key] = _Loaded(instance, self._load_seconds.get(key, 0.0), self._clock())
        return entry

    def _factory(self, kind: str, name: str) -> Callable[[], Any]:
        factory = FACTORIES.get(kind, {}).get(name)
        if factory is None:
            known = ", ".join(sorted(FACTORIES.get(kind, {})))
            raise VoxError("unknown_engine", f"no {kind} engine named {name!r} (known: {known})", 500)
        return lambda: factory(self.settings)

    def _get(self, kind: str, name: str) -> Any:
        return self._acquire(f"{kind}:{name}", self._factory(kind, name), lease=False)

    def _default_name(self, kind: str) -> str:
        names = {
            "tts": self.settings.tts_engine,
            "speaker": self.settings.speaker_engine,
            "vad": self.settings.vad_engine,
            "asr": self.settings.asr_engine,
            "transcriber": self._transcriber_name(self.settings.asr_model),
        }
        if kind not in names:
            raise VoxError("unknown_engine", f"no engine kind {kind!r}", 500)
        return names[kind]

    @contextlib.contextmanager
    def use(self, kind: str, name: str | None = None) -> Iterator[Any]:
        """Lease an engine for a block: loaded if needed, never unloaded until the block ends.

        ``with registry.use("transcriber", "tiny.en") as whisper: whisper.transcribe(...)``
        """
        if kind == "diarizer":
            key, build = self._diarizer_key(), self._build_diarizer
        else:
            if kind == "transcriber" and name:
                name = self._transcriber_name(name)
            name = name or self._default_name(kind)
            key, build = f"{kind}:{name}", self._factory(kind, name)
        instance = self._acquire(key, build, lease=True)
        try:
            yield instance
        finally:
            with self._lock:
                entry = self._loaded.get(key)
                if entry is not None and entry.instance is instance:
                    entry.users -= 1
                    entry.last_used = self._clock()

    # -- idle unload ------------------------------------------------------------------------------------
    def reap(self) -> list[str]:
        """Unload every engine idle for ``idle_ttl_s`` or more, unless leased, still held by a caller (a
        transcription that took it without a lease and is still running; a cached component such as the
        style conditioner's encoder: dropping those would free nothing) or the default TTS.

        Returns the keys unloaded. An engine another one holds (CAM++ in the diarizer) goes in the same
        call once its holder has.
        """
        if self.idle_ttl_s <= 0:
            return []
        now = self._clock()
        dropped: list[str] = []
        idle: dict[str, float] = {}
        with self._lock:
            progress = True
            while progress:
                progress = False
                for key in list(self._loaded):
                    idle[key] = now - self._loaded[key].last_used
                    if key == self.pinned or idle[key] < self.idle_ttl_s or self._in_use(key):
                        continue
                    loaded = self._loaded.pop(key)
                    with contextlib.suppress(TypeError):  # a type without weak references: simply dropped
                        self._released[key] = weakref.ref(loaded.instance)
                    del loaded  # no stray reference left in this frame
                    dropped.append(key)
                    progress = True
            for key, entry in self._loaded.items():  # expired but held: idle from when it is let go
                if key != self.pinned and idle[key] >= self.idle_ttl_s and entry.users == 0:
                    entry.last_used = now
        if dropped:
            gc.collect()
            _trim_heap()
            for key in dropped:
                ref = self._released.get(key)
                held = ref is not None and ref() is not None
                note = " (something still holds it)" if held else ""
                log.info("engine %s unloaded after %.0fs idle%s", key, idle[key], note)
        return dropped

    def _in_use(self, key: str) -> bool:
        """Leased, or referenced outside the registry (CPython's count: the entry's attribute and the
        call's argument make 2)."""
        entry = self._loaded[key]
        return entry.users > 0 or sys.getrefcount(entry.instance) > 2

    def start_reaper(self) -> None:
        """Check for idle engines in a daemon thread (every quarter TTL, at most every 30 s)."""
        if self.idle_ttl_s <= 0 or self._reaper is not None:
            return
        interval = min(max(self.idle_ttl_s / 4, 0.01), 30.0)
        self._stop.clear()

        def run() -> None:
            while not self._stop.wait(interval):
                try:
                    self.reap()
                except Exception:  # noqa: BLE001 - an unload that fails must not end the reaper
                    log.exception("idle engine unload failed")

        self._reaper = threading.Thread(target=run, name="voxvault-engine-reaper", daemon=True)
        self._reaper.start()

    def stop_reaper(self) -> None:
        self._stop.set()
        if self._reaper is not None:
            self._reaper.join(timeout=5)
            self._reaper = None

    def status(self) -> list[EngineState]:
        """The engines loaded now, with idle seconds and leases (``/metrics``, ``voxvault doctor``)."""
        now = self._clock()
        with self._lock:
            return [
                EngineState(
                    kind=key.split(":", 1)[0],
                    name=key.split(":", 1)[1],
                    load_s=round(entry.load_s, 3),
                    idle_s=0.0 if entry.users else round(max(now - entry.last_used, 0.0), 3),
                    in_use=entry.users,
                    pinned=key == self.pinned,
                )
                for key, entry in sorted(self._loaded.items())
            ]

    # -- engines by kind ---------------------------------------------------------------------------------
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

    def _fake_transcription(self) -> bool:
        return self.settings.transcriber_engine == "fake"

    def _transcriber_name(self, model: str) -> str:
        return f"{model}:fake" if self._fake_transcription() else model

    def _diarizer_key(self) -> str:
        return FAKE_DIARIZER if self._fake_transcription() else DIARIZER

    def _build_diarizer(self) -> Diarizer:
        from voxvault.engines.diarize import Diarizer

        if self._fake_transcription():
            return Diarizer(self._get("vad", "fake"), self._get("speaker", "fake"))
        from voxvault.engines.segmentation import OverlapDetector

        return Diarizer(self._get("vad", "silero"), self._get("speaker", "campp"), overlap=OverlapDetector())

    def diarizer(self) -> Diarizer:
        """Who spoke when: Silero VAD + CAM++ (loaded on first use, shared with the other kinds) and
        pyannote's segmentation model for overlapped speech; the fake VAD and speaker encoder (no overlap)
        with ``transcriber_engine = "fake"``."""
        diarizer: Diarizer = self._acquire(self._diarizer_key(), self._build_diarizer, lease=False)
        return diarizer

    def transcriber(self, model: str | None = None) -> WhisperRecognizer:
        """Whisper (``model`` or the configured ``asr_model``), loaded on the first transcription; its
        weight-free stand-in (engines/fake.py) with ``transcriber_engine = "fake"``."""
        return self._get("transcriber", self._transcriber_name(model or self.settings.asr_model))

    @property
    def load_seconds(self) -> dict[str, float]:
        return dict(self._load_seconds)

    def loaded(self, kind: str) -> bool:
        with self._lock:
            return any(k.startswith(kind + ":") for k in self._loaded)
