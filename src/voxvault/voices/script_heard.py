"""The consent script, heard by Whisper: the speaker's name, the organisation, the purpose and the code.

PocketSphinx's grammar pass (``script_check.py``) decides the code well but hears 30-75 % of the statement
and skips names outside its dictionary, so a recording saying "I, Sam Taylor" passed for a consent naming
Jane Doe (issue 25). Whisper transcribes the recording openly (no prompt: a prompt holding the expected
names would make it hear them), and each part of the script is looked for in what it heard, in order:

- **name** and **organisation**: every word must be heard (spelling-tolerant: a heard word counts when
  its similarity to the expected one, rapidfuzz's normalised Indel ratio, is at least ``word_similarity``,
  or for words of 3-4 letters when one letter differs: "Tailor" counts for "Taylor", "Jayne" for "Jane",
  "Doe" not for "Taylor");
- **purpose**: at least ``min_purpose_recall`` of its words;
- **code**: at least ``min_code_recall`` of the five words, in order, *after* the statement (a code heard
  before the name is ``script_wrong_order``; a statement heard whole without its code, e.g. an older
  recording, is ``challenge_not_spoken``).

A refusal is ``script_mismatch`` naming each part that was not heard (``details.not_heard``) and, in the
answer only, what was heard for it (``details.heard``); the consent row and the audit trail keep the
recalls and the part names, the encrypted evidence keeps the heard words; logs keep neither.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any, Protocol

from rapidfuzz.distance import Indel, Levenshtein

from voxvault.engines.asr import normalize_text
from voxvault.engines.base import FloatArray
from voxvault.errors import VoxError
from voxvault.voices.consent import statement_text

log = logging.getLogger(__name__)

SAMPLE_RATE = 16_000
#: Words too common to prove anything about a name, an organisation or a purpose.
FILLER = frozenset({"a", "an", "the", "of", "for", "and", "to", "in", "on", "my", "at", "by", "with", "&"})
PARTS = ("speaker_name", "organization", "purpose", "code")


class Transcriber(Protocol):
    def transcribe(self, audio: FloatArray, sample_rate: int) -> str: ...


class EnglishWhisper:
    """Whisper held to English: the script is English, and language detection on a speaker with an accent
    (the engine's Japanese presets) transcribes in Japanese, which would hear none of the script."""

    def __init__(self, engine: Any) -> None:
        self.engine = engine

    def transcribe(self, audio: FloatArray, sample_rate: int) -> str:
        from voxvault.engines.whisper import TranscribeOptions

        try:
            result = self.engine.recognize(
                audio, sample_rate, TranscribeOptions(language="en", word_timestamps=False)
            )
            return " ".join(seg.text.strip() for seg in result).strip()
        except VoxError as exc:
            if exc.code == "silent_audio":
                return ""
            raise


@dataclass(frozen=True)
class HeardPolicy:
    word_similarity: float = 0.75  # "tailor" ~ "taylor" 0.83; "doe" ~ "taylor" 0.22
    min_name_recall: float = 1.0  # every word of the speaker's name
    min_organization_recall: float = 1.0
    min_purpose_recall: float = 0.6
    min_code_recall: float = 0.8  # 4 of 5 code words, in order


@dataclass(frozen=True)
class PartHeard:
    """One part of the script: the words expected, the words heard for them (None = not heard)."""

    expected: tuple[str, ...]
    heard: tuple[str | None, ...]
    positions: tuple[int, ...]  # where in the transcript the matched words are

    @property
    def recall(self) -> float:
        return sum(h is not None for h in self.heard) / len(self.expected) if self.expected else 1.0


@dataclass
class HeardScores:
    parts: dict[str, PartHeard] = field(default_factory=dict)
    transcript: str = field(default="", repr=False)  # evidence only
    seconds: float = 0.0

    statement_recall: float = 0.0  # share of the statement's words heard in order (a summary number)

    def numbers(self) -> dict[str, Any]:
        out = {f"{name}_recall": round(self.parts[name].recall, 3) for name in PARTS if name in self.parts}
        out["statement_recall"] = round(self.statement_recall, 3)
        return out

    @property
    def heard_code(self) -> list[str]:
        part = self.parts.get("code")
        return [h for h in part.heard if h] if part else []

    def evidence(self) -> dict[str, Any]:
        """What was expected and heard for each part: kept in the encrypted consent evidence only."""
        return {
            name: {"expected": list(p.expected), "heard": list(p.heard), "recall": round(p.recall, 3)}
            for name, p in self.parts.items()
        }


def content_words(text: str) -> tuple[str, ...]:
    words = tuple(w for w in normalize_text(text).split() if w not in FILLER)
    return words or tuple(normalize_text(text).split())


def same_word(expected: str, heard: str, similarity: float) -> bool:
    """Spelling-tolerant equality: short words may differ by one letter, longer ones by similarity."""
    if len(expected) <= 4:
        return Levenshtein.distance(expected, heard) <= (1 if len(expected) >= 3 else 0)
    return Indel.normalized_similarity(expected, heard) >= similarity


def match_in_order(expected: tuple[str, ...], heard: list[str], start: int, similarity: float) -> PartHeard:
    """Greedy in-order match of ``expected`` words in ``heard[start:]``, tolerant of spelling.

    Each expected word takes the first heard word (or two heard words written together: "audio book" for
    "audiobook") from the current position on that is similar enough; a word not found leaves the position
    where it was (the next word may still be heard)."""
    found: list[str | None] = []
    positions: list[int] = []
    pos = start
    for word in expected:
        hit: tuple[int, int] | None = None
        for j in range(pos, len(heard)):
            if same_word(word, heard[j], similarity):
                hit = (j, 1)
            elif j + 1 < len(heard) and same_word(word, heard[j] + heard[j + 1], similarity):
                hit = (j, 2)
            if hit is not None:
                break
        if hit is None:
            found.append(None)
            continue
        j, n = hit
        found.append(" ".join(heard[j : j + n]))
        positions.append(j + n - 1)
        pos = j + n
    return PartHeard(expected, tuple(found), tuple(positions))


class HeardScriptChecker:
    """Transcribes the recording with Whisper and checks each part of the script (module docstring)."""

    def __init__(self, transcriber: Transcriber, policy: HeardPolicy | None = None) -> None:
        self.transcriber = transcriber
        self.policy = policy or HeardPolicy()

    def score(
        self, audio: FloatArray, *, speaker_name: str, organization: str, purpose: str, challenge: str
    ) -> HeardScores:
        t0 = time.perf_counter()
        transcript = self.transcriber.transcribe(audio, SAMPLE_RATE)
        heard = normalize_text(transcript).split()
        sim = self.policy.word_similarity
        parts: dict[str, PartHeard] = {}
        name = match_in_order(content_words(speaker_name), heard, 0, sim)
        after_name = name.positions[-1] + 1 if name.positions else 0
        org = match_in_order(content_words(organization), heard, after_name, sim)
        parts["speaker_name"], parts["organization"] = name, org
        after_org = org.positions[-1] + 1 if org.positions else after_name
        parts["purpose"] = match_in_order(content_words(purpose), heard, after_org, sim)
        statement_end = max([after_org, *(p + 1 for p in parts["purpose"].positions)])
        code = tuple(normalize_text(challenge).split())
        parts["code"] = match_in_order(code, heard, statement_end, sim)
        statement = tuple(normalize_text(statement_text(speaker_name, organization, purpose)).split())
        scores = HeardScores(
            parts=parts,
            transcript=transcript,
            seconds=time.perf_counter() - t0,
            statement_recall=match_in_order(statement, heard, 0, sim).recall,
        )
        if parts["code"].recall < self.policy.min_code_recall:
            parts["code_anywhere"] = match_in_order(code, heard, 0, sim)
        log.debug("script heard: %.2fs audio in %.2fs", len(audio) / SAMPLE_RATE, scores.seconds)
        return scores

    def check(
        self,
        audio: FloatArray,
        *,
        speaker_name: str,
        organization: str,
        purpose: str,
        challenge: str,
        label: str = "recording",
    ) -> HeardScores:
        """Score the recording and refuse it (``VoxError``) unless every part of the script was heard."""
        scores = self.score(
            audio, speaker_name=speaker_name, organization=organization, purpose=purpose, challenge=challenge
        )
        self.decide(scores, label)
        return scores

    def decide(self, scores: HeardScores, label: str) -> None:
        p = self.policy
        need = {
            "speaker_name": p.min_name_recall,
            "organization": p.min_organization_recall,
            "purpose": p.min_purpose_recall,
            "code": p.min_code_recall,
        }
        missing = [name for name in PARTS if scores.parts[name].recall < need[name] - 1e-9]
        if not missing:
            return
        details = {"file": label, **scores.numbers(), "not_heard": missing}
        parts_recall = scores.parts["code"].recall
        anywhere = scores.parts.get("code_anywhere")
        if missing == ["code"] and anywhere is not None and anywhere.recall >= p.min_code_recall:
            raise VoxError(
                "script_wrong_order",
                f"{label}: the script was read out of order (the code came before the statement)",
                422,
                measure="order",
                **details,
            )
        if missing == ["code"]:  # the statement was read, another code (an older recording's?) or none
            raise VoxError(
                "challenge_not_spoken",
                f"{label}: this consent's one-time code was not heard (code recall {parts_recall:.2f}, need "
                f"{p.min_code_recall:.2f}); an older recording or another consent's code?",
                422,
                measure="code_recall",
                threshold=p.min_code_recall,
                heard={"code": " ".join(h for h in scores.parts["code"].heard if h)},
                **details,
            )
        not_heard = ", ".join(name.replace("_", " ") for name in missing)
        raise VoxError(
            "script_mismatch",
            f"{label}: the recording does not say the whole consent script (not heard: {not_heard}); "
            "read the script aloud",
            422,
            # what was heard for each missing part: in the answer to the caller only, never stored or logged
            heard={name: " ".join(h for h in scores.parts[name].heard if h) for name in missing},
            measure="script_heard",
            **details,
        )
