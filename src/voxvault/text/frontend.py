"""The text front end: raw text or SSML -> pieces of Kokoro phonemes that each fit the model.

Text is normalised, split into sentences, and each sentence is phonemised whole (espeak gets the context it
needs for stress and weak forms). Only a sentence that does not fit is split again, at clauses (commas,
semicolons, colons, dashes), then at words, and as a last resort a single enormous word is cut into
chunks, so text of any length is spoken completely and nothing is ever truncated.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from enum import IntEnum

from voxvault.errors import VoxError
from voxvault.text.lexicon import lexicon_key, validate_lexicon
from voxvault.text.normalize import normalize_text
from voxvault.text.phonemes import Phonemizer
from voxvault.text.ssml import Pause, SentenceEnd, SpokenPhonemes, SpokenText, SSMLEvent, is_ssml, parse_ssml
from voxvault.text.vocab import filter_to_vocab

__all__ = ["CLAUSE_PAUSE", "PARAGRAPH_PAUSE", "SENTENCE_PAUSE", "Piece", "TextFrontend"]

SENTENCE_PAUSE = 0.3
PARAGRAPH_PAUSE = 0.5
CLAUSE_PAUSE = 0.12


@dataclass(frozen=True)
class Piece:
    """One model call's worth of speech."""

    text: str  # normalised words of this piece (debugging, ASR checks, word timings)
    phonemes: str  # Kokoro-vocab IPA, len <= max_phonemes
    pause_after: float  # seconds of silence after this piece
    speed: float  # multiplier from SSML prosody (1.0 default)


class _End(IntEnum):
    """What follows a word, weakest first."""

    NONE = 0
    CLAUSE = 1
    SENTENCE = 2
    PARAGRAPH = 3
    BREAK = 4  # explicit SSML <break>


_DEFAULT_PAUSE = {
    _End.NONE: 0.0,
    _End.CLAUSE: CLAUSE_PAUSE,
    _End.SENTENCE: SENTENCE_PAUSE,
    _End.PARAGRAPH: PARAGRAPH_PAUSE,
    _End.BREAK: 0.0,
}


@dataclass
class _Word:
    text: str
    ipa: str | None  # fixed phonemes (lexicon or SSML <phoneme>); None: espeak decides
    speed: float
    end: _End = _End.NONE
    pause: float | None = None  # explicit pause from SSML; None: the default for ``end``

    @property
    def pause_after(self) -> float:
        return self.pause if self.pause is not None else _DEFAULT_PAUSE[self.end]


_TOKEN_RE = re.compile(r"^([\"“(]*)(.*?)([\"”)'.,!?;:…—]*)$")
_CLOSERS = "\"”)'"


def _end_of(token: str, core: str) -> _End:
    stripped = token.rstrip(_CLOSERS)
    if stripped.endswith((".", "!", "?")):
        if re.fullmatch(r"[A-Z]", core) and stripped.endswith("."):
            return _End.NONE  # an initial, as in "J. R. R. Tolkien"
        return _End.SENTENCE
    if stripped.endswith((",", ";", ":", "…", "—")):
        return _End.CLAUSE
    return _End.NONE


def _join_phonemes(parts: Iterable[str]) -> str:
    return " ".join(" ".join(p for p in parts if p).split())


_Splitter = Callable[[list["_Word"], str, "_Packer"], None]


class _Packer:
    """Collects pieces; the size limit is ``first_limit`` until the first piece is out, then ``limit``."""

    def __init__(self, limit: int, first_limit: int) -> None:
        self.rest_limit = limit
        self.first_limit = first_limit
        self.pieces: list[Piece] = []
        self.explicit_last_pause = False

    @property
    def limit(self) -> int:
        return self.first_limit if not self.pieces else self.rest_limit

    def emit(self, words: list[_Word], phonemes: str, text: str | None = None) -> None:
        last = words[-1]
        self.pieces.append(
            Piece(
                text=" ".join(w.text for w in words) if text is None else text,
                phonemes=phonemes,
                pause_after=last.pause_after,
                speed=last.speed,
            )
        )
        self.explicit_last_pause = last.pause is not None

    def add_pause(self, seconds: float) -> None:
        if self.pieces and seconds:
            last = self.pieces[-1]
            self.pieces[-1] = replace(last, pause_after=last.pause_after + seconds)
            self.explicit_last_pause = True

    def result(self) -> list[Piece]:
        if self.pieces and not self.explicit_last_pause:
            self.pieces[-1] = replace(self.pieces[-1], pause_after=0.0)  # nothing follows the last piece
        return self.pieces


class TextFrontend:
    """Plans how a text is spoken: the one entry point of the synthesis pipeline into text processing."""

    def __init__(
        self, phonemizer: Phonemizer | None = None, max_phonemes: int = 400, max_breaks: int | None = None
    ) -> None:
        if max_phonemes < 1:
            raise ValueError("max_phonemes must be positive")
        self.phonemizer = phonemizer if phonemizer is not None else Phonemizer()
        self.max_phonemes = max_phonemes
        self.max_breaks = max_breaks  # SSML <break> elements per text (None: no limit)

    def plan(
        self,
        text: str,
        *,
        lexicon: Mapping[str, str] | None = None,
        ssml: bool | None = None,
        first_piece_max_phonemes: int | None = None,
    ) -> list[Piece]:
        """Text (or SSML) -> pieces, in order, covering all of it; each ``len(phonemes) <= max_phonemes``.

        Raises VoxError ``empty_text``, ``no_speakable_text``, ``invalid_ssml``, ``too_many_breaks`` or
        ``invalid_lexicon``.
        """
        if not text or not text.strip():
            raise VoxError("empty_text", "text is empty")
        first_limit = self.max_phonemes
        if first_piece_max_phonemes is not None:
            if first_piece_max_phonemes < 1:
                raise ValueError("first_piece_max_phonemes must be positive")
            first_limit = min(first_piece_max_phonemes, self.max_phonemes)
        entries = validate_lexicon(lexicon) if lexicon else {}

        use_ssml = is_ssml(text) if ssml is None else ssml
        events: list[SSMLEvent] = (
            parse_ssml(text, max_breaks=self.max_breaks) if use_ssml else [SpokenText(text, 1.0)]
        )
        words = self._words(events, entries, collapse_lines=use_ssml)
        if not any(w.ipa or any(ch.isalpha() for ch in w.text) for w in words):
            raise VoxError("no_speakable_text", "the text contains nothing that can be spoken")

        packer = _Packer(self.max_phonemes, first_limit)
        sentences = self._sentences(words)
        for sentence, phonemes in zip(sentences, self._phonemize_spans(sentences), strict=True):
            if not phonemes:
                packer.add_pause(sentence[-1].pause_after)
            elif len(phonemes) <= packer.limit:
                packer.emit(sentence, phonemes)
            else:
                self._pack_clauses(sentence, packer)
        pieces = packer.result()
        if not pieces:
            raise VoxError("no_speakable_text", "the text contains nothing that can be spoken")
        return pieces

    # ------------------------------------------------------------------------------- words & sentences

    def phonemes(self, text: str) -> str:
        """All of a short text's phonemes as one string (its pieces joined): what adaptation, evaluation and
        benchmarks feed the model directly for a fixed sentence that fits one piece."""
        return "".join(p.phonemes for p in self.plan(text))

    def _words(
        self, events: list[SSMLEvent], lexicon: Mapping[str, str], *, collapse_lines: bool
    ) -> list[_Word]:
        words: list[_Word] = []
        for event in events:
            if isinstance(event, SpokenText):
                raw = " ".join(event.text.split()) if collapse_lines else event.text
                spoken = normalize_text(raw) if event.normalize else raw
                self._add_tokens(words, spoken, event.speed, lexicon if event.normalize else {})
            elif isinstance(event, SpokenPhonemes):
                words.append(_Word(event.text, event.ipa, event.speed))
            elif isinstance(event, Pause):
                if words:  # a pause before anything is said has no piece to follow
                    last = words[-1]
                    last.pause = (last.pause or 0.0) + event.seconds
                    last.end = _End.BREAK
            elif isinstance(event, SentenceEnd) and words:
                last = words[-1]
                last.end = max(last.end, _End.PARAGRAPH if event.paragraph else _End.SENTENCE)
                if not re.search(r"[.!?][\"”)']*$", last.ipa if last.ipa is not None else last.text):
                    if last.ipa is not None:
                        last.ipa += "."
                    else:
                        last.text += "."
        return words

    @staticmethod
    def _add_tokens(words: list[_Word], spoken: str, speed: float, lexicon: Mapping[str, str]) -> None:
        for token in spoken.split():
            m = _TOKEN_RE.match(token)
            lead, core, trail = (m.group(1), m.group(2), m.group(3)) if m else ("", token, "")
            if not any(ch.isalpha() for ch in core):
                if words:  # punctuation on its own ("—") belongs to the word before it
                    last = words[-1]
                    last.text = f"{last.text} {token}"
                    if last.ipa is not None:
                        last.ipa = _join_phonemes([last.ipa, filter_to_vocab(token)])
                    last.end = max(last.end, _end_of(token, ""))
                continue
            ipa = None
            key = lexicon_key(core)
            if key in lexicon:
                ipa = filter_to_vocab(lead) + lexicon[key] + filter_to_vocab(trail)
            words.append(_Word(token, ipa, speed, _end_of(token, core)))

    @staticmethod
    def _sentences(words: list[_Word]) -> list[list[_Word]]:
        """Group words into sentences; a speed change or an explicit break also closes one."""
        sentences: list[list[_Word]] = []
        current: list[_Word] = []
        for word in words:
            if current and word.speed != current[-1].speed:
                sentences.append(current)
                current = []
            current.append(word)
            if word.end >= _End.SENTENCE:
                sentences.append(current)
                current = []
        if current:
            sentences.append(current)
        return sentences

    # ------------------------------------------------------------------------------------ phonemes

    def _phonemize_spans(self, spans: list[list[_Word]]) -> list[str]:
        """Phonemes for each span of words; all espeak text of all spans goes in one batched call."""
        runs: list[str] = []
        layouts: list[list[str | int]] = []
        for span in spans:
            layout: list[str | int] = []
            pending: list[str] = []
            for word in span:
                if word.ipa is None:
                    pending.append(word.text)
                    continue
                if pending:
                    runs.append(" ".join(pending))
                    layout.append(len(runs) - 1)
                    pending = []
                layout.append(word.ipa)
            if pending:
                runs.append(" ".join(pending))
                layout.append(len(runs) - 1)
            layouts.append(layout)
        spoken = self.phonemizer.phonemize_many(runs)
        return [_join_phonemes(spoken[p] if isinstance(p, int) else p for p in layout) for layout in layouts]

    # ------------------------------------------------------------------------------------- packing

    def _pack_clauses(self, sentence: list[_Word], packer: _Packer) -> None:
        clauses: list[list[_Word]] = [[]]
        for word in sentence:
            clauses[-1].append(word)
            if word.end >= _End.CLAUSE:
                clauses.append([])
        clauses = [c for c in clauses if c]
        self._pack(clauses, self._phonemize_spans(clauses), packer, self._pack_words)

    def _pack_words(self, clause: list[_Word], _phonemes: str, packer: _Packer) -> None:
        singles = [[w] for w in clause]
        self._pack(singles, self._phonemize_spans(singles), packer, self._chop_word)

    @staticmethod
    def _chop_word(single: list[_Word], phonemes: str, packer: _Packer) -> None:
        """A single word longer than a whole piece: cut its phonemes into consecutive chunks.

        A word that is only over the short first-piece limit is not cut: it is the first piece whole
        ("Absolutely,"), since a word spoken in two model calls is heard as two."""
        word = single[0]
        if not packer.pieces and len(phonemes) <= packer.rest_limit:
            packer.emit(single, phonemes)
            return
        first = True
        while phonemes:
            cut = packer.limit
            if cut < len(phonemes) and cut > 1 and phonemes[cut - 1] in "ˈˌ":
                cut -= 1  # keep a stress mark with the vowel it belongs to
            chunk, phonemes = phonemes[:cut], phonemes[cut:]
            text = word.text if first else ""
            if phonemes:
                packer.pieces.append(Piece(text, chunk, 0.0, word.speed))
            else:
                packer.emit(single, chunk, text=text)
            first = False

    @staticmethod
    def _pack(
        groups: list[list[_Word]], phonemes: list[str], packer: _Packer, split_further: _Splitter
    ) -> None:
        """Greedy: append groups to the current piece while it fits; a group too big alone goes finer."""
        current: list[_Word] = []
        current_ph = ""
        for group, ph in zip(groups, phonemes, strict=True):
            joined = _join_phonemes([current_ph, ph])
            if len(joined) <= packer.limit:
                current.extend(group)
                current_ph = joined
                continue
            if current:
                packer.emit(current, current_ph)
                current, current_ph = [], ""
            if len(ph) <= packer.limit:
                current, current_ph = list(group), ph
            else:
                split_further(group, ph, packer)
        if current:
            if current_ph:
                packer.emit(current, current_ph)
            else:
                packer.add_pause(current[-1].pause_after)
