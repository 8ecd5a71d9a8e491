"""Speaker verification for the clone evaluation: would a judge accept the clone as its speaker?

Each judge (speaker encoder) accepts a pair when the cosine of their embeddings reaches its equal-error-rate
threshold, calibrated on real speech only: ``bench/sv_calibration.py`` splits each real clip of the six test
speakers and the 15 unseen ones (docs/cloning.md) into its halves and into the eval's 60 % enrolment and 40 %
held-out parts, scores the same-speaker pairs (a clip's two halves; its enrolment and held-out part) against
the different-speaker ones (the same parts of two clips), and writes ``bench/results/sv_calibration.json``.
The thresholds below are copied from that file.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class EqualErrorRate:
    """Where false acceptances and false rejections of real pairs are equal (or closest to it)."""

    threshold: float
    eer: float  # mean of the two error rates at the threshold
    false_accept: float
    false_reject: float
    same_pairs: int
    different_pairs: int


def equal_error_rate(same: Sequence[float], different: Sequence[float]) -> EqualErrorRate:
    """The threshold (accept when ``score >= threshold``) with the smallest gap between the false-accept
    rate of ``different`` and the false-reject rate of ``same``; ties go to the smaller error. The threshold
    is placed midway between the two scores that bound it, so it does not sit on a calibration pair."""
    if not same or not different:
        raise ValueError("need same-speaker and different-speaker scores")
    pos, neg = np.sort(np.asarray(same, np.float64)), np.sort(np.asarray(different, np.float64))
    scores = np.unique(np.concatenate([pos, neg]))
    candidates = np.concatenate([[scores[0] - 1e-3], (scores[1:] + scores[:-1]) / 2, [scores[-1] + 1e-3]])
    far = 1.0 - np.searchsorted(neg, candidates, side="left") / len(neg)  # share of different >= t
    frr = np.searchsorted(pos, candidates, side="left") / len(pos)  # share of same < t
    best = int(np.lexsort((far + frr, np.abs(far - frr)))[0])
    return EqualErrorRate(
        threshold=round(float(candidates[best]), 4),
        eer=round(float((far[best] + frr[best]) / 2), 4),
        false_accept=round(float(far[best]), 4),
        false_reject=round(float(frr[best]), 4),
        same_pairs=len(pos),
        different_pairs=len(neg),
    )


#: EER thresholds per judge (encoder name), from ``bench/results/sv_calibration.json`` (2026-12-07: 21
#: speakers, 42 same-speaker and 840 different-speaker pairs; CAM++ EER 0.1 % (same 0.46-0.93, different
#: -0.22-0.48), GE2E EER 2.9 % (same 0.68-0.89, different 0.33-0.81))
THRESHOLDS: dict[str, float] = {"ge2e": 0.6989, "campp": 0.4512}
