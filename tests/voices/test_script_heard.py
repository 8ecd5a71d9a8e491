"""The consent script heard by Whisper: each part checked, a refusal names what was not heard (fake ASR)."""

from __future__ import annotations

import numpy as np
import pytest

from voxvault.errors import VoxError
from voxvault.voices.consent import build_script
from voxvault.voices.script_heard import HeardScriptChecker

WHO = {"speaker_name": "Jane Doe", "organization": "Acme Studios", "purpose": "audiobook narration"}
CODE = "tomato candle ocean window yellow"
AUDIO = np.zeros(16_000, dtype=np.float32)


class Heard:
    """A recogniser that 'hears' a fixed text."""

    def __init__(self, text: str) -> None:
        self.text = text

    def transcribe(self, audio: np.ndarray, sample_rate: int) -> str:
        return self.text


def check(heard: str) -> dict[str, float]:
    return HeardScriptChecker(Heard(heard)).check(AUDIO, challenge=CODE, **WHO).numbers()


def refusal(heard: str) -> VoxError:
    with pytest.raises(VoxError) as err:
        HeardScriptChecker(Heard(heard)).check(AUDIO, challenge=CODE, **WHO)
    return err.value


def test_the_whole_script_is_heard() -> None:
    scores = check(build_script(challenge=CODE.split(), **WHO))
    assert scores == {
        "speaker_name_recall": 1.0, "organization_recall": 1.0, "purpose_recall": 1.0, "code_recall": 1.0,
        "statement_recall": 1.0,
    }  # fmt: skip


def test_spelling_variants_of_names_count_as_heard() -> None:
    heard = "I, Jayne Doe, consent to Acme Studio's creating a synthetic copy of my voice for audio book " \
        "narration. My one time code is tomato candle ocean window yellow."  # fmt: skip
    assert check(heard)["speaker_name_recall"] == 1.0


@pytest.mark.parametrize(
    ("swap", "part"),
    [
        (("Jane Doe", "Sam Taylor"), "speaker_name"),
        (("Acme Studios", "Globex Corporation"), "organization"),
        (("audiobook narration", "political advertising"), "purpose"),
        (("tomato candle ocean window yellow", "apple river garden pencil tiger"), "code"),
    ],
)
def test_a_wrong_part_is_refused_naming_it_and_what_was_heard(swap: tuple[str, str], part: str) -> None:
    said = build_script(challenge=CODE.split(), **WHO).replace(*swap)
    err = refusal(said)
    # the statement read whole with another code is an older recording's: challenge_not_spoken
    assert err.code == ("challenge_not_spoken" if part == "code" else "script_mismatch") and err.status == 422
    assert err.details["not_heard"] == [part]
    assert part.replace("_", " ") in err.message or part == "code"
    assert swap[0].split()[0].lower() not in err.message.lower()  # the message names parts, not words


def test_the_code_before_the_statement_is_the_wrong_order() -> None:
    statement = build_script(challenge=CODE.split(), **WHO).split(" My one-time code")[0]
    err = refusal(f"My one time code is {CODE}. {statement}")
    assert err.code == "script_wrong_order"


def test_silence_hears_nothing() -> None:
    err = refusal("")
    assert err.code == "script_mismatch"
    assert err.details["not_heard"] == ["speaker_name", "organization", "purpose", "code"]
