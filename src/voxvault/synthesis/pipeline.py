"""Text -> pieces -> acoustic model -> loudness -> encoded bytes, as a whole file or a stream.

Everything a request can get wrong is checked in ``prepare`` before any audio is produced, so a streamed
response never starts and then fails on bad input. Rendering is piece by piece: the first piece is kept
short so the first audio leaves quickly; later pieces are longer (fewer model calls, better prosody).
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Callable, Generator, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field, replace
from typing import NamedTuple, Protocol

import numpy as np

from voxvault import audio as _audio  # loudness (SciPy) loads on first use
from voxvault.audio import CONTENT_TYPES, FORMATS, StreamEncoder, encode
from voxvault.engines.base import (
    AdaptableTTS,
    AdaptedSpeaker,
    AdaptedWeights,
    FloatArray,
    Interrupted,
    Interruptible,
    TimedSpeech,
    TimedTTS,
    TTSEngine,
)
from voxvault.errors import VoxError
from voxvault.synthesis.admission import PieceScheduler
from voxvault.text import Piece, TextFrontend
from voxvault.text.ssml import is_ssml
from voxvault.text.validity import check_text

log = logging.getLogger(__name__)

MIN_SPEED, MAX_SPEED = 0.25, 4.0
# Speeds the model is asked for; the rest of a request's speed is a time-stretch of its output (FFmpeg's
# atempo, ``_speak``). Kokoro accepts 0.5-2.0 itself, but its own fast and slow speech is misheard far
# more: Whisper's WER at 0.5x/1.5x/2x was 0.47/0.64/0.87 spoken by the model, 0.08/0.26/0.40 as its 1x
# speech stretched (bench/speed_range.py, docs/clients.md). So the model always speaks at 1x.
ENGINE_SPEED_RANGE = (1.0, 1.0)
# A stream's first piece is short so its audio leaves after one quick model call (a word or two, well
# under a second of speech); each later piece may be PIECE_GROWTH times longer than the one before, until
# pieces are whole sentences. Rendering a piece then takes less time than playing the one before it, so
# playback does not stall while the pieces grow to their natural size. A model call's cost follows the
# audio frames it makes (onnxruntime CPU time ~7 ms a frame, next to nothing per phoneme: issue 28's
# profile in docs/benchmarks.md), and the frames of a few words depend on which words: "Okay." is 44
# frames, "I checked" 30, "Good morning" 68 (a cut without punctuation lengthens the last word and the
# pause after it). 8 phonemes, with the phrase rules below, gives first pieces whose frames are at the
# median 1.05 times "Okay."'s on the 29 openers of bench/openers.py (voice alpha; 12 phonemes: 1.25
# before these rules, 1.36 with them). A first piece is never a word cut in two ("Absolutely," is one
# piece however long) nor phrase openers alone ("The next").
FIRST_PIECE_PHONEMES = 8
PIECE_GROWTH = 2.0
RAMP_TOLERANCE = 1.3
# Words that open a phrase (articles, prepositions, conjunctions, possessives): a first piece cut inside a
# clause does not end on one (``SpeechPipeline._first_cut_before_phrase``).
PHRASE_OPENERS = frozenset(
    [
        "a",
        "an",
        "the",
        "to",
        "of",
        "for",
        "on",
        "in",
        "at",
        "by",
        "with",
        "from",
        "into",
        "about",
        "and",
        "or",
        "but",
        "so",
        "that",
        "if",
        "as",
        "my",
        "your",
        "our",
        "their",
        "his",
        "her",
        "its",
        "this",
        "these",
        "those",
    ]
)
OUTPUT_SAMPLE_RATES = (8000, 16000, 22050, 24000, 32000, 44100, 48000)  # ElevenLabs has pcm_32000
WordSpans = tuple[tuple[float, float], ...]
# Silence (SSML breaks, sentence pauses) leaves in chunks of at most this long: a request's pauses never
# exist as one array, however long they add up to (security audit, finding 1).
PAUSE_CHUNK_S = 1.0
# Up-front estimate of how long a piece is spoken, to refuse a request before any synthesis: Kokoro
# speaks 0.05-0.07 s per phoneme character plus a lead-in and tail per piece (measured on three presets
# at speeds 0.5-2: prose is estimated 1.1-1.3 times its real length, short exclamations down to 0.75).
SECONDS_PER_PHONEME = 0.065
PIECE_OVERHEAD_S = 0.3
# Backstop while rendering: a request whose audio runs this far past the limit is stopped. It is wider
# than the estimate's worst undershoot, so a request the estimate admits is never cut off.
AUDIO_LIMIT_SLACK = 1.5


@dataclass(frozen=True)
class VoiceStyle:
    """What the acoustic model needs to speak in a voice: its id (for records), its style and, for a voice
    whose decoder was adapted, its own weights (spoken by the adaptable engine)."""

    voice_id: str
    style: FloatArray
    adapted: AdaptedWeights | None = None

    @property
    def sound_key(self) -> str:
        """Changes whenever what the voice sounds like changes (a fine-tune, a rollback)."""
        digest = hashlib.sha256(np.ascontiguousarray(self.style, dtype=np.float32).tobytes()).hexdigest()
        return f"{self.voice_id}:{digest[:16]}:{self.adapted.name if self.adapted else ''}"


@dataclass
class PreparedSpeech:
    """A validated request, ready to render; holds no raw text, only its pieces and digests."""

    pieces: list[Piece]
    voice: VoiceStyle
    format: str
    speed: float
    sample_rate: int
    text_sha256: str
    text_chars: int
    estimated_audio_s: float = 0.0  # what ``estimate_audio_s`` expects the pieces to last

    @property
    def content_type(self) -> str:
        return CONTENT_TYPES[self.format]


def _word_key(word: str) -> str:
    return "".join(ch for ch in word.lower() if ch.isalpha())


def _openers_only(piece: Piece) -> bool:
    return all(_word_key(w) in PHRASE_OPENERS for w in piece.text.split())


def estimate_audio_s(pieces: Sequence[Piece], speed: float = 1.0) -> float:
    """Seconds of audio ``pieces`` will render at ``speed``: pauses exact, speech estimated."""
    total = 0.0
    for piece in pieces:
        spoken = PIECE_OVERHEAD_S + SECONDS_PER_PHONEME * len(piece.phonemes)
        total += spoken / (speed * piece.speed) + piece.pause_after
    return total


class PieceChunk(NamedTuple):
    """Part of one piece's audio, in order. A piece's first chunk holds its speech (``speech_samples``
    samples, ``spans`` where the engine knows when each word is spoken) and the start of its pause; the
    rest of a long pause follows in further chunks (``first`` False) of at most PAUSE_CHUNK_S each."""

    samples: FloatArray
    piece: Piece
    first: bool
    speech_samples: int
    spans: WordSpans | None


@dataclass
class RenderedSpeech:
    audio: bytes
    samples: FloatArray
    sample_rate: int
    duration: float
    content_type: str
    output_sha256: str
    timings: dict[str, float] = field(default_factory=dict)
    watermark_id: int | None = None
    generation_id: str | None = None  # the record this output was made under (GenerationService)


class Digest(Protocol):
    """What hashlib and hmac objects share, fed incrementally (a WebSocket session's segments)."""

    def update(self, data: bytes, /) -> None: ...

    def hexdigest(self) -> str: ...


# Called with (float audio chunk at engine rate, offset in samples) -> the chunk to emit. The watermark
# and any other per-output post-processing plug in here.
ChunkHook = Callable[[FloatArray, int], FloatArray]


def check_request(text: str, fmt: str, speed: float, sample_rate: int | None = None) -> None:
    """The checks that need no engine: the CLI runs them before loading one (a bad flag answers at once)."""
    check_text(text, "the input")
    if fmt not in FORMATS:
        raise VoxError(
            "unsupported_format", f"response_format {fmt!r} is not one of {', '.join(sorted(FORMATS))}"
        )
    if not (MIN_SPEED <= speed <= MAX_SPEED):
        raise VoxError("invalid_speed", f"speed must be between {MIN_SPEED} and {MAX_SPEED}, got {speed}")
    if sample_rate is not None and sample_rate not in OUTPUT_SAMPLE_RATES:
        raise VoxError(
            "invalid_sample_rate",
            f"sample_rate must be one of {', '.join(map(str, OUTPUT_SAMPLE_RATES))}",
        )


class SpeechPipeline:
    """Stateless per request; holds the loaded engines and shared limits."""

    def __init__(
        self,
        tts: TTSEngine,
        frontend: TextFrontend,
        *,
        loudness_lufs: float = -18.0,
        max_input_chars: int = 20_000,
        max_audio_s: float | None = None,
        text_hash: Callable[[], Digest] | None = None,
        scheduler: PieceScheduler | None = None,
        adaptable_tts: Callable[[], AdaptableTTS] | None = None,
        adapted_on_tts: bool = True,
        follow_as_trained: bool = False,
    ) -> None:
        self.tts = tts
        # Voices with adapted weights speak through ``tts`` when it takes their weights and
        # ``adapted_on_tts`` (and, with ``follow_as_trained``, the weights were not measured closer as
        # trained: ``AdaptedWeights.as_trained``), else through this engine (loaded on first use).
        self.adaptable_tts = adaptable_tts
        self.adapted_on_tts = adapted_on_tts
        self.follow_as_trained = follow_as_trained
        self.frontend = frontend
        # Shares the model between concurrent requests piece by piece, earliest deadline first.
        self.scheduler = scheduler if scheduler is not None else PieceScheduler()
        self.loudness_lufs = loudness_lufs
        self.max_input_chars = max_input_chars
        self.max_audio_s = max_audio_s  # most audio one request may render (None: no limit)
        # What records the text by (PreparedSpeech.text_sha256): the service passes a keyed hash
        # (governance/text_hash.py); plain SHA-256 for a pipeline used on its own.
        self.text_hash: Callable[[], Digest] = text_hash or hashlib.sha256
        # Stream gain per voice, measured on the first long-enough piece it speaks and then held, so
        # every stream of a voice has the same level and no stream waits to measure.
        self._voice_gain_db: dict[str, float] = {}
        self._gain_lock = threading.Lock()

    # -- validation ------------------------------------------------------------------------------------
    def prepare(
        self,
        text: str,
        voice: VoiceStyle,
        *,
        fmt: str = "mp3",
        speed: float = 1.0,
        sample_rate: int | None = None,
        lexicon: Mapping[str, str] | None = None,
        ssml: bool | None = None,
        first_piece_phonemes: int | None = None,
    ) -> PreparedSpeech:
        """Check and plan a request. ``first_piece_phonemes``: streams ask for a short first piece so audio
        starts sooner; a whole file has nothing to gain from it and keeps its clauses whole (a cut inside a
        short opening clause such as "I, Sam Taylor," can cost the listener a word)."""
        check_request(text, fmt, speed, sample_rate)
        if len(text) > self.max_input_chars:
            raise VoxError(
                "input_too_long",
                f"input has {len(text)} characters; the limit is {self.max_input_chars} per request "
                "(use a batch job for longer texts)",
                413,
            )
        pieces = self.frontend.plan(
            text, lexicon=lexicon, ssml=ssml, first_piece_max_phonemes=first_piece_phonemes
        )
        if first_piece_phonemes is not None and not (is_ssml(text) if ssml is None else ssml):
            if len(pieces) > 1 and _openers_only(pieces[0]) and not pieces[0].pause_after:
                # "The | next train": a phrase's opening words are not a first piece on their own;
                # cut after the word that follows them ("The next | train").
                following = pieces[1].phonemes.split()[:1]
                first_piece_phonemes = len(pieces[0].phonemes) + 1 + sum(map(len, following))
                pieces = self.frontend.plan(
                    text, lexicon=lexicon, ssml=False, first_piece_max_phonemes=first_piece_phonemes
                )
            pieces = self._ramp(pieces, first_piece_phonemes, lexicon)
            pieces = self._first_cut_before_phrase(pieces, first_piece_phonemes)
        estimated = estimate_audio_s(pieces, speed)
        self.check_audio_length(estimated)
        digest = self.text_hash()
        digest.update(text.encode("utf-8"))
        return PreparedSpeech(
            pieces=pieces,
            voice=voice,
            format=fmt,
            speed=speed,
            sample_rate=sample_rate or self.tts.sample_rate,
            text_sha256=digest.hexdigest(),
            text_chars=len(text),
            estimated_audio_s=estimated,
        )

    def check_audio_length(self, estimated_s: float, *, already_s: float = 0.0) -> None:
        """VoxError ``audio_too_long`` (413) when ``already_s`` plus ``estimated_s`` passes the limit."""
        limit = self.max_audio_s
        if limit is not None and already_s + estimated_s > limit:
            so_far = f" after the {already_s:.0f} s already rendered" if already_s else ""
            raise VoxError(
                "audio_too_long",
                f"this request would render about {estimated_s:.0f} s of audio{so_far}; the limit is "
                f"{limit:g} s per request (max_audio_seconds); split the text or lower its pauses",
                413,
                limit_s=limit,
                estimated_s=round(estimated_s, 1),
            )

    def _ramp(self, pieces: list[Piece], first_limit: int, lexicon: Mapping[str, str] | None) -> list[Piece]:
        """Re-cut the pieces so each is at most PIECE_GROWTH times the limit of the one before it.

        A cut that would leave a word or two on their own is undone: a piece may run over its limit by
        RAMP_TOLERANCE rather than end a sentence with a one-word piece.
        """
        out: list[Piece] = []
        rest = list(pieces)
        limit = float(first_limit)
        while rest:
            piece = rest.pop(0)
            last = out[-1] if out else None
            if (
                last is not None
                and last.pause_after == 0.0
                and last.speed == piece.speed
                and len(last.phonemes) + 1 + len(piece.phonemes) <= RAMP_TOLERANCE * limit
            ):
                out[-1] = replace(
                    piece,
                    text=f"{last.text} {piece.text}".strip(),
                    phonemes=f"{last.phonemes} {piece.phonemes}",
                )
                continue
            if out:
                limit *= PIECE_GROWTH
            if limit >= self.frontend.max_phonemes:
                out += [piece, *rest]
                break
            if len(piece.phonemes) <= RAMP_TOLERANCE * limit or not any(ch.isalpha() for ch in piece.text):
                out.append(piece)
                continue
            try:
                parts = self.frontend.plan(
                    piece.text, lexicon=lexicon, ssml=False, first_piece_max_phonemes=int(limit)
                )
            except VoxError:
                out.append(piece)  # a text the planner cannot redo (a chopped word): keep the piece
                continue
            parts[-1] = replace(parts[-1], pause_after=piece.pause_after)
            out.append(parts[0])
            rest = parts[1:] + rest
        return out

    def _first_cut_before_phrase(self, pieces: list[Piece], first_limit: int) -> list[Piece]:
        """Where a ramp piece was cut inside a clause after a word that opens a phrase ("Thanks for
        calling the | clinic"), move the cut before it ("Thanks for calling | the clinic"): the seam then
        falls on a phrase boundary, where a speaker could pause, and the first piece gets shorter. The
        same for the later cuts of the ramp ("The next | train to the | airport" -> "The next | train |
        to the airport")."""
        if len(pieces) < 2:
            return pieces
        out = list(pieces)
        limit = float(first_limit)
        for i in range(len(out) - 1):
            room = RAMP_TOLERANCE * PIECE_GROWTH * limit
            moved = self._cut_before_phrase(out[i], out[i + 1], room)
            if moved is not None:
                out[i], out[i + 1] = moved
            limit *= PIECE_GROWTH
            if limit >= self.frontend.max_phonemes:
                break
        return out

    def _cut_before_phrase(self, piece: Piece, after: Piece, room: float) -> tuple[Piece, Piece] | None:
        """``piece`` without its trailing phrase-opening words and ``after`` with them in front; None when
        nothing moves (no such words, a pause between them, or ``after`` would pass ``room``)."""
        words, phones = piece.text.split(), piece.phonemes.split()
        if piece.pause_after or piece.speed != after.speed or len(words) != len(phones):
            return None
        keep = len(words)
        while keep > 1 and _word_key(words[keep - 1]) in PHRASE_OPENERS:
            keep -= 1
        if keep == len(words):
            return None
        moved_ph = " ".join([*phones[keep:], after.phonemes])
        if len(moved_ph) > min(self.frontend.max_phonemes, max(room, len(after.phonemes))):
            return None
        head = replace(piece, text=" ".join(words[:keep]), phonemes=" ".join(phones[:keep]))
        tail = replace(after, text=" ".join([*words[keep:], after.text]), phonemes=moved_ph)
        return head, tail

    # -- rendering -------------------------------------------------------------------------------------
    def raw_chunks(
        self,
        prepared: PreparedSpeech,
        cancel: threading.Event | None = None,
        deadline: Callable[[], float] | None = None,
    ) -> Iterator[FloatArray]:
        """Model output per piece, pauses included, before loudness; stops early when ``cancel`` is set.

        Each model call waits for a scheduler slot; ``deadline`` (``time.perf_counter`` seconds) says
        when the piece is needed; without it every piece is due when rendering began (first come,
        first served).
        """
        chunks = self.timed_chunks(prepared, cancel, deadline)
        try:
            for chunk in chunks:
                yield chunk.samples
        finally:
            chunks.close()

    def timed_chunks(
        self,
        prepared: PreparedSpeech,
        cancel: threading.Event | None = None,
        deadline: Callable[[], float] | None = None,
    ) -> Generator[PieceChunk, None, None]:
        """``raw_chunks`` with each chunk's piece and, for its speech, when each of its phoneme words is
        spoken (seconds into the chunk) where the engine knows it from its durations.

        Silence is made as it is consumed, PAUSE_CHUNK_S at a time. Rendering stops with
        ``audio_too_long`` should the audio run AUDIO_LIMIT_SLACK past the request limit.
        """
        sr = self.tts.sample_rate
        pause_chunk = max(1, int(PAUSE_CHUNK_S * sr))
        limit = None if self.max_audio_s is None else int(self.max_audio_s * AUDIO_LIMIT_SLACK * sr)
        rendered = 0
        started = time.perf_counter()
        for piece in prepared.pieces:
            if cancel is not None and cancel.is_set():
                return
            due = deadline() if deadline is not None else started
            ticket = self.scheduler.acquire(due, cancel, cost=len(piece.phonemes))
            if ticket is None:
                return
            try:
                with self._interruptible(cancel):
                    spoken = self._speak(piece.phonemes, prepared.voice, prepared.speed * piece.speed)
            except Interrupted:
                return  # cancelled while the model spoke: the piece is dropped, the slot freed at once
            finally:
                self.scheduler.release(ticket)
            speech = spoken.audio.astype(np.float32, copy=False)
            pause_left = int(round(piece.pause_after * sr))
            head = min(pause_left, pause_chunk)
            pause_left -= head
            rendered += len(speech) + head
            if limit is not None and rendered + pause_left > limit:
                self.check_audio_length((rendered + pause_left) / sr)
            samples = np.concatenate([speech, np.zeros(head, np.float32)]) if head else speech
            yield PieceChunk(samples, piece, True, len(speech), spoken.word_spans)
            while pause_left > 0:
                if cancel is not None and cancel.is_set():
                    return
                n = min(pause_left, pause_chunk)
                pause_left -= n
                rendered += n
                yield PieceChunk(np.zeros(n, np.float32), piece, False, 0, None)

    def _interruptible(self, cancel: threading.Event | None) -> AbstractContextManager[None]:
        """Cut the model call in flight short when ``cancel`` is set, where the engine can (a barge-in
        then frees the cores within milliseconds instead of after the whole piece)."""
        if cancel is None or not isinstance(self.tts, Interruptible):
            return nullcontext()
        return self.tts.interrupted_by(cancel)

    def _speak(self, phonemes: str, voice: VoiceStyle, speed: float) -> TimedSpeech:
        """The engine speaks within ENGINE_SPEED_RANGE; the rest of ``speed`` is a time-stretch of its
        audio (FFmpeg's atempo), its word times scaled. A request's speed times an SSML prosody rate is
        held to MIN_SPEED..MAX_SPEED."""
        speed = min(max(speed, MIN_SPEED), MAX_SPEED)
        low, high = ENGINE_SPEED_RANGE
        engine_speed = min(max(speed, low), high)
        spoken = self._speak_engine(phonemes, voice, engine_speed)
        if engine_speed == speed:
            return spoken
        from voxvault.audio.tempo import change_tempo

        factor = speed / engine_speed
        audio = change_tempo(spoken.audio, self.tts.sample_rate, factor)
        spans = spoken.word_spans
        if spans is not None:
            end = len(audio) / self.tts.sample_rate
            spans = tuple((min(a / factor, end), min(b / factor, end)) for a, b in spans)
        return TimedSpeech(audio, spans)

    def _speak_engine(self, phonemes: str, voice: VoiceStyle, speed: float) -> TimedSpeech:
        adapted = voice.adapted
        engine: TTSEngine = self.tts
        takes_it = (
            isinstance(self.tts, AdaptedSpeaker)
            and adapted is not None
            and self.tts.speaks(adapted)
            and not (self.follow_as_trained and adapted.as_trained)
        )
        if adapted is not None and not (self.adapted_on_tts and takes_it):
            if self.adaptable_tts is None:
                raise VoxError(
                    "adapted_voice_unavailable", "this service cannot speak voices with adapted weights", 503
                )
            engine = self.adaptable_tts()
        if isinstance(engine, TimedTTS):
            return engine.synthesize_timed(phonemes, voice.style, speed, adapted)
        if adapted is None:
            return TimedSpeech(engine.synthesize(phonemes, voice.style, speed))
        assert isinstance(engine, AdaptedSpeaker)  # the configured engine took it, or PyTorch Kokoro
        return TimedSpeech(engine.synthesize_adapted(phonemes, voice.style, speed, adapted))

    def render(self, prepared: PreparedSpeech, hook: ChunkHook | None = None) -> RenderedSpeech:
        """The whole output as one file, loudness-normalised over the entire text."""
        t0 = time.perf_counter()
        chunks = list(self.raw_chunks(prepared))
        t_model = time.perf_counter()
        samples = np.concatenate(chunks) if chunks else np.zeros(0, np.float32)
        samples = _audio.normalize_loudness(samples, self.tts.sample_rate, self.loudness_lufs)
        if hook is not None:
            samples = hook(samples, 0)
        audio = encode(samples, self.tts.sample_rate, prepared.format, out_sample_rate=prepared.sample_rate)
        t_end = time.perf_counter()
        duration = len(samples) / self.tts.sample_rate
        log.info(
            "rendered voice=%s pieces=%d chars=%d audio_s=%.2f model_s=%.3f total_s=%.3f bytes=%d",
            prepared.voice.voice_id,
            len(prepared.pieces),
            prepared.text_chars,
            duration,
            t_model - t0,
            t_end - t0,
            len(audio),
        )
        return RenderedSpeech(
            audio=audio,
            samples=samples,
            sample_rate=self.tts.sample_rate,
            duration=duration,
            content_type=prepared.content_type,
            output_sha256=hashlib.sha256(audio).hexdigest(),
            timings={"model_s": t_model - t0, "total_s": t_end - t0},
        )

    def stream_gain_db(self, voice: VoiceStyle, first_chunk: FloatArray) -> float:
        """The fixed loudness gain a stream of ``voice`` uses (held per voice; see ``stream``)."""
        return self._gain_for(voice, first_chunk)

    def _gain_for(self, voice: VoiceStyle, first_chunk: FloatArray) -> float:
        cached = self._voice_gain_db.get(voice.sound_key)
        if cached is not None:
            return cached
        gain = _audio.loudness_gain_db(first_chunk, self.tts.sample_rate, self.loudness_lufs)
        if len(first_chunk) >= self.tts.sample_rate:
            with self._gain_lock:
                self._voice_gain_db[voice.sound_key] = gain
        return gain

    def stream(
        self,
        prepared: PreparedSpeech,
        hook: ChunkHook | None = None,
        cancel: threading.Event | None = None,
        stats: dict[str, float] | None = None,
    ) -> Iterator[bytes]:
        """Encoded bytes as soon as each piece is ready.

        Loudness: a stream cannot know its integrated loudness ahead, so one gain per voice (measured on
        the first piece of at least a second it ever spoke) is held for the whole stream; Kokoro's level
        is steady across pieces. A look-ahead limiter keeps peaks below full scale. ``stats`` receives
        first_audio_s, audio_s and total_s when given.
        """
        sr = self.tts.sample_rate
        t0 = time.perf_counter()
        encoder = StreamEncoder(prepared.format, sr, out_sample_rate=prepared.sample_rate)
        normalizer: _audio.StreamNormalizer | None = None
        offset = 0
        first = True
        first_audio_at: float | None = None

        def due() -> float:
            # First audio is due when the request came; after that, when the audio sent runs out.
            return t0 if first_audio_at is None else first_audio_at + offset / sr

        def emit(samples: FloatArray) -> bytes:
            nonlocal offset
            if len(samples) == 0:
                return b""
            if hook is not None:
                samples = hook(samples, offset)
            offset += len(samples)
            return encoder.push(samples)

        def ready(data: bytes) -> bool:
            nonlocal first, first_audio_at
            if data and first:
                first_audio_at = time.perf_counter()
                if stats is not None:
                    stats["first_audio_s"] = first_audio_at - t0
            first = first and not data
            return bool(data)

        for chunk in self.raw_chunks(prepared, cancel, deadline=due):
            if normalizer is None:
                normalizer = _audio.StreamNormalizer(
                    sr, gain_db=self._gain_for(prepared.voice, chunk), target_lufs=self.loudness_lufs
                )
            data = emit(normalizer.push(chunk))
            if ready(data):
                yield data
        if cancel is not None and cancel.is_set():
            return
        data = (emit(normalizer.flush()) if normalizer is not None else b"") + encoder.close()
        if ready(data):
            yield data
        if stats is not None:
            stats["audio_s"] = offset / sr
            stats["total_s"] = time.perf_counter() - t0
