"""Style from the speaker: blended from the presets that sound closest, cached reference embeddings."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from voxvault.cloning.conditioning import StyleConditioner, blend_weights


def test_blend_weights_favour_the_closest_and_sum_to_one() -> None:
    w = blend_weights({"a": 0.95, "b": 0.90, "c": 0.60})
    assert abs(sum(w.values()) - 1.0) < 1e-9
    assert w["a"] > w["b"] and "c" not in w  # far presets drop out entirely
    assert blend_weights({"a": 0.5}) == {"a": 1.0}


@pytest.mark.slow  # not research: the blend fallback and the cache a second process reads (8 s)
def test_a_speakers_style_comes_from_the_presets_that_sound_like_them(vv: Any, tmp_path: Path) -> None:
    speech = vv.speak("Every morning I walk to the market and buy fresh bread.", voice="kumo", format="pcm")
    embedding = vv.engines.speaker().embed(speech.samples, speech.sample_rate)
    result = vv.conditioner.blend_style(embedding)  # the fallback method (derive_style is instant)
    assert max(result.weights, key=result.weights.get) == "kumo"
    presets = vv.catalog.preset_styles()
    assert result.style.shape == presets["kumo"].shape and result.style.dtype == np.float32
    expected = sum(w * presets[name] for name, w in result.weights.items())
    assert np.allclose(result.style, expected, atol=1e-3)  # weights are rounded to 4 decimals in the report

    # A second process reads the reference embeddings from the cache instead of synthesising again.
    calls: list[str] = []

    def synthesize(text: str, preset: str) -> tuple[Any, int]:
        calls.append(preset)
        s = vv.speak(text, voice=preset, format="pcm")
        return s.samples, s.sample_rate

    def conditioner() -> StyleConditioner:
        return StyleConditioner(
            presets,
            vv.engines.speaker(),
            synthesize,
            "Good morning to you.",
            cache_dir=tmp_path,
            engine_id="t",
        )

    first = conditioner()
    first.preset_embeddings()
    assert sorted(calls) == sorted(presets)
    second = conditioner()
    got = second.preset_embeddings()
    assert len(calls) == len(presets)  # no new synthesis
    assert all(np.allclose(got[k], v) for k, v in first.preset_embeddings().items())
