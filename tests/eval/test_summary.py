"""The clone evaluation's summary: means per method, and SECS against each speaker's own ceiling."""

from __future__ import annotations

import pytest

from voxvault.eval.clone import summarise


def _row(name: str, own: float, instant: float, served: float, trained: float | None) -> dict[str, object]:
    finetuned: dict[str, object] = {"secs": served, "wer": 0.1, "f0_distance": 1.0, "time_s": 50.0}
    if trained is not None:
        finetuned["as_trained"] = {"secs": trained, "wer": 0.1, "f0_distance": 1.0}
    return {
        "speaker": name,
        "enrol_vs_heldout_secs": own,
        "instant": {"secs": instant, "wer": 0.2, "f0_distance": None, "time_s": 0.01},
        "finetuned": finetuned,
    }


def test_summary_relates_each_clone_to_the_speakers_own_similarity() -> None:
    rows = [_row("a", 0.80, 0.60, 0.80, 0.78), _row("b", 0.70, 0.70, 0.63, 0.70)]
    summary = summarise(rows)
    # 0.80/0.80 and 0.63/0.70: the mean of the ratios, not the ratio of the means (0.7133 / 0.75)
    assert summary["finetuned"]["secs_of_own_mean"] == pytest.approx(0.95)
    assert summary["finetuned"]["secs_mean"] == pytest.approx(0.715)
    assert summary["instant"]["secs_of_own_mean"] == pytest.approx((0.75 + 1.0) / 2)
    assert summary["finetuned"]["as_trained_secs_mean"] == pytest.approx(0.74)
    assert "as_trained_secs_mean" not in summary["instant"]
    assert summary["instant"]["f0_distance_mean"] is None  # no voiced frames to compare
    assert summary["real_enrol_vs_heldout_secs_mean"] == pytest.approx(0.75)
    assert "preset" not in summary  # a method nobody ran is not reported


def test_as_trained_is_averaged_over_the_speakers_that_have_it() -> None:
    summary = summarise([_row("a", 0.8, 0.6, 0.7, 0.76), _row("b", 0.8, 0.6, 0.7, None)])
    assert summary["finetuned"]["as_trained_secs_mean"] == pytest.approx(0.76)


def test_the_runtime_check_is_counted_and_the_fast_runtime_is_reported_beside_it() -> None:
    rows = [_row("a", 0.8, 0.6, 0.70, 0.70), _row("b", 0.8, 0.6, 0.75, 0.75), _row("c", 0.8, 0.6, 0.7, None)]
    # a and b were judged by the runtime check: a moved to PyTorch (its served SECS is the trained one)
    for row, moved, onnx in ((rows[0], True, 0.64), (rows[1], False, 0.75)):
        finetuned = row["finetuned"]
        assert isinstance(finetuned, dict)
        finetuned["runtime_choice"] = {"as_trained": moved}
        finetuned["onnxruntime"] = {"secs": onnx, "wer": 0.1, "f0_distance": 1.0}
    summary = summarise(rows)["finetuned"]
    assert summary["served_as_trained"] == 1
    assert summary["onnxruntime_secs_mean"] == pytest.approx(0.695)
    assert summary["secs_mean"] == pytest.approx(0.7167, abs=1e-4)
