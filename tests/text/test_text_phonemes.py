"""espeak-ng output mapped to the Kokoro v1.0 phoneme set."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from voxvault.text import Phonemizer
from voxvault.text.phonemes import espeak_to_kokoro
from voxvault.text.vocab import kokoro_vocab


def test_english_sentence_gives_vocab_only_phonemes(phonemizer: Phonemizer) -> None:
    phonemes = phonemizer.phonemize("The quick brown fox jumps over the lazy dog, doesn't it?")
    assert phonemes
    assert set(phonemes) <= kokoro_vocab()
    assert phonemes.endswith("?")
    assert "," in phonemes


@pytest.mark.parametrize(
    ("word", "symbol"),
    [("eye", "I"), ("now", "W"), ("day", "A"), ("boy", "Y"), ("go", "O"), ("judge", "ʤ"), ("church", "ʧ")],
)
def test_diphthongs_and_affricates_use_misaki_letters(phonemizer: Phonemizer, word: str, symbol: str) -> None:
    phonemes = phonemizer.phonemize(word)
    assert symbol in phonemes
    assert "^" not in phonemes and "ː" not in phonemes


@pytest.mark.parametrize(
    ("espeak", "kokoro"),
    [
        ("hˈa^ɪ", "hˈI"),
        ("bˈʌʔn̩", "bˈʌtᵊn"),
        ("bˈɜːd", "bˈɜɹd"),
        ("ˌo^ʊvɚ", "ˌOvəɹ"),
        ("lˈɪɾə^l", "lˈɪɾᵊl"),
        ("d^ʒˈʌmps", "ʤˈʌmps"),
        ("ɐwˈe^ɪ", "əwˈA"),
        ("nˈʌmbɚɹ ˈe^ɪt", "nˈʌmbəɹ ˈAt"),
    ],
)
def test_espeak_symbols_map_like_misaki(espeak: str, kokoro: str) -> None:
    assert espeak_to_kokoro(espeak) == kokoro


def test_batch_keeps_order_and_empty_entries(phonemizer: Phonemizer) -> None:
    out = phonemizer.phonemize_many(["one", "", "two three", "…"])
    assert len(out) == 4
    assert out[1] == "" and out[3] == ""
    assert out[0] == phonemizer.phonemize("one")
    assert out[2] == phonemizer.phonemize("two three")


def test_concurrent_calls_give_the_same_results(phonemizer: Phonemizer) -> None:
    sentences = [
        f"Sentence number {w} is spoken by thread {t}." for t in ("one", "two") for w in ("a", "b", "c")
    ]
    expected = [phonemizer.phonemize(s) for s in sentences]
    with ThreadPoolExecutor(max_workers=4) as pool:
        got = list(pool.map(phonemizer.phonemize, sentences * 5))
    assert got == expected * 5
