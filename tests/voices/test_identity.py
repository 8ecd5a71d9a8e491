"""Speaker checks on real speech: same person or not, one speaker per file or two."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from voxvault.audio.io import decode
from voxvault.engines.speaker import cosine
from voxvault.errors import VoxError
from voxvault.voices.identity import (
    IdentityPolicy,
    check_one_speaker,
    check_same_speaker,
    embed_measures,
    same_speaker_threshold,
    speaker_split,
    two_means,
)
from voxvault.voices.quality import AudioMeasures, measure

SPEAKERS = Path(__file__).resolve().parents[2].parent / "shared" / "testdata" / "speakers"
NAMES = ["andrew", "ashley", "brandon", "elizabeth", "james", "karen"]
pytestmark = pytest.mark.skipif(not SPEAKERS.is_dir(), reason=f"real speech clips not found at {SPEAKERS}")
POLICY = IdentityPolicy()


@pytest.fixture(scope="module")
def clips() -> dict[str, np.ndarray]:
    return {
        n: decode(SPEAKERS / f"en_{n}.wav", max_bytes=10**8, max_seconds=60, target_sr=16_000).samples
        for n in NAMES
    }


@pytest.fixture(scope="module")
def engines(vv: Any) -> tuple[Any, Any]:
    return vv.engines.vad(), vv.engines.speaker()


def measured(engines: tuple[Any, Any], audio: np.ndarray, label: str = "x") -> AudioMeasures:
    return measure(label, audio, 24_000, engines[0])


def test_same_person_halves_pass_and_different_people_fail(
    clips: dict[str, np.ndarray], engines: tuple[Any, Any]
) -> None:
    encoder = engines[1]
    halves = {
        n: [
            embed_measures(encoder, [measured(engines, a[: len(a) // 2])]),
            embed_measures(encoder, [measured(engines, a[len(a) // 2 :])]),
        ]
        for n, a in clips.items()
    }
    same = [cosine(*halves[n]) for n in NAMES]
    different = [cosine(halves[a][0], halves[b][1]) for a, b in itertools.permutations(NAMES, 2)]
    assert min(same) > max(different)
    for value in same:
        check_same_speaker(value, POLICY)
    with pytest.raises(VoxError) as info:
        check_same_speaker(max(different), POLICY)
    assert info.value.code == "speaker_mismatch" and info.value.details["measure"] == "speaker_similarity"


def test_short_speech_is_held_to_the_per_file_line_and_different_people_still_fail(
    clips: dict[str, np.ndarray], engines: tuple[Any, Any]
) -> None:
    """Clip halves hold 2-3 s of speech, below ``short_speech_s``: the pooled line is the per-file one
    (0.70), which genuine short halves of the unseen speakers reach (0.715-0.745, refused at 0.75 before)
    while different people stay below it; with as much speech as an enrollment's script, 0.75 holds."""
    assert same_speaker_threshold(POLICY, 2.5) == POLICY.short_same_speaker_threshold == 0.70
    assert same_speaker_threshold(POLICY, 10.0) == same_speaker_threshold(POLICY, None) == 0.75
    encoder = engines[1]
    halves = {}
    for n, a in clips.items():
        parts = [measured(engines, a[: len(a) // 2]), measured(engines, a[len(a) // 2 :])]
        halves[n] = [(embed_measures(encoder, [m]), m.speech_s) for m in parts]
    for a, b in itertools.permutations(NAMES, 2):
        (ea, sa), (eb, sb) = halves[a][0], halves[b][1]
        shorter = min(sa, sb)
        assert shorter < POLICY.short_speech_s
        with pytest.raises(VoxError) as info:
            check_same_speaker(cosine(ea, eb), POLICY, shorter)
        assert info.value.details["threshold"] == 0.70
    for n in NAMES:
        (ea, sa), (eb, sb) = halves[n]
        check_same_speaker(cosine(ea, eb), POLICY, min(sa, sb))
    with pytest.raises(VoxError) as info:
        check_same_speaker(0.72, POLICY, 12.0)  # a long recording against long samples: the full line
    assert info.value.details["threshold"] == 0.75


@pytest.mark.parametrize(("a", "b"), [("andrew", "ashley"), ("brandon", "james"), ("elizabeth", "karen")])
def test_two_people_in_one_file_are_found(
    clips: dict[str, np.ndarray], engines: tuple[Any, Any], a: str, b: str
) -> None:
    m = measured(engines, np.concatenate([clips[a], clips[b]]), "samples[0] (mix.wav)")
    split = speaker_split(engines[1], m, POLICY)
    with pytest.raises(VoxError) as info:
        check_one_speaker(split, m, POLICY)
    assert info.value.code == "multiple_speakers" and info.value.details["file"] == "samples[0] (mix.wav)"


@pytest.mark.parametrize("name", NAMES)
def test_one_person_is_one_speaker(clips: dict[str, np.ndarray], engines: tuple[Any, Any], name: str) -> None:
    audio = np.concatenate([clips[name], 0.7 * clips[name]])  # the same person, twice as much speech
    m = measured(engines, audio)
    check_one_speaker(speaker_split(engines[1], m, POLICY), m, POLICY)


def test_two_means_separates_two_directions() -> None:
    rng = np.random.default_rng(0)
    a = np.abs(rng.normal(size=256)).astype(np.float32)
    b = np.abs(rng.normal(size=256)).astype(np.float32)
    rows = np.stack(
        [a + 0.1 * rng.normal(size=256) for _ in range(5)]
        + [b + 0.1 * rng.normal(size=256) for _ in range(4)]
    )
    labels, _ = two_means(rows.astype(np.float32))
    assert len(set(labels[:5])) == 1 and len(set(labels[5:])) == 1 and labels[0] != labels[5]
