"""Streaming synthesis of text that arrives a few characters at a time (a language model writing).

``TextSegmenter`` buffers the pieces of text and releases a segment when it is worth speaking: at a
sentence end, on flush, or, like ElevenLabs' ``chunk_length_schedule``, once the buffer is long enough,
cut at a clause or word boundary. The schedule starts short (the first audio of a turn should not wait
for a long sentence) and grows (fewer, longer model calls speak better).

``SpeechSession`` renders segments into one continuous output: one encoder (concatenating every chunk
gives one valid file), one loudness gain, one watermark offset, and with each chunk the timings of the
words it speaks.

Word timings come from the model's own token durations where the engine exposes them (onnxruntime Kokoro
with its fused graph, which lists the duration predictor's output as a second graph output): each word
starts and ends where its phonemes do, to the model's 25 ms frame. Elsewhere (the graph as shipped,
PyTorch Kokoro) they are estimates: each piece's speech (leading and trailing silence trimmed) is shared
among its words in proportion to their phoneme counts, good for captions, not for lip sync.
"""

from __future__ import annotations

import difflib
import re
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from voxvault.audio import FORMATS, StreamEncoder, StreamNormalizer
from voxvault.engines.base import FloatArray
from voxvault.errors import VoxError
from voxvault.synthesis.pipeline import (
    FIRST_PIECE_PHONEMES,
    MAX_SPEED,
    MIN_SPEED,
    OUTPUT_SAMPLE_RATES,
    ChunkHook,
    PreparedSpeech,
    SpeechPipeline,
    VoiceStyle,
    WordSpans,
)
from voxvault.text import Piece
from voxvault.text.frontend import CLAUSE_PAUSE, SENTENCE_PAUSE

# Characters buffered before a segment is cut without a sentence end: the n-th segment of a turn waits
# for schedule[n] characters (the last value repeats). ElevenLabs' default is (120, 160, 250, 290);
# voxvault starts shorter because its pieces are rendered one by one anyway.
DEFAULT_CHUNK_SCHEDULE = (50, 120, 200, 260)
MIN_SCHEDULE_CHARS, MAX_SCHEDULE_CHARS, MAX_SCHEDULE_LEN = 5, 2000, 16
MAX_WORD_CHARS = 100  # a "word" longer than this is cut even without whitespace
# Ahead of the listener by less than this, a segment starts with a short piece again.
DRY_AHEAD_S = 1.0

_SENTENCE_END = re.compile(r"[.!?…]+[\"'”’)\]]*\s+|\n\s*")
_CLAUSE_END = re.compile(r"[,;:—–]+[\"'”’)\]]*\s+")
_LAST_TOKEN = re.compile(r"(\S+)$")
# A period after these is not a sentence end.
_TITLES = {"mr", "mrs", "ms", "dr", "st", "prof", "sr", "jr", "mt", "no", "fig"}
_ABBREVIATIONS = frozenset(_TITLES | {"vs", "etc", "e.g", "i.e", "approx"})


def check_schedule(schedule: Sequence[Any]) -> tuple[int, ...]:
    """Validate a ``chunk_length_schedule`` from a client; VoxError ``invalid_chunk_schedule``."""
    if (
        not isinstance(schedule, list | tuple)
        or not 1 <= len(schedule) <= MAX_SCHEDULE_LEN
        or not all(
            isinstance(n, int) and not isinstance(n, bool) and MIN_SCHEDULE_CHARS <= n <= MAX_SCHEDULE_CHARS
            for n in schedule
        )
    ):
        raise VoxError(
            "invalid_chunk_schedule",
            f"chunk_length_schedule must be 1-{MAX_SCHEDULE_LEN} integers between "
            f"{MIN_SCHEDULE_CHARS} and {MAX_SCHEDULE_CHARS}",
        )
    return tuple(int(n) for n in schedule)


class TextSegmenter:
    """Incremental text -> segments worth speaking. Never cuts inside a word (unless it is enormous)."""

    def __init__(self, schedule: Sequence[int] = DEFAULT_CHUNK_SCHEDULE) -> None:
        self.schedule = check_schedule(schedule)
        self._buffer = ""
        self._emitted = 0  # segments since the start or the last flush

    @property
    def buffered(self) -> int:
        """Characters received and not yet released."""
        return len(self._buffer)

    def push(self, text: str) -> list[str]:
        """Add text; returns the segments that became complete (often none)."""
        self._buffer += text
        return self._drain()

    def trigger(self) -> list[str]:
        """``try_trigger_generation``: release everything up to the last complete word now."""
        out = self._drain()
        cut = self._last_space()
        if cut:
            out += self._take(cut)
        return out

    def flush(self) -> list[str]:
        """Release everything buffered (a partial last word too); the next segment is short again."""
        out = self._drain() + self._take(len(self._buffer))
        self._emitted = 0
        return out

    # ------------------------------------------------------------------------------------------------
    def _threshold(self) -> int:
        return self.schedule[min(self._emitted, len(self.schedule) - 1)]

    def _take(self, cut: int) -> list[str]:
        segment, self._buffer = self._buffer[:cut].strip(), self._buffer[cut:]
        if not segment:
            return []
        self._emitted += 1
        return [segment]

    def _last_space(self) -> int:
        stripped = self._buffer.rstrip()
        if len(stripped) < len(self._buffer):
            return len(self._buffer)  # ends in whitespace: every word is complete
        i = max(stripped.rfind(" "), stripped.rfind("\n"), stripped.rfind("\t"))
        return i + 1 if i > 0 else 0

    def _sentence_cut(self) -> int | None:
        cut = None
        for m in _SENTENCE_END.finditer(self._buffer):
            before = self._buffer[: m.start()]
            token = _LAST_TOKEN.search(before)
            word = token.group(1).lstrip("\"'“‘([").lower() if token else ""
            punct = self._buffer[m.start() : m.end()].strip()
            if punct == "." and (word in _ABBREVIATIONS or re.fullmatch(r"[a-z]", word)):
                continue  # "Dr. Smith", "J. R. R. Tolkien"
            if before.strip():
                cut = m.end()
        return cut

    def _length_cut(self) -> int | None:
        clause = None
        for m in _CLAUSE_END.finditer(self._buffer):
            if len(self._buffer[: m.start()].strip()) >= MIN_SCHEDULE_CHARS:
                clause = m.end()
        if clause is not None:
            return clause
        space = self._last_space()
        if space:
            return space
        return len(self._buffer) if len(self._buffer) >= MAX_WORD_CHARS else None

    def _drain(self) -> list[str]:
        out: list[str] = []
        while self._buffer:
            cut = self._sentence_cut()
            if cut is None and len(self._buffer) >= self._threshold():
                cut = self._length_cut()
            if cut is None:
                break
            out += self._take(cut)
        return out


def trailing_pause_s(segment: str) -> float:
    """The pause a segment's last punctuation asks for (the planner leaves none after the last piece)."""
    tail = segment.rstrip().rstrip("\"'”’)]")
    if tail.endswith((".", "!", "?", "…")):
        return SENTENCE_PAUSE
    if tail.endswith((",", ";", ":", "—", "–")):
        return CLAUSE_PAUSE
    return 0.0


# ---------------------------------------------------------------------------------------------- timings
@dataclass(frozen=True)
class WordSpan:
    """A word and when it is spoken, in milliseconds from the start of the session's audio."""

    word: str
    start_ms: int
    end_ms: int


@dataclass
class CharAlignment:
    """ElevenLabs' alignment: per character, start and duration in ms from the start of its chunk."""

    chars: list[str] = field(default_factory=list)
    starts_ms: list[int] = field(default_factory=list)
    durations_ms: list[int] = field(default_factory=list)

    def add_space(self, at_s: float) -> None:
        self.chars.append(" ")
        self.starts_ms.append(max(0, round(at_s * 1000)))
        self.durations_ms.append(0)

    def extend(self, other: CharAlignment) -> None:
        self.chars += other.chars
        self.starts_ms += other.starts_ms
        self.durations_ms += other.durations_ms

    def to_json(self) -> dict[str, list[Any]]:
        return {"chars": self.chars, "charStartTimesMs": self.starts_ms, "charDurationsMs": self.durations_ms}


def _weight(word: str, phonemes: str | None) -> int:
    if phonemes is not None:
        return sum(ch.isalpha() or ch in "ːˑ" for ch in phonemes)
    return sum(ch.isalnum() for ch in word)


def estimate_word_timings(
    piece: Piece, speech: FloatArray, sample_rate: int, spans: WordSpans | None = None
) -> list[tuple[str, float, float]]:
    """(word, start_s, end_s) for each word of ``piece``, from its audio ``speech`` (pause excluded).

    ``spans`` are the model's own times for the piece's phoneme words: used as they are when there is one
    per word of the text; otherwise the speech is shared among the words by phoneme count.
    """
    words = piece.text.split()
    if not words or len(speech) == 0:
        return []
    if spans is not None and len(spans) == len(words):
        return [(w, a, b) for w, (a, b) in zip(words, spans, strict=True)]
    level = np.abs(speech)
    loud = np.flatnonzero(level > max(0.02 * float(level.max()), 1e-4))
    begin, end = (int(loud[0]), int(loud[-1]) + 1) if loud.size else (0, len(speech))
    phoneme_words = piece.phonemes.split()
    aligned = len(phoneme_words) == len(words)
    weights = [_weight(w, phoneme_words[i] if aligned else None) for i, w in enumerate(words)]
    total = sum(weights) or len(words)
    if not sum(weights):
        weights = [1] * len(words)
    span = (end - begin) / sample_rate
    t = begin / sample_rate
    out = []
    for word, weight in zip(words, weights, strict=True):
        d = span * weight / total
        out.append((word, t, t + d))
        t += d
    return out


def char_alignment(words: Sequence[tuple[str, float, float]], origin_s: float) -> CharAlignment:
    """Characters of ``words`` (space separated) with times relative to ``origin_s``."""
    al = CharAlignment()
    for i, (word, start, end) in enumerate(words):
        per = (end - start) / max(1, len(word))
        for j, ch in enumerate(word):
            al.chars.append(ch)
            al.starts_ms.append(max(0, round((start + j * per - origin_s) * 1000)))
            al.durations_ms.append(max(0, round(per * 1000)))
        if i + 1 < len(words):
            al.add_space(end - origin_s)
    return al


def _word_key(word: str) -> str:
    return "".join(ch for ch in word.lower() if ch.isalnum())


class OriginalTimer:
    """Times for the words as the client wrote them, from the times of the words as spoken.

    The front end rewrites text ("10:30" becomes "ten thirty"); difflib lines the two word lists up.
    A word that matches takes its spoken word's time; a rewritten run shares the time of what it became
    (by character count); a word that was dropped gets a zero-length time where it would have been.
    ``add`` takes the spoken words' times as pieces are rendered and returns the written words that are
    complete so far, in order; ``rest`` the remainder at the end.
    """

    def __init__(self, original: Sequence[str], spoken: Sequence[str]) -> None:
        self.n = len(spoken)
        self.timed: list[tuple[str, float, float]] = []
        self.plan: list[tuple[str, int, int, float, float]] = []
        self.next = 0
        matcher = difflib.SequenceMatcher(
            a=[_word_key(w) for w in original], b=[_word_key(w) for w in spoken], autojunk=False
        )
        for tag, i1, i2, j1, j2 in matcher.get_opcodes():
            if tag == "equal":
                self.plan += [(original[i1 + k], j1 + k, j1 + k + 1, 0.0, 1.0) for k in range(i2 - i1)]
            elif tag in ("replace", "delete"):
                run = original[i1:i2]
                total = sum(len(w) for w in run) or 1
                done = 0
                for w in run:
                    self.plan.append((w, j1, j2, done / total, (done + len(w)) / total))
                    done += len(w)

    def _time(self, j1: int, j2: int, f0: float, f1: float) -> tuple[float, float] | None:
        timed = self.timed
        if j2 > j1:
            if len(timed) < j2:
                return None
            start, end = timed[j1][1], timed[j2 - 1][2]
            return start + f0 * (end - start), start + f1 * (end - start)
        if j1 < len(timed):
            return timed[j1][1], timed[j1][1]
        if j1 >= self.n and len(timed) >= self.n:
            at = timed[-1][2] if timed else 0.0
            return at, at
        return None

    def _ready(self, final: bool) -> list[tuple[str, float, float]]:
        out = []
        while self.next < len(self.plan):
            word, j1, j2, f0, f1 = self.plan[self.next]
            span = self._time(j1, j2, f0, f1)
            if span is None:
                if not final:
                    break
                at = self.timed[-1][2] if self.timed else 0.0
                span = (at, at)
            out.append((word, *span))
            self.next += 1
        return out

    def add(self, words: Sequence[tuple[str, float, float]]) -> list[tuple[str, float, float]]:
        self.timed += words
        return self._ready(final=False)

    def rest(self) -> list[tuple[str, float, float]]:
        return self._ready(final=True)


# ---------------------------------------------------------------------------------------------- session
@dataclass
class SessionChunk:
    """Encoded audio plus what it says. ``alignment`` times are relative to this chunk's audio."""

    audio: bytes
    words: list[WordSpan] = field(default_factory=list)
    alignment: CharAlignment | None = None
    normalized_alignment: CharAlignment | None = None
    start_s: float = 0.0  # where this chunk's audio starts in the session's output


def check_output(fmt: str, sample_rate: int | None, speed: float) -> None:
    """The checks ``SpeechPipeline.prepare`` makes, before any text is known."""
    if fmt not in FORMATS:
        raise VoxError("unsupported_format", f"format {fmt!r} is not one of {', '.join(sorted(FORMATS))}")
    if not (MIN_SPEED <= speed <= MAX_SPEED):
        raise VoxError("invalid_speed", f"speed must be between {MIN_SPEED} and {MAX_SPEED}, got {speed}")
    if sample_rate is not None and sample_rate not in OUTPUT_SAMPLE_RATES:
        raise VoxError(
            "invalid_sample_rate", f"sample_rate must be one of {', '.join(map(str, OUTPUT_SAMPLE_RATES))}"
        )


class SpeechSession:
    """One output stream fed with text segments over time (used from one thread at a time)."""

    def __init__(
        self,
        pipeline: SpeechPipeline,
        voice: VoiceStyle,
        *,
        fmt: str = "pcm",
        sample_rate: int | None = None,
        speed: float = 1.0,
        bitrate: int | None = None,
        lexicon: Mapping[str, str] | None = None,
        hook: ChunkHook | None = None,
        cancel: threading.Event | None = None,
    ) -> None:
        check_output(fmt, sample_rate, speed)
        self.pipeline = pipeline
        self.voice = voice
        self.format = fmt
        self.speed = speed
        self.lexicon = lexicon
        self.hook = hook
        self.cancel = cancel or threading.Event()
        self.sample_rate = pipeline.tts.sample_rate
        self.encoder = StreamEncoder(fmt, self.sample_rate, out_sample_rate=sample_rate, bitrate=bitrate)
        self.out_sample_rate = self.encoder.out_sample_rate
        self._normalizer: StreamNormalizer | None = None
        self._pushed = 0  # samples into the normalizer: the session's timeline
        self._emitted = 0  # samples out of it (into the hook and the encoder)
        self._anchor = 0  # where the next non-empty chunk's audio starts
        self._pending: list[tuple[list[tuple[str, float, float]], list[tuple[str, float, float]] | None]] = []
        self._digest = pipeline.text_hash()  # keyed, as every record of spoken text
        self.text_chars = 0
        self.pieces = 0
        self.first_audio_at: float | None = None

    # -- what was produced ---------------------------------------------------------------------------
    @property
    def audio_s(self) -> float:
        return self._pushed / self.sample_rate

    @property
    def text_sha256(self) -> str:
        return self._digest.hexdigest()

    def ahead_s(self, now: float | None = None) -> float:
        """Seconds of audio the listener has in hand (negative: waiting), if playback began at first audio."""
        if self.first_audio_at is None:
            return 0.0
        now = time.perf_counter() if now is None else now
        return self.first_audio_at + self._emitted / self.sample_rate - now

    # -- rendering -----------------------------------------------------------------------------------
    def prepare(self, text: str, *, short_start: bool | None = None) -> PreparedSpeech | None:
        """Plan a segment; None when it has nothing to speak (only punctuation or emoji, say)."""
        if short_start is None:
            short_start = self.ahead_s() < DRY_AHEAD_S
        try:
            prepared = self.pipeline.prepare(
                text,
                self.voice,
                fmt=self.format,
                speed=self.speed,
                lexicon=self.lexicon,
                ssml=False,
                first_piece_phonemes=FIRST_PIECE_PHONEMES if short_start else None,
            )
        except VoxError as exc:
            if exc.code in {"empty_text", "no_speakable_text"}:
                return None
            raise
        # The whole session is one request: its audio, not only each segment's, is bounded.
        self.pipeline.check_audio_length(prepared.estimated_audio_s, already_s=self.audio_s)
        self._digest.update(text.encode("utf-8"))
        self.text_chars += len(text)
        return prepared

    def speak(
        self,
        prepared: PreparedSpeech,
        *,
        arrival: float | None = None,
        original: str | None = None,
        pause_after_s: float = 0.0,
    ) -> Iterator[SessionChunk]:
        """Render a prepared segment piece by piece; stops early when ``cancel`` is set.

        ``arrival`` (perf_counter) is when its text came: its first piece is due then if the listener has
        nothing left to play. ``original`` is the text as the client sent it, for ``alignment``.
        """
        arrival = time.perf_counter() if arrival is None else arrival
        sr = self.sample_rate
        timer = (
            OriginalTimer(original.split(), [w for p in prepared.pieces for w in p.text.split()])
            if original
            else None
        )

        def due() -> float:
            if self.first_audio_at is None:
                return arrival
            # Due when the listener runs out of audio, but never before the text existed.
            return max(arrival, self.first_audio_at + self._emitted / sr)

        for chunk, piece, first, speech_n, spans in self.pipeline.timed_chunks(
            prepared, self.cancel, deadline=due
        ):
            if not first:  # more of a long pause
                yield self._push(chunk)
                continue
            start_s = self._pushed / sr
            words = [
                (w, start_s + a, start_s + b)
                for w, a, b in estimate_word_timings(piece, chunk[:speech_n], sr, spans)
            ]
            spoken_original = None
            if timer is not None:
                said = piece.text.split()
                end = words[-1][2] if words else start_s
                spoken_original = timer.add(words + [(w, end, end) for w in said[len(words) :]])
            self.pieces += 1
            self._pending.append((words, spoken_original))
            yield self._push(chunk)
        if timer is not None and not self.cancel.is_set():
            rest = timer.rest()
            if rest:
                self._pending.append(([], rest))
        if not self.cancel.is_set():
            # The segment's own closing pause; at least the limiter's look-ahead, so its last sound is
            # sent now rather than when the next text arrives.
            pause = int(round(pause_after_s * sr))
            latency = self._normalizer.latency_samples if self._normalizer is not None else 0
            if self._normalizer is not None:
                tail = self._push(np.zeros(max(pause, latency), dtype=np.float32))
                if tail.audio:
                    yield tail

    def finish(self) -> SessionChunk:
        """The rest of the audio and the end of the encoded stream."""
        out = self._normalizer.flush() if self._normalizer is not None else np.zeros(0, np.float32)
        chunk = self._emit(out)
        chunk.audio += self.encoder.close()
        return chunk

    def _push(self, samples: FloatArray) -> SessionChunk:
        if self._normalizer is None:
            self._normalizer = StreamNormalizer(
                self.sample_rate,
                gain_db=self.pipeline.stream_gain_db(self.voice, samples),
                target_lufs=self.pipeline.loudness_lufs,
            )
        self._pushed += len(samples)
        return self._emit(self._normalizer.push(samples))

    def _emit(self, samples: FloatArray) -> SessionChunk:
        data = b""
        if len(samples):
            if self.hook is not None:
                samples = self.hook(samples, self._emitted)
            self._emitted += len(samples)
            data = self.encoder.push(samples)
        if not data:
            return SessionChunk(b"")
        if self.first_audio_at is None:
            self.first_audio_at = time.perf_counter()
        origin = self._anchor / self.sample_rate
        chunk = SessionChunk(data, start_s=origin)
        if self._pending:
            normalized, original = CharAlignment(), CharAlignment()
            for words, spoken in self._pending:
                chunk.words += [WordSpan(w, round(a * 1000), round(b * 1000)) for w, a, b in words]
                for target, source in (
                    (normalized, words),
                    (original, spoken if spoken is not None else words),
                ):
                    if target.chars and source:
                        target.add_space(source[0][1] - origin)
                    target.extend(char_alignment(source, origin))
            chunk.normalized_alignment = normalized
            chunk.alignment = original
            self._pending = []
        self._anchor = self._emitted
        return chunk
