"""Does the consent recording say the script, the one-time code included, in order?

PocketSphinx's open-vocabulary transcription is modest (on the embedded engine's voices it finds 30-75 %
of the script's words), far too weak to hear five random words reliably. So three passes are combined:

1. **Grammar pass** (the decision on the code): the recording is decoded against a grammar that is the
   statement word for word, then "my one time code is", then exactly five words from the closed list of
   code words. Constrained to the forty code words, the recogniser names the spoken code almost always
   right; a recording that says a different (older) code yields those other words. If the statement
   does not fit the audio at all the search finds no path.
2. **Order pass**: the same grammar with the code *before* the statement. Only consulted when the first
   pass fails; if it succeeds with the right code, the script was read in the wrong order.
3. **Transcription pass**: plain transcription with the language model; the share of the statement's
   dictionary words found in order (names outside the dictionary are left out) must reach a floor, so a
   recording of other speech cannot slip through the forced grammar.

Only numbers leave this module (the transcript goes into the encrypted evidence, never into logs).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from pocketsphinx import Decoder

from voxvault.engines.asr import normalize_text, phrase_recall
from voxvault.engines.base import FloatArray
from voxvault.errors import VoxError
from voxvault.voices.consent import CHALLENGE_WORDS, CODE_LEAD_IN, statement_text

log = logging.getLogger(__name__)

SAMPLE_RATE = 16_000


@dataclass(frozen=True)
class ScriptPolicy:
    min_code_recall: float = 0.6  # share of the code's words heard in order (3 of 5)
    min_statement_recall: float = 0.25  # share of the statement's dictionary words transcribed in order


@dataclass
class ScriptScores:
    statement_recall: float = 0.0
    code_recall: float = 0.0
    grammar_fit: bool = False
    swapped_code_recall: float | None = None
    transcript: str = field(default="", repr=False)  # evidence only
    heard_code: list[str] = field(default_factory=list, repr=False)  # evidence only
    seconds: float = 0.0

    def numbers(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "statement_recall": round(self.statement_recall, 3),
            "code_recall": round(self.code_recall, 3),
            "grammar_fit": self.grammar_fit,
        }
        if self.swapped_code_recall is not None:
            out["swapped_code_recall"] = round(self.swapped_code_recall, 3)
        return out


def in_order_recall(expected: list[str], heard: list[str]) -> float:
    """Longest common subsequence of the two word lists, as a share of ``expected``."""
    if not expected:
        return 0.0
    prev = [0] * (len(heard) + 1)
    for word in expected:
        cur = [0]
        for j, other in enumerate(heard):
            cur.append(prev[j] + 1 if word == other else max(prev[j + 1], cur[j]))
        prev = cur
    return prev[-1] / len(expected)


def _pcm16(audio: FloatArray) -> bytes:
    return (np.clip(np.asarray(audio, dtype=np.float32), -1.0, 1.0) * 32767.0).round().astype("<i2").tobytes()


class ScriptChecker:
    """Owns its PocketSphinx decoders (grammar searches are per request; the shared ASR engine's are not)."""

    def __init__(self, pool_size: int = 1, policy: ScriptPolicy | None = None) -> None:
        self.policy = policy or ScriptPolicy()
        self._pool: queue.Queue[Decoder] = queue.Queue()
        for _ in range(pool_size):
            self._pool.put(Decoder(loglevel="FATAL"))
        self._counter = 0
        self._lock = threading.Lock()

    @contextmanager
    def _decoder(self) -> Iterator[Decoder]:
        decoder = self._pool.get()
        try:
            yield decoder
        finally:
            self._pool.put(decoder)

    def _name(self) -> str:
        with self._lock:
            self._counter += 1
            return f"consent{self._counter}"

    @staticmethod
    def _known(decoder: Decoder, text: str) -> list[str]:
        return [w for w in normalize_text(text).split() if decoder.lookup_word(w) is not None]

    @staticmethod
    def _decode(decoder: Decoder, pcm: bytes) -> list[str] | None:
        decoder.start_utt()
        decoder.process_raw(pcm, full_utt=True)
        decoder.end_utt()
        hyp = decoder.hyp()
        if hyp is None or not hyp.hypstr:
            return None
        return normalize_text(hyp.hypstr).split()

    def _grammar(self, decoder: Decoder, pcm: bytes, parts: list[str]) -> list[str] | None:
        name = self._name()
        body = " ".join(parts)
        words = " | ".join(CHALLENGE_WORDS)
        jsgf = f"#JSGF V1.0;\ngrammar {name};\npublic <s> = {body};\n<code> = {words};\n"
        decoder.add_jsgf_string(name, jsgf)
        try:
            decoder.activate_search(name)
            return self._decode(decoder, pcm)
        finally:
            decoder.activate_search()  # back to the language model before removing the grammar
            decoder.remove_search(name)

    def check(
        self,
        audio: FloatArray,
        *,
        speaker_name: str,
        organization: str,
        purpose: str,
        challenge: str,
        label: str = "recording",
    ) -> ScriptScores:
        """Score the recording and refuse it (``VoxError``) unless it says the script in order."""
        t0 = time.perf_counter()
        expected_code = normalize_text(challenge).split()
        slots = " ".join(["<code>"] * len(expected_code))
        pcm = _pcm16(audio)
        scores = ScriptScores()
        with self._decoder() as decoder:
            statement = self._known(decoder, statement_text(speaker_name, organization, purpose))
            lead_in = self._known(decoder, CODE_LEAD_IN)
            decoder.activate_search()
            transcript = self._decode(decoder, pcm) or []
            scores.transcript = " ".join(transcript)
            scores.statement_recall = phrase_recall(" ".join(statement), scores.transcript)
            heard = self._grammar(decoder, pcm, [*statement, *lead_in, slots])
            if heard is not None:
                scores.grammar_fit = True
                scores.heard_code = heard[-len(expected_code) :]
                scores.code_recall = in_order_recall(expected_code, scores.heard_code)
            if heard is None or scores.code_recall < self.policy.min_code_recall:
                swapped = self._grammar(decoder, pcm, [*lead_in, slots, *statement])
                if swapped is not None:
                    swapped_code = swapped[len(lead_in) : len(lead_in) + len(expected_code)]
                    scores.swapped_code_recall = in_order_recall(expected_code, swapped_code)
        scores.seconds = time.perf_counter() - t0
        log.debug("script check: %.2fs audio in %.2fs", len(audio) / SAMPLE_RATE, scores.seconds)
        self._decide(scores, label)
        return scores

    def _decide(self, scores: ScriptScores, label: str) -> None:
        p = self.policy
        details = {"file": label, **scores.numbers()}
        code_ok = scores.grammar_fit and scores.code_recall >= p.min_code_recall
        statement_ok = scores.statement_recall >= p.min_statement_recall
        if code_ok and statement_ok:
            return
        if (
            not code_ok
            and scores.swapped_code_recall is not None
            and scores.swapped_code_recall >= p.min_code_recall
        ):
            raise VoxError(
                "script_wrong_order",
                f"{label}: the script was read out of order (the code came before the statement)",
                422,
                measure="order",
                **details,
            )
        if not statement_ok:
            raise VoxError(
                "script_mismatch",
                f"{label}: the recording does not say the consent statement (recall "
                f"{scores.statement_recall:.2f}, need {p.min_statement_recall:.2f}); read the script aloud",
                422,
                measure="statement_recall",
                threshold=p.min_statement_recall,
                **details,
            )
        if scores.grammar_fit:
            raise VoxError(
                "challenge_not_spoken",
                f"{label}: this consent's one-time code was not heard (code recall {scores.code_recall:.2f}, "
                f"need {p.min_code_recall:.2f}); an older recording or another consent's code?",
                422,
                measure="code_recall",
                threshold=p.min_code_recall,
                **details,
            )
        raise VoxError(
            "script_mismatch",
            f"{label}: the recording does not follow the consent script",
            422,
            measure="grammar_fit",
            **details,
        )
