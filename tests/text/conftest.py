"""One espeak-backed phonemizer and front end for all text tests (espeak start-up is the slow part)."""

from __future__ import annotations

import pytest

from voxvault.text import Phonemizer, TextFrontend


@pytest.fixture(scope="session")
def phonemizer() -> Phonemizer:
    return Phonemizer()


@pytest.fixture(scope="session")
def frontend(phonemizer: Phonemizer) -> TextFrontend:
    return TextFrontend(phonemizer, max_phonemes=400)
