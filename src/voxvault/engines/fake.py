"""Fake engines: deterministic, weight-free stand-ins for demos, CI and the tests that judge the product
(auth, errors, audit, jobs), not a model's quality. Select them with ``tts_engine = "fake"`` (and
``speaker_engine``, ``vad_engine``, ``asr_engine``).

- ``FakeTTS`` speaks each phoneme as a harmonic tone whose pitch and timbre depend on the phoneme and the
  voice's style: different texts or voices give different audio, duration grows with the text and falls
  with speed, and the sound is broadband enough to carry the watermark. It also says when each word is
  spoken (``synthesize_timed``), from its own durations.
- ``FakeSpeakerEncoder``: a fixed random projection of the log mel-band spectrum's mean and spread: the
  same clip gives the same embedding, voices that sound different (pitch, timbre) differ.
- ``FakeVAD``: frames above an energy floor relative to the loudest frame, merged over short gaps.
- ``FakeRecognizer``: hears how many words were spoken (one per burst of speech), not which; aligns a
  given text by spreading its words over the speech.
- ``FakeTranscriber``: Whisper's whole interface (windows, options and refusals, segments, word timings,
  language, translation, the streaming socket's calls) with Whisper's own windowing code; only the model
  call is replaced: one made-up word per burst of sound (spelled from the burst's length and brightness),
  segments split at pauses. ``transcriber_engine = "fake"`` selects it (and a diarizer on the fake VAD and
  speaker encoder).
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np

from voxvault.engines.base import (
    EMBEDDING_DIM,
    STYLE_DIM,
    AdaptedWeights,
    FloatArray,
    SpeechSegment,
    TimedSpeech,
    WordTiming,
)
from voxvault.engines.whisper import MODEL_NAMES, MODELS, Glimpse, TranscribeOptions, WhisperRecognizer
from voxvault.errors import VoxError

SAMPLE_RATE = 24_000
MAX_PHONEMES = 400  # as Kokoro, so texts are split into the same pieces
MIN_SPEED, MAX_SPEED = 0.5, 2.0
#: The style packs Kokoro's package ships (the presets name them); the fake makes its own per name.
PACK_NAMES = ("jf_alpha", "jf_gongitsune", "jf_nezumi", "jf_tebukuro", "jm_kumo")
PACK_ROWS = 510
PAUSES = {" ": 0.04, ",": 0.15, ";": 0.15, ":": 0.15, ".": 0.25, "!": 0.25, "?": 0.25}
TABLE = 256  # samples in one period's wave table
FADE_S = 0.005


def _seed(text: str) -> int:
    return zlib.crc32(text.encode("utf-8"))


def _pack(name: str) -> FloatArray:
    """A (510, 256) style pack: one random base vector, drifting a little with the token count."""
    rng = np.random.default_rng(_seed(name))
    base = rng.normal(0.0, 0.3, STYLE_DIM)
    drift = rng.normal(0.0, 0.02, STYLE_DIM)
    rows = np.linspace(0.0, 1.0, PACK_ROWS)[:, None]
    return np.ascontiguousarray(base[None, :] + rows * drift[None, :], dtype=np.float32)


def _voice(style: FloatArray, n_tokens: int) -> tuple[float, float]:
    """(pitch in Hz, spectral tilt) read off the style row the engine would use for ``n_tokens``."""
    try:
        arr = np.asarray(style, dtype=np.float32)
    except (TypeError, ValueError) as exc:
        raise VoxError("bad_style", "style must be a float array") from exc
    if arr.ndim == 3 and arr.shape[1] == 1:
        arr = arr[:, 0, :]
    if arr.ndim == 2 and arr.shape[0] > 0:
        arr = arr[min(max(n_tokens, 1), arr.shape[0]) - 1]
    if arr.shape != (STYLE_DIM,) or not np.all(np.isfinite(arr)):
        raise VoxError("bad_style", f"style must be a {STYLE_DIM}-d vector or an (N, {STYLE_DIM}) pack")
    half = STYLE_DIM // 2
    # A preset's half-mean is about N(0, 0.03): scaled so that presets spread over the whole range.
    pitch = 90.0 + 180.0 / (1.0 + math.exp(-40.0 * float(np.mean(arr[:half]))))  # 90-270 Hz
    tilt = 0.5 + 1.5 / (1.0 + math.exp(-40.0 * float(np.mean(arr[half:]))))  # amplitude ~ 1 / k**tilt
    return round(pitch, 1), round(tilt, 2)


@lru_cache(maxsize=4096)
def _period(code: int, pitch: float, tilt: float) -> FloatArray:
    """One period of a phoneme's tone: harmonics up to 7 kHz, amplitudes set by the phoneme."""
    rng = np.random.default_rng(code)
    k = np.arange(1, int(7000 // pitch) + 1)
    amps = rng.uniform(0.2, 1.0, k.size) / k**tilt
    phases = rng.uniform(0.0, 2 * np.pi, k.size)
    t = np.arange(TABLE) / TABLE
    wave = (amps[:, None] * np.sin(2 * np.pi * k[:, None] * t[None, :] + phases[:, None])).sum(axis=0)
    return np.asarray(wave / max(float(np.abs(wave).max()), 1e-9), dtype=np.float32)


def _phoneme(ch: str, pitch: float, tilt: float, speed: float) -> FloatArray:
    code = ord(ch)
    seconds = (0.05 + 0.01 * (code % 5)) / speed
    n = max(int(seconds * SAMPLE_RATE), 1)
    f0 = pitch * (1.0 + 0.04 * ((code % 7) - 3))  # a little intonation per phoneme
    phase = (f0 * np.arange(n) / SAMPLE_RATE) % 1.0
    table = _period(code, pitch, tilt)
    tone = np.interp(phase * TABLE, np.arange(TABLE + 1), np.append(table, table[0]))
    if code % 3 == 0:  # a noisy "fricative" part, deterministic per phoneme
        tone = 0.6 * tone + 0.4 * np.random.default_rng(code + 1).uniform(-1.0, 1.0, n)
    fade = min(int(FADE_S * SAMPLE_RATE), n // 2)
    if fade:
        ramp = np.linspace(0.0, 1.0, fade)
        tone[:fade] *= ramp
        tone[-fade:] *= ramp[::-1]
    return np.asarray(0.3 * tone, dtype=np.float32)


class FakeTTS:
    """``TimedTTS``: a tone per phoneme character, pauses for spaces and punctuation (24 kHz)."""

    name = "fake"
    sample_rate = SAMPLE_RATE
    max_phonemes = MAX_PHONEMES

    def __init__(self) -> None:
        self._styles = {name: _pack(name) for name in PACK_NAMES}

    def preset_styles(self) -> dict[str, FloatArray]:
        return {name: pack.copy() for name, pack in self._styles.items()}

    def synthesize(self, phonemes: str, style: FloatArray, speed: float = 1.0) -> FloatArray:
        return self.synthesize_timed(phonemes, style, speed).audio

    def synthesize_timed(
        self, phonemes: str, style: FloatArray, speed: float = 1.0, adapted: AdaptedWeights | None = None
    ) -> TimedSpeech:
        if not isinstance(phonemes, str):
            raise VoxError("bad_phonemes", "phonemes must be a string")
        if (
            not isinstance(speed, int | float)
            or not math.isfinite(speed)
            or not MIN_SPEED <= speed <= MAX_SPEED
        ):
            raise VoxError("bad_speed", f"speed must be between {MIN_SPEED} and {MAX_SPEED}", speed=speed)
        if adapted is not None:
            raise VoxError("adapted_weights_mismatch", "the fake engine speaks no adapted weights", 409)
        text = " ".join(phonemes.split())
        sounds = [ch for ch in text if ch not in PAUSES]
        if len(sounds) > self.max_phonemes:
            raise VoxError(
                "phonemes_too_long",
                f"at most {self.max_phonemes} phonemes per call; split the text first",
                limit=self.max_phonemes,
                got=len(sounds),
            )
        pitch, tilt = _voice(style, len(sounds))
        parts: list[FloatArray] = []
        spans: list[tuple[float, float]] = []
        at, word_start, word_end = 0, None, 0
        for ch in text.strip("".join(PAUSES)):  # no silence at either end, as Kokoro trims
            if ch == " ":
                if word_start is not None:
                    spans.append((word_start / SAMPLE_RATE, word_end / SAMPLE_RATE))
                word_start = None
            piece = (
                np.zeros(int(PAUSES[ch] / speed * SAMPLE_RATE), np.float32)
                if ch in PAUSES
                else _phoneme(ch, pitch, tilt, speed)
            )
            if ch not in PAUSES:
                word_start = at if word_start is None else word_start
                word_end = at + len(piece)
            parts.append(piece)
            at += len(piece)
        if word_start is not None:
            spans.append((word_start / SAMPLE_RATE, word_end / SAMPLE_RATE))
        audio = np.concatenate(parts) if parts else np.zeros(0, np.float32)
        return TimedSpeech(np.ascontiguousarray(audio, dtype=np.float32), tuple(spans))


def _frames(audio: FloatArray, sample_rate: int, frame_s: float) -> np.ndarray:
    x = np.asarray(audio, dtype=np.float32).reshape(-1)
    size = max(int(frame_s * sample_rate), 1)
    n = len(x) // size
    return x[: n * size].reshape(n, size)


def _checked(audio: FloatArray, sample_rate: int) -> FloatArray:
    if not isinstance(sample_rate, int) or sample_rate <= 0:
        raise VoxError("invalid_audio", f"sample rate must be a positive integer, got {sample_rate!r}")
    x = np.asarray(audio, dtype=np.float32).reshape(-1)
    if not np.all(np.isfinite(x)):
        raise VoxError("invalid_audio", "audio holds NaN or infinite samples")
    return x


REFERENCE_PHONEMES = "ðə kwˈɪk bɹˈaʊn fˈɑks ʤˈʌmps ˌoʊvəɹ ðə lˈeɪzi dˈɑɡ."


def _mel(hz: np.ndarray) -> np.ndarray:
    return 2595.0 * np.log10(1.0 + hz / 700.0)


class FakeSpeakerEncoder:
    """``SpeakerEncoder``: log mel-band energies (mean and spread over loud frames), taken relative to the
    fake presets' average and projected to 256-d by a fixed random matrix."""

    name = "fake"
    sample_rate = 16_000
    dim = EMBEDDING_DIM
    BANDS = 32

    def __init__(self) -> None:
        self._projection = np.random.default_rng(1234).normal(size=(2 * self.BANDS, self.dim))
        tts = FakeTTS()
        self._reference = np.zeros(2 * self.BANDS)
        self._reference = np.mean(
            [
                self._features(tts.synthesize(REFERENCE_PHONEMES, p), SAMPLE_RATE)
                for p in tts._styles.values()
            ],
            axis=0,
        )

    def _features(self, audio: FloatArray, sample_rate: int) -> np.ndarray:
        frames = _frames(_checked(audio, sample_rate), sample_rate, 0.032)
        if len(frames) == 0:
            raise VoxError("invalid_audio", "audio is too short to embed")
        power = np.abs(np.fft.rfft(frames * np.hanning(frames.shape[1]), axis=1)) ** 2
        mels = _mel(np.fft.rfftfreq(frames.shape[1], 1.0 / sample_rate))
        edges = np.linspace(
            _mel(np.array(100.0)), _mel(np.array(min(7600.0, sample_rate / 2))), self.BANDS + 1
        )
        band = np.searchsorted(edges, mels) - 1
        # (frames, bands); a band with no bin (very low sample rates) sums to 0
        bands = np.stack([power[:, band == b].sum(axis=1) for b in range(self.BANDS)], axis=1)
        logs = np.log(bands + 1e-10)
        level = logs.mean(axis=1)
        loud = level >= level.max() - math.log(1e3)  # frames within 30 dB of the loudest
        shape = logs[loud] - level[loud, None]  # timbre, not loudness
        return np.concatenate([shape.mean(axis=0), shape.std(axis=0)]) - self._reference

    def embed(self, audio: FloatArray, sample_rate: int) -> FloatArray:
        emb = self._features(audio, sample_rate) @ self._projection
        return np.asarray(emb / max(float(np.linalg.norm(emb)), 1e-12), dtype=np.float32)


class FakeVAD:
    """``VoiceActivityDetector``: 30 ms frames within 35 dB of the loudest, gaps under 0.3 s bridged."""

    name = "fake"
    sample_rate = 16_000
    FRAME_S = 0.03

    def speech_segments(self, audio: FloatArray, sample_rate: int) -> list[SpeechSegment]:
        frames = _frames(_checked(audio, sample_rate), sample_rate, self.FRAME_S)
        if len(frames) == 0:
            return []
        rms = np.sqrt(np.mean(frames.astype(np.float64) ** 2, axis=1))
        peak = float(rms.max())
        if peak < 1e-3:  # digital silence or hiss
            return []
        active = rms >= peak * 10 ** (-35 / 20)
        segments: list[list[float]] = []
        for i in np.flatnonzero(active):
            start, end = i * self.FRAME_S, (i + 1) * self.FRAME_S
            if segments and start - segments[-1][1] < 0.3:
                segments[-1][1] = end
            else:
                segments.append([start, end])
        return [SpeechSegment(start=round(float(s), 3), end=round(float(e), 3)) for s, e in segments]

    def speech_seconds(self, audio: FloatArray, sample_rate: int) -> float:
        return float(sum(s.end - s.start for s in self.speech_segments(audio, sample_rate)))


class FakeRecognizer:
    """``SpeechRecognizer`` that hears one word per burst of speech (``word1 word2 ...``), not which."""

    name = "fake"
    sample_rate = 16_000

    def __init__(self) -> None:
        self._vad = FakeVAD()

    def _bursts(self, audio: FloatArray, sample_rate: int) -> list[tuple[float, float]]:
        frames = _frames(_checked(audio, sample_rate), sample_rate, 0.01)
        if len(frames) == 0:
            return []
        rms = np.sqrt(np.mean(frames.astype(np.float64) ** 2, axis=1))
        if float(rms.max()) < 1e-3:
            return []
        active = rms >= rms.max() * 0.05
        bursts: list[tuple[float, float]] = []
        start = None
        for i, on in enumerate([*active, False]):
            if on and start is None:
                start = i
            elif not on and start is not None:
                bursts.append((start * 0.01, i * 0.01))
                start = None
        return bursts

    def transcribe(self, audio: FloatArray, sample_rate: int) -> str:
        return " ".join(f"word{i + 1}" for i in range(len(self._bursts(audio, sample_rate))))

    def align(self, audio: FloatArray, sample_rate: int, text: str) -> list[WordTiming]:
        words = text.split()
        segments = self._vad.speech_segments(audio, sample_rate)
        if not words or not segments:
            return []
        start, end = segments[0].start, segments[-1].end
        step = (end - start) / len(words)
        return [
            WordTiming(word=w, start=round(start + i * step, 3), end=round(start + (i + 1) * step, 3))
            for i, w in enumerate(words)
        ]


#: Language codes the fake's multilingual model accepts (a subset of Whisper's); the English-only one: en.
FAKE_LANGUAGES = frozenset(
    ("en", "de", "fr", "es", "it", "nl", "pt", "pl", "ru", "uk", "sv", "da", "no", "fi", "tr", "ar", "he")
    + ("hi", "ja", "zh", "ko", "el", "cs", "hu", "ro")
)
_SYLLABLES = ("ka", "lo", "mi", "ra", "te", "su", "no", "vi", "pe", "do", "ri", "ba", "ge", "fu", "ze", "ho")


@dataclass(frozen=True)
class _Word:
    start: float
    end: float
    word: str
    probability: float = 0.9


@dataclass(frozen=True)
class _Segment:
    """Shaped like a faster-whisper segment: what engines/whisper.py converts."""

    start: float
    end: float
    text: str
    words: tuple[_Word, ...]
    avg_logprob: float = -0.2
    no_speech_prob: float = 0.01
    compression_ratio: float = 1.2
    temperature: float = 0.0
    tokens: tuple[int, ...] = ()


@dataclass(frozen=True)
class _Info:
    language: str
    language_probability: float


class FakeTranscriber(WhisperRecognizer):
    """``WhisperRecognizer`` without weights: the same windows, options and refusals; the model call hears
    one word per burst of sound (bursts 10 ms frames above 5 % of the window's loudest, merged over gaps
    under 80 ms, at least 50 ms long), and a pause of :data:`SEGMENT_GAP_S` starts a new segment."""

    name = "fake"
    SEGMENT_GAP_S = 0.5

    def __init__(self, model: str = "base") -> None:  # noqa: D107 - no weights, no super().__init__
        weights = MODELS.get(model)
        if weights is None:
            raise VoxError(
                "unknown_model", f"no Whisper model {model!r} (known: {', '.join(MODEL_NAMES)})", 500
            )
        self.weights = weights
        self.model_name = weights.name
        self.multilingual = weights.multilingual
        self.threads = 1
        self.languages = FAKE_LANGUAGES if weights.multilingual else frozenset({"en"})
        self.load_seconds = 0.0

    def _transcribe_window(
        self, audio: np.ndarray, options: TranscribeOptions, language: str | None, prompt: str | None
    ) -> tuple[Iterator[Any], Any]:
        rate = self.sample_rate
        words = [
            _Word(round(a, 3), round(b, 3), " " + _spell(audio[int(a * rate) : int(b * rate)], rate))
            for a, b in _sound_bursts(audio, rate)
        ]
        groups: list[list[_Word]] = []
        for w in words:
            if groups and w.start - groups[-1][-1].end < self.SEGMENT_GAP_S:
                groups[-1].append(w)
            else:
                groups.append([w])
        segments = [
            _Segment(
                start=g[0].start,
                end=g[-1].end,
                text="".join(w.word for w in g),
                words=tuple(g) if options.word_timestamps else (),
            )
            for g in groups
        ]
        # a set language is kept; "detection" always hears English
        info = _Info(language or "en", 1.0 if language else 0.9)
        return iter(segments), info

    def _glimpse(self, audio: np.ndarray, language: str | None, prompt: str | None) -> Glimpse:
        rate = self.sample_rate
        bursts = _sound_bursts(audio, rate)
        words = [_spell(audio[int(a * rate) : int(b * rate)], rate) for a, b in bursts]
        return Glimpse(" ".join(words), bursts[0][0] if bursts else 0.0, language or "en")


def _sound_bursts(audio: np.ndarray, sample_rate: int) -> list[tuple[float, float]]:
    frame = 0.01
    frames = _frames(audio, sample_rate, frame)
    if len(frames) == 0:
        return []
    rms = np.sqrt(np.mean(frames.astype(np.float64) ** 2, axis=1))
    if float(rms.max()) < 1e-3:
        return []
    active = np.flatnonzero(rms >= rms.max() * 0.05)
    bursts: list[list[int]] = []
    for i in active:
        if bursts and i - bursts[-1][1] <= 8:  # gaps under 80 ms are inside a word
            bursts[-1][1] = int(i)
        else:
            bursts.append([int(i), int(i)])
    return [(a * frame, (b + 1) * frame) for a, b in bursts if b + 1 - a >= 5]


def _spell(samples: np.ndarray, sample_rate: int) -> str:
    """Two syllables from the burst's length (10 ms frames) and zero-crossing rate: the same sound gives
    the same word, different sounds mostly different ones."""
    frames = max(len(samples) * 100 // sample_rate, 1)
    crossings = (
        float(np.mean(np.abs(np.diff(np.signbit(samples).astype(np.int8))))) if samples.size > 1 else 0
    )
    first = _SYLLABLES[frames % len(_SYLLABLES)]
    second = _SYLLABLES[int(crossings * 200) % len(_SYLLABLES)]
    return first + second
