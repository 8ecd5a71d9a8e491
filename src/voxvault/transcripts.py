"""Finished transcripts and the text formats they leave in (plain text, SRT, WebVTT, JSON shapes).

Shared by the HTTP routes (OpenAI, ElevenLabs) and ``voxvault transcribe``; nothing here loads a model.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from voxvault.engines.whisper import Segment, Transcription, TranscriptionInfo, Word

if TYPE_CHECKING:
    from voxvault.engines.diarize import SpeakerTurn

#: What ``response_format`` / ``--format`` may ask for.
TEXT_FORMATS = ("json", "text", "srt", "vtt", "verbose_json")

#: Whisper's language codes to the names OpenAI's verbose_json reports (the common ones; others: the code).
LANGUAGE_NAMES = {
    "en": "english", "de": "german", "fr": "french", "es": "spanish", "it": "italian", "pt": "portuguese",
    "nl": "dutch", "ja": "japanese", "zh": "chinese", "ko": "korean", "ru": "russian", "pl": "polish",
    "tr": "turkish", "ar": "arabic", "hi": "hindi", "sv": "swedish", "da": "danish", "fi": "finnish",
    "no": "norwegian", "cs": "czech", "uk": "ukrainian", "el": "greek", "he": "hebrew", "hu": "hungarian",
    "ro": "romanian", "id": "indonesian", "vi": "vietnamese", "th": "thai", "ca": "catalan",
}  # fmt: skip

#: ISO 639-3 (what ElevenLabs speaks) to Whisper's ISO 639-1, for the same languages.
ISO3_TO_1 = {
    "eng": "en", "deu": "de", "ger": "de", "fra": "fr", "fre": "fr", "spa": "es", "ita": "it", "por": "pt",
    "nld": "nl", "dut": "nl", "jpn": "ja", "zho": "zh", "chi": "zh", "cmn": "zh", "kor": "ko", "rus": "ru",
    "pol": "pl", "tur": "tr", "ara": "ar", "hin": "hi", "swe": "sv", "dan": "da", "fin": "fi", "nor": "no",
    "ces": "cs", "cze": "cs", "ukr": "uk", "ell": "el", "gre": "el", "heb": "he", "hun": "hu", "ron": "ro",
    "rum": "ro", "ind": "id", "vie": "vi", "tha": "th", "cat": "ca",
}  # fmt: skip
ISO1_TO_3 = {v: k for k, v in reversed(ISO3_TO_1.items())}


@dataclass(frozen=True)
class Transcript:
    """Every segment of one input, recognised."""

    info: TranscriptionInfo
    segments: tuple[Segment, ...]
    duration: float  # seconds of audio in the input

    @property
    def text(self) -> str:
        return " ".join(s.text.strip() for s in self.segments if s.text.strip())

    @property
    def words(self) -> tuple[Word, ...]:
        return tuple(w for s in self.segments for w in s.words)


def collect(transcription: Transcription) -> Transcript:
    """Run a lazy transcription to its end."""
    segments = tuple(transcription)
    return Transcript(info=transcription.info, segments=segments, duration=transcription.duration)


def _clock(seconds: float, sep: str) -> str:
    ms = max(0, round(seconds * 1000))
    h, rest = divmod(ms, 3_600_000)
    m, rest = divmod(rest, 60_000)
    s, ms = divmod(rest, 1000)
    return f"{h:02d}:{m:02d}:{s:02d}{sep}{ms:03d}"


def to_srt(segments: Iterable[Segment], turns: Sequence[SpeakerTurn] | None = None) -> str:
    """SubRip cues, one per segment. With ``turns`` a segment is split where its words change speaker
    (each word's speaker: the turn at its midpoint) and each cue starts with it: ``[speaker_0] ...``."""
    cues: list[tuple[float, float, str]] = []
    for seg in segments:
        if not seg.text.strip():
            continue
        if not turns or not seg.words:
            cues.append((seg.start, seg.end, seg.text.strip()))
            continue
        from voxvault.engines.diarize import speaker_at

        runs: list[tuple[str | None, list[Word]]] = []
        for w in seg.words:
            who = speaker_at(list(turns), (w.start + w.end) / 2)
            if runs and runs[-1][0] == who:
                runs[-1][1].append(w)
            else:
                runs.append((who, [w]))
        for who, words in runs:
            text = "".join(w.word for w in words).strip()
            cues.append((words[0].start, words[-1].end, f"[{who}] {text}" if who else text))
    return "".join(
        f"{i}\n{_clock(start, ',')} --> {_clock(end, ',')}\n{text}\n\n"
        for i, (start, end, text) in enumerate(cues, start=1)
    )


def to_vtt(segments: Iterable[Segment]) -> str:
    cues = [s for s in segments if s.text.strip()]
    body = "".join(f"{_clock(s.start, '.')} --> {_clock(s.end, '.')}\n{s.text.strip()}\n\n" for s in cues)
    return "WEBVTT\n\n" + body


def language_name(code: str) -> str:
    return LANGUAGE_NAMES.get(code, code)


def verbose_json(transcript: Transcript, *, words: bool, segments: bool) -> dict[str, object]:
    """OpenAI's ``verbose_json`` body."""
    body: dict[str, object] = {
        "task": transcript.info.task,
        "language": language_name(transcript.info.language),
        "duration": round(transcript.duration, 3),
        "text": transcript.text,
    }
    if segments:
        body["segments"] = [
            {
                "id": s.id,
                "seek": int(s.start * 100),
                "start": s.start,
                "end": s.end,
                "text": s.text,
                "tokens": list(s.tokens),
                "temperature": s.temperature,
                "avg_logprob": s.avg_logprob,
                "compression_ratio": s.compression_ratio,
                "no_speech_prob": s.no_speech_prob,
            }
            for s in transcript.segments
        ]
    if words:
        body["words"] = [{"word": w.word.strip(), "start": w.start, "end": w.end} for w in transcript.words]
    return body


def json_body(transcript: Transcript) -> dict[str, object]:
    """OpenAI's ``json`` body (usage as gpt-4o-transcribe reports it: seconds of audio)."""
    return {"text": transcript.text, "usage": {"type": "duration", "seconds": math.ceil(transcript.duration)}}


def to_rttm(turns: Iterable[SpeakerTurn], file_id: str) -> str:
    """NIST RTTM: ``SPEAKER <file> 1 <start> <duration> <NA> <NA> <speaker> <NA> <NA>`` per turn."""
    name = "_".join(file_id.split()) or "audio"
    return "".join(
        f"SPEAKER {name} 1 {t.start:.3f} {t.end - t.start:.3f} <NA> <NA> {t.speaker} <NA> <NA>\n"
        for t in turns
    )


def add_speakers(body: dict[str, object], transcript: Transcript, turns: Sequence[SpeakerTurn]) -> None:
    """``speakers``: the turns (an overlapped stretch is a turn of each voice, both ``overlap: true``); each
    word's ``speaker``: the turn covering its midpoint, and ``overlap``: whether two people speak there."""
    from voxvault.engines.diarize import speaker_at

    body["speakers"] = [
        {"start": t.start, "end": t.end, "speaker": t.speaker, "overlap": t.overlap} for t in turns
    ]
    body["words"] = [
        {
            "word": w.word.strip(),
            "start": w.start,
            "end": w.end,
            "speaker": speaker_at(list(turns), (w.start + w.end) / 2),
            "overlap": any(t.overlap and t.start <= (w.start + w.end) / 2 <= t.end for t in turns),
        }
        for w in transcript.words
    ]


def full_json(transcript: Transcript, turns: Sequence[SpeakerTurn] | None = None) -> dict[str, object]:
    """Everything known about one input: ``verbose_json`` with words and segments, ``usage``, and with
    ``turns`` the speakers (what ``voxvault transcribe --format json`` and batch transcription write)."""
    body = {**verbose_json(transcript, words=True, segments=True), **json_body(transcript)}
    if turns is not None:
        add_speakers(body, transcript, turns)
    return body
