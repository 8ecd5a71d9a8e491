"""Planning: every word is spoken, every piece fits the model, pauses follow the text's structure."""

from __future__ import annotations

import re

import pytest

from voxvault.errors import VoxError
from voxvault.text import Phonemizer, Piece, TextFrontend, normalize_text
from voxvault.text.vocab import kokoro_vocab

WORDS = [
    *("river", "mountain", "quietly", "yesterday", "engineer", "beautiful", "window", "orange"),
    *("thunder", "library", "coffee", "garden", "whisper", "morning", "silver", "question"),
    *("journey", "balance", "picture", "island"),
]


def words_of(text: str) -> list[str]:
    return re.findall(r"[A-Za-z'-]+", text.lower())


def long_text(n_words: int) -> str:
    """Deterministic prose: sentences of varied length with commas and semicolons, one run-on paragraph."""
    out: list[str] = []
    i = 0
    while i < n_words:
        length = 5 + (i * 7) % 23
        chunk = [WORDS[(i + k * 3) % len(WORDS)] for k in range(min(length, n_words - i))]
        if len(chunk) > 6:
            chunk[3] += ","
        if len(chunk) > 12:
            chunk[9] += ";"
        out.append(" ".join(chunk).capitalize() + ".")
        i += len(chunk)
    return " ".join(out)


def assert_well_formed(pieces: list[Piece], max_phonemes: int) -> None:
    vocab = kokoro_vocab()
    for piece in pieces:
        assert 0 < len(piece.phonemes) <= max_phonemes
        assert set(piece.phonemes) <= vocab
        assert piece.pause_after >= 0.0
        assert piece.speed > 0


def test_short_text(frontend: TextFrontend) -> None:
    pieces = frontend.plan("Dr. Smith paid $3.50 for the 3rd coffee at 10:30.")
    assert len(pieces) == 1
    assert (
        pieces[0].text
        == "Doctor Smith paid three dollars and fifty cents for the third coffee at ten thirty."
    )
    assert pieces[0].pause_after == 0.0  # nothing follows the last piece
    assert_well_formed(pieces, 400)


def test_sentences_and_pauses(frontend: TextFrontend) -> None:
    pieces = frontend.plan("First one here. Second one? Third!")
    assert [p.text for p in pieces] == ["First one here.", "Second one?", "Third!"]
    assert [p.pause_after for p in pieces] == [pytest.approx(0.3), pytest.approx(0.3), 0.0]


def test_clause_split_when_a_sentence_is_too_long(phonemizer: Phonemizer) -> None:
    small = TextFrontend(phonemizer, max_phonemes=60)
    sentence = (
        "The morning was quiet and cold, the river ran silver under the bridge, and nobody spoke at all."
    )
    pieces = small.plan(sentence)
    assert len(pieces) > 1
    assert_well_formed(pieces, 60)
    assert pieces[0].text.endswith(",") and pieces[0].pause_after == pytest.approx(0.12)
    assert words_of(" ".join(p.text for p in pieces)) == words_of(sentence)


def test_long_text_is_spoken_completely(frontend: TextFrontend) -> None:
    text = long_text(3000)
    run_on = " ".join(WORDS[i % len(WORDS)] for i in range(400))  # 400 words, no punctuation at all
    text = f"{text} {run_on}"
    pieces = frontend.plan(text)
    assert_well_formed(pieces, 400)
    assert words_of(" ".join(p.text for p in pieces)) == words_of(text)
    assert len(words_of(text)) == 3400


def test_a_single_huge_word_is_chunked_not_dropped(phonemizer: Phonemizer) -> None:
    small = TextFrontend(phonemizer, max_phonemes=50)
    huge = "antidisestablishmentarianism" * 6
    pieces = small.plan(f"Say {huge} please.")
    assert_well_formed(pieces, 50)
    whole = phonemizer.phonemize(huge)
    assert len(whole) > 50
    assert whole in "".join(p.phonemes for p in pieces)
    assert words_of(" ".join(p.text for p in pieces)) == ["say", huge, "please"]


def test_first_piece_can_be_made_short(frontend: TextFrontend) -> None:
    text = long_text(120)
    pieces = frontend.plan(text, first_piece_max_phonemes=30)
    assert len(pieces[0].phonemes) <= 30
    assert_well_formed(pieces, 400)
    assert words_of(" ".join(p.text for p in pieces)) == words_of(text)
    default = frontend.plan(text)
    assert len(default[0].phonemes) > 30


def test_plain_text_starting_with_a_tag_can_be_forced_literal(frontend: TextFrontend) -> None:
    pieces = frontend.plan("<speak> is the SSML root element.", ssml=False)
    assert "root element" in pieces[0].text


@pytest.mark.parametrize("blank", ["", "   ", "\n\t "])
def test_empty_text_is_refused(frontend: TextFrontend, blank: str) -> None:
    with pytest.raises(VoxError) as caught:
        frontend.plan(blank)
    assert caught.value.code == "empty_text"
    assert caught.value.status == 400


@pytest.mark.parametrize("unspeakable", ["😀🎉👍", "... !!! ???", "★ → ✓", "<speak>🎉</speak>"])
def test_nothing_speakable_is_refused(frontend: TextFrontend, unspeakable: str) -> None:
    with pytest.raises(VoxError) as caught:
        frontend.plan(unspeakable)
    assert caught.value.code == "no_speakable_text"
    assert caught.value.status == 400


def test_emoji_between_words_is_dropped(frontend: TextFrontend) -> None:
    pieces = frontend.plan("Great job 🎉 team!")
    assert pieces[0].text == "Great job team!"
    assert pieces[0].text == normalize_text("Great job 🎉 team!")
