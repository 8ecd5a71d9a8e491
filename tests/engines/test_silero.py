"""Silero VAD on onnxruntime: speech found where people talk, none in silence or noise."""

from __future__ import annotations

import threading
import wave
from pathlib import Path

import numpy as np
import pytest

from voxvault.engines.base import SpeechSegment, VoiceActivityDetector
from voxvault.engines.silero import SileroVAD
from voxvault.errors import VoxError

REPO_ROOT = Path(__file__).resolve().parents[2]
SPEAKERS_DIR = REPO_ROOT.parent / "shared" / "testdata" / "speakers"  # ../shared relative to the repo
needs_clips = pytest.mark.skipif(
    not SPEAKERS_DIR.is_dir(), reason=f"real speech clips not found at {SPEAKERS_DIR}"
)
SPEAKERS = ["andrew", "ashley", "brandon", "elizabeth", "james", "karen"]


def load_clip(name: str) -> tuple[np.ndarray, int]:
    with wave.open(str(SPEAKERS_DIR / f"en_{name}.wav")) as w:
        pcm = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
        return (pcm.astype(np.float32) / 32768.0), w.getframerate()


@pytest.fixture(scope="module")
def vad() -> SileroVAD:
    return SileroVAD()


def test_is_a_voice_activity_detector(vad: SileroVAD) -> None:
    assert isinstance(vad, VoiceActivityDetector)
    assert (vad.name, vad.sample_rate) == ("silero", 16000)


@needs_clips
@pytest.mark.parametrize("name", SPEAKERS)
def test_speech_covers_most_of_a_real_clip(vad: SileroVAD, name: str) -> None:
    audio, sr = load_clip(name)
    duration = len(audio) / sr
    segments = vad.speech_segments(audio, sr)
    assert segments
    assert all(isinstance(s, SpeechSegment) for s in segments)
    assert all(0 <= s.start < s.end <= duration + 1e-3 for s in segments)
    assert all(a.end <= b.start for a, b in zip(segments, segments[1:], strict=False))
    assert vad.speech_seconds(audio, sr) > 0.7 * duration


def test_silence_has_no_speech(vad: SileroVAD) -> None:
    assert vad.speech_segments(np.zeros(3 * 16000, np.float32), 16000) == []
    assert vad.speech_seconds(np.zeros(3 * 16000, np.float32), 16000) == 0.0


def test_white_noise_has_almost_no_speech(vad: SileroVAD) -> None:
    noise = (0.1 * np.random.default_rng(0).standard_normal(3 * 16000)).astype(np.float32)
    assert vad.speech_seconds(noise, 16000) < 0.3


@needs_clips
def test_speech_is_located_between_padding_silences(vad: SileroVAD) -> None:
    audio, sr = load_clip("james")
    pad = np.zeros(2 * sr, np.float32)
    segments = vad.speech_segments(np.concatenate([pad, audio, pad]), sr)
    assert segments
    clip_end = 2.0 + len(audio) / sr
    assert 1.8 <= segments[0].start <= 2.4
    assert clip_end - 0.5 <= segments[-1].end <= clip_end + 0.3


@needs_clips
def test_sample_rate_of_the_input_does_not_move_segments(vad: SileroVAD) -> None:
    import soxr

    audio, sr = load_clip("karen")
    native = vad.speech_segments(audio, sr)
    at_16k = vad.speech_segments(soxr.resample(audio, sr, 16000).astype(np.float32), 16000)
    assert len(native) == len(at_16k)
    for a, b in zip(native, at_16k, strict=True):
        assert abs(a.start - b.start) < 0.05
        assert abs(a.end - b.end) < 0.05


def test_one_probability_per_512_sample_window(vad: SileroVAD) -> None:
    probs = vad.speech_probabilities(np.zeros(16000, np.float32), 16000)
    assert probs.shape == (32,)  # ceil(16000 / 512)
    assert ((probs >= 0) & (probs <= 1)).all()
    assert vad.speech_segments(np.zeros(0, np.float32), 16000) == []


@needs_clips
def test_concurrent_calls_give_the_same_answer(vad: SileroVAD) -> None:
    clips = [load_clip(name) for name in ("andrew", "karen")]
    expected = [vad.speech_segments(a, sr) for a, sr in clips]
    results: dict[int, list[SpeechSegment]] = {}

    def run(i: int) -> None:
        results[i] = vad.speech_segments(*clips[i % 2])

    threads = [threading.Thread(target=run, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(results[i] == expected[i % 2] for i in range(4))


def test_bad_audio_is_refused(vad: SileroVAD) -> None:
    with pytest.raises(VoxError) as err:
        vad.speech_segments(np.zeros((2, 16000), np.float32), 16000)
    assert err.value.code == "invalid_audio"
    with pytest.raises(VoxError) as err:
        vad.speech_segments(np.zeros(16000, np.float32), 0)
    assert err.value.code == "invalid_audio"
