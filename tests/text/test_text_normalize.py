"""Written forms a reader expands in their head come out as the words they would say."""

from __future__ import annotations

import re

import pytest

from voxvault.text import normalize_text


@pytest.mark.parametrize(
    ("written", "spoken"),
    [
        ("$3.50", "three dollars and fifty cents"),
        ("It costs $1.", "It costs one dollar."),
        ("$0.99", "ninety-nine cents"),
        ("£20", "twenty pounds"),
        ("€3.05", "three euros and five cents"),
        ("$5 million", "five million dollars"),
        ("Dr. Smith", "Doctor Smith"),
        ("Mr. and Mrs. Jones", "Mister and Missus Jones"),
        ("He lives on Elm St. in town.", "He lives on Elm Street in town."),
        ("Visit St. Louis.", "Visit Saint Louis."),
        ("the 3rd and the 21st", "the third and the twenty-first"),
        ("10:30", "ten thirty"),
        ("10:00", "ten o'clock"),
        ("9:05 pm", "nine oh five P-M"),
        ("2026-11-22", "November twenty-second, twenty twenty-six"),
        ("11/22/2026", "November twenty-second, twenty twenty-six"),
        ("on 3 March", "on March third"),
        ("March 3, 2026", "March third, twenty twenty-six"),
        ("50%", "fifty percent"),
        ("in 1990", "in nineteen ninety"),
        ("the 1990s", "the nineteen nineties"),
        ("1,234,567", "one million two hundred thirty-four thousand five hundred sixty-seven"),
        ("-42", "minus forty-two"),
        ("3.14", "three point one four"),
        ("pages 10-20", "pages ten to twenty"),
        ("5 km", "five kilometers"),
        ("1 kg", "one kilogram"),
        ("30°C", "thirty degrees Celsius"),
        ("Tom & Jerry", "Tom and Jerry"),
        ("2 + 2", "two plus two"),
        ("e.g. apples vs. pears", "for example apples versus pears"),
        ("https://www.example.com/docs", "W-W-W dot example dot com slash docs"),
        ("Write to john.smith@example.com today", "Write to john dot smith at example dot com today"),
        ("call 555-123-4567", "call five five five, one two three, four five six seven"),
    ],
)
def test_written_forms_become_words(written: str, spoken: str) -> None:
    assert normalize_text(written) == spoken


def test_abbreviation_at_sentence_end_keeps_the_sentence_break() -> None:
    assert normalize_text("apples, pears, etc. Then more.") == "apples, pears, et cetera. Then more."


def test_url_trailing_period_stays_sentence_punctuation() -> None:
    assert normalize_text("See example.org. Thanks") == "See example dot org. Thanks"


def test_no_digits_or_symbols_survive() -> None:
    mixed = "Order #42: 3x $19.99 (15% off) on 2026-01-05 at 7:45 am, mp3 v2.1, 1/2 cup & ~5 kg @ 100 MB/s"
    spoken = normalize_text(mixed)
    assert not re.search(r"[0-9$%#&@~/]", spoken), spoken
    assert "nineteen dollars and ninety-nine cents" in spoken
    assert "January fifth, twenty twenty-six" in spoken


def test_lines_without_punctuation_become_sentences() -> None:
    assert normalize_text("Title\nBody text here") == "Title. Body text here"


@pytest.mark.parametrize("unspeakable", ["😀🎉", "!!! ???", "→ ★ ✓", "日本語"])
def test_nothing_speakable_normalises_to_empty(unspeakable: str) -> None:
    assert normalize_text(unspeakable) == ""
