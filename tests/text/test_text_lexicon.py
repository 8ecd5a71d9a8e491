"""Per-project pronunciations override espeak, and bad entries are refused up front."""

from __future__ import annotations

import pytest

from voxvault.errors import VoxError
from voxvault.text import TextFrontend
from voxvault.text.lexicon import validate_lexicon

KUBERNETES = "kˌubəɹnˈɛtiz"


def test_valid_entries_are_keyed_case_insensitively() -> None:
    assert validate_lexicon({"Kubernetes": f"  {KUBERNETES} "}) == {"kubernetes": KUBERNETES}


@pytest.mark.parametrize(
    ("entries", "mentions"),
    [
        ({"nginx": "ˈɛnʤɪnˈɛks\u0361"}, "U+0361"),  # tie bar is not a Kokoro symbol
        ({"nginx": "ɛnʤɪn😀"}, "outside the Kokoro phoneme set"),
        ({"nginx": "   "}, "empty"),
        ({"new york": "nu jˈɔɹk"}, "one word"),
        ({"": "ə"}, "empty"),
        ({"r2d2": "ɑɹtˈutˈu"}, "one word"),
    ],
)
def test_bad_entries_are_refused(entries: dict[str, str], mentions: str) -> None:
    with pytest.raises(VoxError) as caught:
        validate_lexicon(entries)
    assert caught.value.code == "invalid_lexicon"
    assert caught.value.status == 400
    assert mentions in caught.value.message


def test_override_changes_the_phonemes(frontend: TextFrontend) -> None:
    plain = frontend.plan("We deploy on Kubernetes, daily.")
    custom = frontend.plan("We deploy on KUBERNETES, daily.", lexicon={"kubernetes": KUBERNETES})
    assert len(plain) == len(custom) == 1
    assert KUBERNETES not in plain[0].phonemes
    assert f"{KUBERNETES}," in custom[0].phonemes  # the comma after the word is kept
    assert custom[0].phonemes != plain[0].phonemes
    assert custom[0].text == "We deploy on KUBERNETES, daily."


def test_override_is_whole_word_only(frontend: TextFrontend) -> None:
    lexicon = {"cat": "kˈæʔ"}
    plain = frontend.plan("The catalog is here.")
    assert frontend.plan("The catalog is here.", lexicon=lexicon) == plain


def test_invalid_lexicon_is_refused_by_plan(frontend: TextFrontend) -> None:
    with pytest.raises(VoxError) as caught:
        frontend.plan("Hello there.", lexicon={"hello": "h\u025bl\u02a0"})
    assert caught.value.code == "invalid_lexicon"
