"""PocketSphinx ASR: plausible transcripts of real speech, nothing for silence, sane forced alignment."""

from __future__ import annotations

import threading
import wave
from pathlib import Path

import numpy as np
import pytest

from voxvault.engines.asr import PocketSphinxASR, normalize_text, phrase_recall, word_error_rate
from voxvault.engines.base import SpeechRecognizer
from voxvault.errors import VoxError

REPO_ROOT = Path(__file__).resolve().parents[2]
SPEAKERS_DIR = REPO_ROOT.parent / "shared" / "testdata" / "speakers"  # ../shared relative to the repo
needs_clips = pytest.mark.skipif(
    not SPEAKERS_DIR.is_dir(), reason=f"real speech clips not found at {SPEAKERS_DIR}"
)


def load_clip(name: str) -> tuple[np.ndarray, int]:
    with wave.open(str(SPEAKERS_DIR / f"en_{name}.wav")) as w:
        pcm = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
        return (pcm.astype(np.float32) / 32768.0), w.getframerate()


@pytest.fixture(scope="module")
def asr() -> PocketSphinxASR:
    return PocketSphinxASR()


@pytest.fixture(scope="module")
def brandon(asr: PocketSphinxASR) -> tuple[np.ndarray, int, str]:
    if not SPEAKERS_DIR.is_dir():
        pytest.skip(f"real speech clips not found at {SPEAKERS_DIR}")
    audio, sr = load_clip("brandon")
    return audio, sr, asr.transcribe(audio, sr)


def test_is_a_speech_recognizer(asr: PocketSphinxASR) -> None:
    assert isinstance(asr, SpeechRecognizer)
    assert (asr.name, asr.sample_rate) == ("pocketsphinx", 16000)


def test_text_helpers() -> None:
    assert normalize_text("Hello, World! It’s 'me'.") == "hello world it's me"
    assert word_error_rate("Hello, world!", "hello world") == 0.0
    assert word_error_rate("one two three four", "one two four") == pytest.approx(0.25)
    assert word_error_rate("one two", "") == 1.0
    assert phrase_recall("blue sky today", "well the blue sky is nice today") == 1.0
    assert phrase_recall("blue sky today", "red sea") == 0.0
    assert phrase_recall("", "anything") == 0.0


@needs_clips
def test_transcribes_real_speech_into_lowercase_words(brandon: tuple[np.ndarray, int, str]) -> None:
    _, _, transcript = brandon
    words = transcript.split()
    assert len(words) >= 5  # about 6 s of fluent speech
    assert transcript == normalize_text(transcript)


@needs_clips
def test_another_voice_is_transcribed_too(asr: PocketSphinxASR) -> None:
    audio, sr = load_clip("james")
    assert len(asr.transcribe(audio, sr).split()) >= 3


def test_silence_and_noise_give_nothing_or_almost_nothing(asr: PocketSphinxASR) -> None:
    assert asr.transcribe(np.zeros(2 * 16000, np.float32), 16000) == ""
    noise = (0.05 * np.random.default_rng(0).standard_normal(2 * 16000)).astype(np.float32)
    assert len(asr.transcribe(noise, 16000).split()) <= 2
    assert asr.transcribe(np.zeros(0, np.float32), 16000) == ""


@needs_clips
def test_align_own_transcript_gives_ordered_timings_inside_the_clip(
    asr: PocketSphinxASR, brandon: tuple[np.ndarray, int, str]
) -> None:
    audio, sr, transcript = brandon
    duration = len(audio) / sr
    timings = asr.align(audio, sr, transcript)
    assert [t.word for t in timings] == transcript.split()
    assert all(0.0 <= t.start < t.end <= duration for t in timings)
    assert all(a.end <= b.start for a, b in zip(timings, timings[1:], strict=False))
    assert timings[-1].end > 0.7 * duration  # the words are spread over the clip, not bunched at the start


@needs_clips
def test_align_skips_unknown_words_without_failing(
    asr: PocketSphinxASR, brandon: tuple[np.ndarray, int, str]
) -> None:
    audio, sr, transcript = brandon
    text = f"Zorblaxian {transcript.upper()}, qwxzy 42!"
    assert [t.word for t in asr.align(audio, sr, text)] == transcript.split()
    assert asr.align(audio, sr, "qwxzy zorblaxian") == []
    assert asr.align(audio, sr, "") == []
    assert asr.align(np.zeros(16000, np.float32), 16000, transcript) == []


@needs_clips
def test_alignment_does_not_disturb_later_transcription(
    asr: PocketSphinxASR, brandon: tuple[np.ndarray, int, str]
) -> None:
    audio, sr, transcript = brandon
    asr.align(audio[: sr // 3], sr, transcript)  # a failed alignment (text far longer than the audio)
    assert asr.transcribe(audio, sr) == transcript


@needs_clips
def test_phrase_check_tells_said_from_unsaid(
    asr: PocketSphinxASR, brandon: tuple[np.ndarray, int, str]
) -> None:
    audio, sr, transcript = brandon
    said = " ".join(transcript.split()[2:6])
    assert asr.keyword_score(audio, sr, said) == 1.0
    assert asr.keyword_score(audio, sr, "purple elephants dance tonight") < 0.5
    check = asr.check_phrase(audio, sr, transcript)
    assert check.recall == 1.0
    assert check.wer == 0.0


@needs_clips
def test_pool_serves_more_concurrent_callers_than_decoders(brandon: tuple[np.ndarray, int, str]) -> None:
    audio, sr, _ = brandon
    piece = audio[: 2 * sr]
    pooled = PocketSphinxASR(pool_size=2)
    expected = pooled.transcribe(piece, sr)
    results: list[str] = []
    threads = [
        threading.Thread(target=lambda: results.append(pooled.transcribe(piece, sr))) for _ in range(3)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert expected
    assert results == [expected] * 3


def test_bad_audio_is_refused(asr: PocketSphinxASR) -> None:
    with pytest.raises(VoxError) as err:
        asr.transcribe(np.zeros((2, 16000), np.float32), 16000)
    assert err.value.code == "invalid_audio"
    with pytest.raises(VoxError) as err:
        asr.align(np.full(16000, np.inf, np.float32), 16000, "hello")
    assert err.value.code == "invalid_audio"
