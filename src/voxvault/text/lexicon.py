"""Per-project pronunciation lexicon: word -> Kokoro IPA, overriding espeak for names and jargon.

Matching is case-insensitive and whole-word, on the normalised text (so entries are plain words: letters,
apostrophes and hyphens). The IPA goes to the model as written, so it must use Kokoro's symbols only; a
bad entry is refused when it is given rather than mispronounced later.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from voxvault.errors import VoxError
from voxvault.text.vocab import unknown_symbols

__all__ = ["MAX_IPA_CHARS", "MAX_WORD_CHARS", "lexicon_key", "validate_ipa", "validate_lexicon"]

MAX_WORD_CHARS = 64
MAX_IPA_CHARS = 128
_WORD_RE = re.compile(r"^[^\W\d_]+(?:['-][^\W\d_]+)*$")


def lexicon_key(word: str) -> str:
    """The form a word is looked up by (case-insensitive, curly apostrophes folded)."""
    return word.replace("\u2019", "'").casefold()


def validate_ipa(ipa: str, *, code: str, what: str) -> str:
    """Refuse IPA with symbols Kokoro does not know; returns it stripped. ``what`` names it in messages."""
    cleaned = " ".join(ipa.split())
    if not cleaned:
        raise VoxError(code, f"{what}: the pronunciation is empty")
    bad = unknown_symbols(cleaned)
    if bad:
        listed = ", ".join(f"'{ch}' (U+{ord(ch):04X})" for ch in bad)
        raise VoxError(
            code,
            f"{what}: pronunciation uses symbols outside the Kokoro phoneme set: {listed}",
            symbols=bad,
        )
    return cleaned


def validate_lexicon(entries: Mapping[str, str]) -> dict[str, str]:
    """Check every entry and return them keyed by ``lexicon_key``; raises VoxError ``invalid_lexicon``."""
    checked: dict[str, str] = {}
    for word, ipa in entries.items():
        if not isinstance(word, str) or not isinstance(ipa, str):
            raise VoxError("invalid_lexicon", "lexicon words and pronunciations must be strings")
        stripped = word.strip().replace("\u2019", "'")
        if not stripped:
            raise VoxError("invalid_lexicon", "lexicon word is empty")
        if len(stripped) > MAX_WORD_CHARS:
            raise VoxError("invalid_lexicon", f"lexicon word is longer than {MAX_WORD_CHARS} characters")
        if not _WORD_RE.match(stripped):
            raise VoxError(
                "invalid_lexicon",
                f"lexicon word {stripped!r} must be one word of letters (apostrophes and hyphens allowed)",
                word=stripped,
            )
        if len(ipa) > MAX_IPA_CHARS:
            raise VoxError(
                "invalid_lexicon",
                f"lexicon entry {stripped!r}: pronunciation is longer than {MAX_IPA_CHARS} characters",
                word=stripped,
            )
        try:
            checked[lexicon_key(stripped)] = validate_ipa(
                ipa, code="invalid_lexicon", what=f"lexicon entry {stripped!r}"
            )
        except VoxError as exc:
            exc.details.setdefault("word", stripped)
            raise
    return checked
