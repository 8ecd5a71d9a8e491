"""English speech recognition and forced alignment with PocketSphinx 5 (bundled en-us model).

PocketSphinx is small and fully offline; its accuracy on free speech is modest, so use it for checks that
tolerate errors (was a challenge phrase said? where do the words fall?) rather than for verbatim transcripts.
Decoders are slow to build and not thread-safe: a fixed pool is built once and each call borrows one.
"""

from __future__ import annotations

import logging
import queue
import re
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

import jiwer
import numpy as np

from voxvault.engines.base import FloatArray, SpeechRecognizer, WordTiming, mono_float32

if TYPE_CHECKING:
    from pocketsphinx import Decoder  # loaded with the first recogniser, not with the consent module

log = logging.getLogger(__name__)

SAMPLE_RATE = 16000
SILENCE_PEAK = 1e-4  # about -80 dBFS: digital silence, PocketSphinx would hallucinate a word on it
_VARIANT = re.compile(r"\(\d+\)$")  # "read(2)" -> "read"
_NON_WORD = re.compile(r"[^a-z0-9' ]+")


def normalize_text(text: str) -> str:
    """Lowercase words separated by single spaces; punctuation (except apostrophes) becomes a space."""
    cleaned = _NON_WORD.sub(" ", text.lower().replace("\u2019", "'"))
    words = [w.strip("'") for w in cleaned.split()]
    return " ".join(w for w in words if w)


def word_error_rate(reference: str, hypothesis: str) -> float:
    """WER of ``hypothesis`` against ``reference``, both normalised (1.0 for an empty hypothesis)."""
    ref = normalize_text(reference)
    hyp = normalize_text(hypothesis)
    if not ref:
        return 0.0 if not hyp else 1.0
    if not hyp:
        return 1.0
    return float(jiwer.wer(ref, hyp))


def phrase_recall(phrase: str, transcript: str) -> float:
    """Share of the phrase's words found, in order, in the transcript (extra words around it cost nothing)."""
    ref = normalize_text(phrase)
    hyp = normalize_text(transcript)
    if not ref:
        return 0.0
    if not hyp:
        return 0.0
    result = jiwer.process_words(ref, hyp)
    return result.hits / len(ref.split())


def mean_recall(
    asr: SpeechRecognizer, clips: Sequence[FloatArray], texts: Sequence[str], sample_rate: int
) -> float:
    """Mean :func:`phrase_recall` of each clip's transcript against the text it should say."""
    return float(
        np.mean(
            [
                phrase_recall(text, asr.transcribe(clip, sample_rate))
                for clip, text in zip(clips, texts, strict=True)
            ]
        )
    )


@dataclass(frozen=True)
class PhraseCheck:
    """How well a spoken clip matches an expected phrase."""

    transcript: str
    recall: float  # share of the phrase's words recognised, in order
    wer: float  # word error rate of the transcript against the phrase


def _to_pcm16(audio: FloatArray, sample_rate: int) -> tuple[bytes, float]:
    wav = mono_float32(audio, sample_rate, SAMPLE_RATE)
    peak = float(np.max(np.abs(wav))) if len(wav) else 0.0
    pcm = (np.clip(wav, -1.0, 1.0) * 32767.0).round().astype("<i2").tobytes()
    return pcm, peak


class PocketSphinxASR:
    """Transcription and word-level forced alignment (US English)."""

    name = "pocketsphinx"
    sample_rate = SAMPLE_RATE

    def __init__(self, pool_size: int = 1) -> None:
        if pool_size < 1:
            raise ValueError("pool_size must be >= 1")
        t0 = time.perf_counter()
        self._pool: queue.Queue[Decoder] = queue.Queue()
        from pocketsphinx import Decoder

        decoders = [Decoder(loglevel="FATAL") for _ in range(pool_size)]
        for decoder in decoders:
            self._pool.put(decoder)
        self._frame_rate = int(decoders[0].config["frate"])  # feature frames per second (100)
        self.load_seconds = time.perf_counter() - t0
        log.info("pocketsphinx loaded %d decoder(s) in %.2fs", pool_size, self.load_seconds)

    @contextmanager
    def _decoder(self) -> Iterator[Decoder]:
        decoder = self._pool.get()
        try:
            yield decoder
        finally:
            self._pool.put(decoder)

    @staticmethod
    def _decode(decoder: Decoder, pcm: bytes) -> None:
        decoder.start_utt()
        try:
            decoder.process_raw(pcm, full_utt=True)
        finally:
            decoder.end_utt()  # never leave an utterance open on a pooled decoder

    def transcribe(self, audio: FloatArray, sample_rate: int) -> str:
        """Lowercase words recognised with the bundled language model; "" for silence."""
        t0 = time.perf_counter()
        pcm, peak = _to_pcm16(audio, sample_rate)
        if peak < SILENCE_PEAK or len(pcm) < 2 * SAMPLE_RATE // 10:
            return ""
        with self._decoder() as decoder:
            decoder.activate_search()  # the language model search (alignment may have switched it)
            self._decode(decoder, pcm)
            hyp = decoder.hyp()
        text = normalize_text(hyp.hypstr) if hyp is not None else ""
        seconds = len(pcm) / 2 / SAMPLE_RATE
        log.debug(
            "asr transcribe: %.2fs audio, %d words, %.3fs",
            seconds,
            len(text.split()),
            time.perf_counter() - t0,
        )
        return text

    def align(self, audio: FloatArray, sample_rate: int, text: str) -> list[WordTiming]:
        """Word timings of ``text`` forced onto ``audio``, in order.

        Words missing from the pronunciation dictionary (names, digits) are left out of the alignment and of
        the result; the audio they cover is absorbed by neighbouring words or silence. Returns [] when nothing
        can be aligned.
        """
        t0 = time.perf_counter()
        pcm, peak = _to_pcm16(audio, sample_rate)
        words = normalize_text(text).split()
        if not words or peak < SILENCE_PEAK or len(pcm) < 2 * SAMPLE_RATE // 10:
            return []
        duration = len(pcm) / 2 / SAMPLE_RATE
        timings: list[WordTiming] = []
        with self._decoder() as decoder:
            known = [w for w in words if decoder.lookup_word(w) is not None]
            if not known:
                return []
            try:
                decoder.set_align_text(" ".join(known))
                self._decode(decoder, pcm)
            except RuntimeError as exc:  # alignment search could not be built or did not finish
                log.warning("asr align failed (%s), %d words", type(exc).__name__, len(known))
                return []
            for seg in decoder.seg() or []:  # None when the search did not reach the end of the text
                word = _VARIANT.sub("", seg.word)
                if word.startswith(("<", "[")) or word == "</s>":
                    continue  # silence and fillers
                timings.append(
                    WordTiming(
                        word=word,
                        start=seg.start_frame / self._frame_rate,
                        end=min((seg.end_frame + 1) / self._frame_rate, duration),
                    )
                )
        elapsed = time.perf_counter() - t0
        log.debug(
            "asr align: %d/%d words known, %d timed, %.3fs", len(known), len(words), len(timings), elapsed
        )
        return timings

    def check_phrase(self, audio: FloatArray, sample_rate: int, phrase: str) -> PhraseCheck:
        """Transcribe and score against an expected phrase (for consent / challenge checks)."""
        transcript = self.transcribe(audio, sample_rate)
        return PhraseCheck(
            transcript=transcript,
            recall=phrase_recall(phrase, transcript),
            wer=word_error_rate(phrase, transcript),
        )

    def keyword_score(self, audio: FloatArray, sample_rate: int, phrase: str) -> float:
        """Share of ``phrase``'s words recognised in order in ``audio`` (0..1)."""
        return self.check_phrase(audio, sample_rate, phrase).recall
