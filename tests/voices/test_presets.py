"""OpenAI's voice names land on the presets whose English is understood best (bench/voices.py measured it;
bench/results/voices.json holds the run the mapping was chosen from)."""

from __future__ import annotations

import json

from tests.conftest import REPO

from voxvault.voices.presets import OPENAI_ALIASES, PRESETS, resolve_preset

RESULTS = REPO / "bench" / "results" / "voices.json"
CLEAR_WER = 0.1  # Whisper's word error rate below which a preset's English is clearly understood


def _ranked() -> list[dict[str, float | str]]:
    rows = json.loads(RESULTS.read_text())["rows"]
    return sorted(rows, key=lambda r: (r["wer_whisper-base"], r["wer_pocketsphinx"]))


def test_every_preset_was_measured() -> None:
    assert {r["preset"] for r in _ranked()} == set(PRESETS)


def test_alloy_speaks_with_the_clearest_preset() -> None:
    assert resolve_preset("alloy") is not None
    assert resolve_preset("alloy").id == _ranked()[0]["preset"]  # type: ignore[union-attr]


def test_every_openai_name_maps_to_a_clearly_understood_preset() -> None:
    wer = {r["preset"]: r["wer_whisper-base"] for r in _ranked()}
    unclear = {name: preset for name, preset in OPENAI_ALIASES.items() if float(wer[preset]) > CLEAR_WER}
    assert unclear == {}
