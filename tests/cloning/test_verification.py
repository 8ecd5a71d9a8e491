"""The equal-error-rate threshold the clone evaluation's verification accepts at."""

from __future__ import annotations

import numpy as np
import pytest

from voxvault.cloning.verification import THRESHOLDS, equal_error_rate


def test_separable_scores_give_a_threshold_between_them_and_no_error() -> None:
    result = equal_error_rate([0.6, 0.7, 0.8], [0.1, 0.2, 0.3, 0.4])
    assert 0.4 < result.threshold < 0.6 and result.eer == 0.0
    assert (result.same_pairs, result.different_pairs) == (3, 4)


def test_overlapping_scores_balance_false_accepts_and_false_rejects() -> None:
    rng = np.random.default_rng(0)
    same, different = rng.normal(0.6, 0.1, 2000), rng.normal(0.2, 0.1, 2000)
    result = equal_error_rate(list(same), list(different))
    # two equal-variance Gaussians: the EER point is midway (0.4), the error rate Phi(-2) = 0.023
    assert result.threshold == pytest.approx(0.4, abs=0.01)
    assert result.eer == pytest.approx(0.0228, abs=0.006)
    assert abs(result.false_accept - result.false_reject) < 0.005


def test_no_scores_is_an_error() -> None:
    with pytest.raises(ValueError):
        equal_error_rate([], [0.1])


def test_both_judges_have_a_calibrated_threshold() -> None:
    assert set(THRESHOLDS) == {"ge2e", "campp"}
    assert all(0.0 < t < 1.0 for t in THRESHOLDS.values())
