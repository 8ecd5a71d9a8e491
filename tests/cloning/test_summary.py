"""The clone evaluation's summary: means per method, and SECS against each speaker's own ceiling."""

from __future__ import annotations

import pytest

from voxvault.cloning.evaluation import summarise


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


def test_the_gap_to_each_speakers_ceiling_comes_with_a_bootstrap_interval() -> None:
    # every clone 0.02-0.03 below its own speaker's ceiling: the paired interval lies wholly below zero
    ceilings = (
        ("a", 0.80, 0.02),
        ("b", 0.70, 0.03),
        ("c", 0.85, 0.02),
        ("d", 0.75, 0.03),
        ("e", 0.90, 0.025),
    )
    rows = [_row(n, own, 0.6, own - gap, None) for n, own, gap in ceilings]
    finetuned = summarise(rows)["finetuned"]
    assert finetuned["secs_minus_own_mean"] == pytest.approx(-0.025)
    low, high = finetuned["secs_minus_own_ci95"]
    assert -0.03 <= low < -0.025 < high <= -0.02
    # the SECS themselves spread 0.67-0.88 across speakers: a wide interval around their mean
    low, high = finetuned["secs_ci95"]
    assert low < finetuned["secs_mean"] < high and high - low > 0.05


def test_a_gap_that_goes_both_ways_is_not_told_apart_from_the_ceiling() -> None:
    rows = [
        _row(n, 0.8, 0.6, served, None) for n, served in (("a", 0.78), ("b", 0.83), ("c", 0.79), ("d", 0.81))
    ]
    low, high = summarise(rows)["finetuned"]["secs_minus_own_ci95"]
    assert low < 0.0 < high


def test_one_speaker_has_no_interval() -> None:
    summary = summarise([_row("a", 0.8, 0.6, 0.7, None)])["finetuned"]
    assert summary["secs_ci95"] is None and summary["secs_minus_own_ci95"] is None


def _judged(secs: float, accepted: bool, closest: bool) -> dict[str, object]:
    return {"secs": secs, "accepted": accepted, "nearest_other": 0.3, "closest": closest}


def test_each_judge_gets_its_own_means_gaps_accept_and_closest_rates() -> None:
    rows = []
    for name, own_campp, clone_campp, accepted, closest in (
        ("a", 0.70, 0.40, True, True),
        ("b", 0.60, 0.20, False, True),
        ("c", 0.80, 0.30, False, False),
        ("d", 0.65, 0.45, True, True),
    ):
        row = _row(name, 0.8, 0.6, 0.78, None)
        row["own"] = {"campp": _judged(own_campp, True, True), "ge2e": _judged(0.8, True, True)}
        finetuned = row["finetuned"]
        assert isinstance(finetuned, dict)
        finetuned["judges"] = {
            "campp": _judged(clone_campp, accepted, closest),
            "ge2e": _judged(0.78, True, True),
        }
        rows.append(row)
    summary = summarise(rows)
    campp = summary["finetuned"]["judges"]["campp"]
    assert campp["secs_mean"] == pytest.approx(0.3375)
    assert campp["secs_minus_own_mean"] == pytest.approx(-0.35)  # paired with CAM++'s own, not GE2E's
    assert campp["accept_rate"] == pytest.approx(0.5) and campp["closest_rate"] == pytest.approx(0.75)
    low, high = campp["secs_minus_own_ci95"]
    assert high < 0.0
    ge2e = summary["finetuned"]["judges"]["ge2e"]
    assert ge2e["secs_minus_own_mean"] == pytest.approx(-0.02) and ge2e["accept_rate"] == 1.0
    assert summary["own"]["campp"]["secs_mean"] == pytest.approx(0.6875)
    assert summary["own"]["campp"]["accept_rate"] == 1.0
    assert "judges" not in summary["instant"]  # a row judged by one encoder only has no per-judge summary
