"""English grapheme -> Kokoro phonemes through espeak-ng (bundled by espeakng-loader, driven by phonemizer).

espeak writes standard IPA with tie bars; Kokoro v1.0 was trained on misaki's symbol set, where diphthongs
and affricates are single letters ("a^ɪ" -> "I", "t^ʃ" -> "ʧ") and American English drops length marks.
The mapping below follows misaki's own espeak fallback for en-us, then anything outside the model's
vocabulary is dropped.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Sequence

from voxvault.text.vocab import filter_to_vocab

__all__ = ["Phonemizer", "espeak_to_kokoro"]

# Longest first, so "e^ɪ" wins over "e" and "ʔn̩" over "ʔ".
_ESPEAK_TO_MISAKI: list[tuple[str, str]] = sorted(
    {
        "ʔˌn\u0329": "tᵊn",
        "ʔn\u0329": "tᵊn",
        "ʔn": "tᵊn",
        "ʔ": "t",
        "a^ɪ": "I",
        "a^ʊ": "W",
        "d^ʒ": "ʤ",
        "e^ɪ": "A",
        "e": "A",
        "t^ʃ": "ʧ",
        "ɔ^ɪ": "Y",
        "ə^l": "ᵊl",
        "ʲo": "jo",
        "ʲə": "jə",
        "ʲ": "",
        "ɚ": "əɹ",
        "r": "ɹ",
        "x": "k",
        "ç": "k",
        "ɐ": "ə",
        "ɬ": "l",
        "\u0303": "",  # nasalisation
    }.items(),
    key=lambda pair: -len(pair[0]),
)
_SYLLABIC = "\u0329"


def espeak_to_kokoro(espeak_ipa: str) -> str:
    """Map one espeak-ng en-us phoneme string (tie '^', with stress) to Kokoro's vocabulary."""
    ps = espeak_ipa
    for old, new in _ESPEAK_TO_MISAKI:
        ps = ps.replace(old, new)
    ps = re.sub(rf"(\S){_SYLLABIC}", r"ᵊ\1", ps).replace(_SYLLABIC, "")  # "n̩" -> "ᵊn"
    ps = ps.replace("o^ʊ", "O")
    ps = ps.replace("ɜːɹ", "ɜɹ").replace("ɜː", "ɜɹ")
    ps = ps.replace("ɪə", "iə")
    ps = ps.replace("ː", "")
    ps = ps.replace("o", "ɔ")  # a bare "o" only comes from espeak < 1.52
    ps = ps.replace("^", "")
    ps = ps.replace("ɹɹ", "ɹ")  # "ɚ" + linking r ("number eight") would otherwise double it
    return filter_to_vocab(ps)


class Phonemizer:
    """American English text -> Kokoro phonemes. Construct once; safe to share between threads.

    espeak-ng keeps global state and is not re-entrant, so every call into it holds a lock.
    Input is expected to be normalised already (see ``normalize_text``); digits would be read by espeak.
    """

    def __init__(self) -> None:
        try:
            import espeakng_loader
            from phonemizer.backend import EspeakBackend
            from phonemizer.backend.espeak.wrapper import EspeakWrapper
        except ImportError as exc:  # pragma: no cover - both are hard dependencies
            raise RuntimeError(
                f"espeakng-loader and phonemizer-fork are required for phonemization (import failed: {exc})"
            ) from exc

        EspeakWrapper.set_library(espeakng_loader.get_library_path())
        EspeakWrapper.set_data_path(espeakng_loader.get_data_path())
        # phonemizer logs warnings that can quote line numbers of the input; keep them out of our logs.
        quiet = logging.getLogger("voxvault.text.espeak")
        quiet.setLevel(logging.ERROR)
        self._lock = threading.Lock()
        self._backend = EspeakBackend(
            language="en-us",
            preserve_punctuation=True,
            with_stress=True,
            tie="^",
            language_switch="remove-flags",
            logger=quiet,
        )

    def phonemize(self, text: str) -> str:
        """One utterance -> Kokoro phonemes ("" when nothing in it is pronounceable)."""
        return self.phonemize_many([text])[0]

    def phonemize_many(self, texts: Sequence[str]) -> list[str]:
        """Several utterances in one espeak pass (one lock, one call): same order, same length."""
        cleaned = [" ".join(t.split()) for t in texts]
        todo = [i for i, t in enumerate(cleaned) if any(ch.isalpha() for ch in t)]
        results = [""] * len(cleaned)
        if not todo:
            return results
        with self._lock:
            raw = self._backend.phonemize([cleaned[i] for i in todo], strip=True)
        for i, espeak_ipa in zip(todo, raw, strict=True):
            results[i] = espeak_to_kokoro(espeak_ipa)
        return results
