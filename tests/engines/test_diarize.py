"""Diarizer on mixtures of real voices with known turns: speaker count found unaided, DER < 0.15."""

from __future__ import annotations

import numpy as np
import pytest
from tests.conftest import needs_testdata, speaker_clips

from voxvault.audio.io import decode
from voxvault.engines.diarize import Diarizer, SpeakerTurn, merge_frames, speaker_at

pytestmark = needs_testdata

SR = 16000
GAP_S = 0.4


@pytest.fixture(scope="module")
def diarizer() -> Diarizer:
    from voxvault.engines.campp import CamppEncoder
    from voxvault.engines.silero import SileroVAD

    return Diarizer(SileroVAD(), CamppEncoder())


@pytest.fixture(scope="module")
def voices() -> dict[str, np.ndarray]:
    out = {}
    for path in speaker_clips():
        out[path.stem] = decode(path, max_bytes=50_000_000, max_seconds=60.0, target_sr=SR).samples
    return out


def _mix(parts: list[tuple[str, np.ndarray]]) -> tuple[np.ndarray, list[tuple[float, float, str]]]:
    """Clips joined with short silences, and the reference turns (speech span of each clip)."""
    pieces, ref, t = [], [], 0.0
    silence = np.zeros(int(GAP_S * SR), np.float32)
    for name, clip in parts:
        loud = np.flatnonzero(np.abs(clip) > 0.02)  # trim the clip's own leading/trailing silence
        clip = clip[loud[0] : loud[-1] + 1]
        ref.append((t, t + len(clip) / SR, name))
        pieces += [clip, silence]
        t += (len(clip) + len(silence)) / SR
    return np.concatenate(pieces).astype(np.float32), ref


def der(ref: list[tuple[float, float, str]], hyp: list[SpeakerTurn], collar: float = 0.25) -> float:
    """Diarization error rate on 10 ms frames: (missed + false alarm + confusion) / reference speech.

    Frames within ``collar`` of a reference boundary are not scored (as NIST md-eval); hypothesis labels
    are mapped to reference labels one-to-one by the best total overlap (Hungarian, scipy)."""
    from scipy.optimize import linear_sum_assignment

    step = 0.01
    end = max([e for _, e, _ in ref] + [t.end for t in hyp])
    n = int(np.ceil(end / step)) + 1
    ref_names = sorted({r for _, _, r in ref})
    hyp_names = sorted({t.speaker for t in hyp})
    r = np.full(n, -1)
    h = np.full(n, -1)
    scored = np.ones(n, dtype=bool)
    for s, e, name in ref:
        r[int(round(s / step)) : int(round(e / step))] = ref_names.index(name)
        for b in (s, e):
            scored[max(0, int(round((b - collar) / step))) : int(round((b + collar) / step))] = False
    for turn in hyp:
        h[int(round(turn.start / step)) : int(round(turn.end / step))] = hyp_names.index(turn.speaker)
    r, h = r[scored], h[scored]
    overlap = np.zeros((len(ref_names), max(len(hyp_names), 1)))
    for i in range(len(ref_names)):
        for j in range(len(hyp_names)):
            overlap[i, j] = np.sum((r == i) & (h == j))
    rows, cols = linear_sum_assignment(-overlap)
    mapping = {int(c): int(rw) for rw, c in zip(rows, cols, strict=True)}
    mapped = np.array([mapping.get(int(x), -2) if x >= 0 else -1 for x in h])
    speech = r >= 0
    missed = np.sum(speech & (h < 0))
    false_alarm = np.sum(~speech & (h >= 0))
    confusion = np.sum(speech & (h >= 0) & (mapped != r))
    return float((missed + false_alarm + confusion) / max(np.sum(speech), 1))


def _halves(clip: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return clip[: len(clip) // 2], clip[len(clip) // 2 :]


# A then B then A; two pairs chosen to include a same-sex and a mixed pair.
@pytest.mark.parametrize("a,b", [("en_andrew", "en_karen"), ("en_brandon", "en_james")])
def test_two_speakers_found_unaided_with_low_der(
    diarizer: Diarizer, voices: dict[str, np.ndarray], a: str, b: str
) -> None:
    a1, a2 = _halves(voices[a])
    audio, ref = _mix([(a, a1), (b, voices[b]), (a, a2)])
    turns = diarizer.diarize(audio, SR)
    assert len({t.speaker for t in turns}) == 2
    assert der(ref, turns) < 0.15
    assert all(not t.overlap and t.end > t.start for t in turns)
    assert [t.start for t in turns] == sorted(t.start for t in turns)


def test_three_speakers_found_unaided_with_low_der(diarizer: Diarizer, voices: dict[str, np.ndarray]) -> None:
    a1, a2 = _halves(voices["en_ashley"])
    audio, ref = _mix([("A", a1), ("B", voices["en_andrew"]), ("C", voices["en_elizabeth"]), ("A", a2)])
    turns = diarizer.diarize(audio, SR)
    assert len({t.speaker for t in turns}) == 3
    assert der(ref, turns) < 0.15


def test_num_speakers_forces_the_count_and_resampled_input_agrees(
    diarizer: Diarizer, voices: dict[str, np.ndarray]
) -> None:
    import soxr

    a1, a2 = _halves(voices["en_andrew"])
    audio, ref = _mix([("A", a1), ("B", voices["en_karen"]), ("A", a2)])
    assert {t.speaker for t in diarizer.diarize(audio, SR, num_speakers=1)} == {"speaker_0"}
    at_24k = soxr.resample(audio, SR, 24000).astype(np.float32)
    assert der(ref, diarizer.diarize(at_24k, 24000, num_speakers=2)) < 0.15


def test_silence_has_no_turns(diarizer: Diarizer) -> None:
    assert diarizer.diarize(np.zeros(SR * 3, np.float32), SR) == []


def test_der_counts_confusion_and_the_helpers() -> None:
    ref = [(0.0, 4.0, "A"), (4.0, 8.0, "B")]
    perfect = [SpeakerTurn(0.0, 4.0, "x", False), SpeakerTurn(4.0, 8.0, "y", False)]
    one_label = [SpeakerTurn(0.0, 8.0, "x", False)]
    assert der(ref, perfect) == 0.0
    assert der(ref, one_label) == pytest.approx(0.5, abs=0.01)  # half the scored speech confused
    assert merge_frames([-1, 0, 0, 1, -1, 1], 0.1) == [(0.1, 0.3, 0), (0.3, 0.4, 1), (0.5, 0.6, 1)]
    assert speaker_at(perfect, 5.0) == "y"
    assert speaker_at(perfect, 8.3) == "y"  # just past the last turn
    assert speaker_at(perfect, 20.0) is None


def test_registry_builds_it_lazily_from_the_shared_vad_and_campp(settings) -> None:  # type: ignore[no-untyped-def]
    from voxvault.engines.registry import EngineRegistry

    engines = EngineRegistry(settings)
    assert not engines.loaded("diarizer") and not engines.loaded("speaker")
    diarizer = engines.diarizer()
    assert engines.diarizer() is diarizer
    assert diarizer.vad is engines.vad() and diarizer.encoder is engines.speaker_named("campp")
