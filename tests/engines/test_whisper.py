"""Whisper on faster-whisper: real speech transcribed with word timings, long input in bounded windows,
silence skipped, bad options refused. One loaded tiny.en for the whole test session (the registry's)."""

from __future__ import annotations

import dataclasses
import wave
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from tests.conftest import SPEAKERS, needs_testdata

from voxvault.engines import whisper as whisper_mod
from voxvault.engines.asr import word_error_rate
from voxvault.engines.base import SpeechRecognizer
from voxvault.engines.whisper import (
    MODELS,
    SAMPLE_RATE,
    Segment,
    TranscribeOptions,
    WhisperRecognizer,
    ensure_model_dir,
)
from voxvault.errors import VoxError

pytestmark = [pytest.mark.slow, needs_testdata]

#: What the six speakers say (checked by ear); one distinctive word of each that tiny.en hears.
KEYWORDS = {"andrew": "mosquito", "brandon": "career", "elizabeth": "elderly", "james": "colorado"}


def clip(name: str) -> np.ndarray:
    """A speaker's clip at 16 kHz."""
    from voxvault.audio.io import resample

    with wave.open(str(SPEAKERS / f"en_{name}.wav")) as w:
        pcm = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
        rate = w.getframerate()
    return resample(pcm.astype(np.float32) / 32768.0, rate, SAMPLE_RATE)


@pytest.fixture(scope="session")
def tiny(real_vv) -> WhisperRecognizer:  # type: ignore[no-untyped-def]
    return real_vv.engines.transcriber("tiny.en")


def test_is_a_speech_recognizer_and_transcribes_real_speech(tiny: WhisperRecognizer) -> None:
    assert isinstance(tiny, SpeechRecognizer)
    text = tiny.transcribe(clip("james"), SAMPLE_RATE)
    reference = "We have also started contemplating the possibility of moving back to Colorado."
    assert word_error_rate(reference, text) <= 0.1


def test_segments_are_lazy_dataclasses_with_word_timings(tiny: WhisperRecognizer) -> None:
    audio = clip("andrew")
    result = tiny.recognize(audio, SAMPLE_RATE)
    assert result.info.language == "en" and result.info.model == "tiny.en"
    segments = list(result)
    assert segments and all(isinstance(s, Segment) and dataclasses.is_dataclass(s) for s in segments)
    words = [w for s in segments for w in s.words]
    assert "mosquito" in " ".join(w.word.lower() for w in words)
    starts = [w.start for w in words]
    assert starts == sorted(starts) and all(w.end >= w.start for w in words)
    assert words[-1].end <= audio.size / SAMPLE_RATE + 0.1
    assert result.duration == pytest.approx(audio.size / SAMPLE_RATE)


def test_other_sample_rates_are_resampled(tiny: WhisperRecognizer) -> None:
    from voxvault.audio.io import resample

    audio = resample(clip("james"), SAMPLE_RATE, 44_100)
    assert "colorado" in tiny.transcribe(audio, 44_100).lower()


def test_align_times_the_words_it_heard(tiny: WhisperRecognizer) -> None:
    audio = clip("james")
    timings = tiny.align(audio, SAMPLE_RATE, "We have also started contemplating moving back to Colorado")
    assert [t.word for t in timings][-3:] == ["back", "to", "colorado"]
    assert all(0 <= t.start < t.end <= audio.size / SAMPLE_RATE + 0.1 for t in timings)


def test_long_input_in_windows_keeps_every_segment_once(
    tiny: WhisperRecognizer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Small windows so six speakers with pauses span two of them (a real hour uses 240 s windows).
    monkeypatch.setattr(whisper_mod, "WINDOW_S", 40.0)
    monkeypatch.setattr(whisper_mod, "MARGIN_S", 8.0)
    gap = np.zeros(2 * SAMPLE_RATE, dtype=np.float32)
    names = sorted(p.stem.removeprefix("en_") for p in SPEAKERS.glob("en_*.wav"))
    audio = np.concatenate([part for name in names for part in (clip(name), gap)])
    result = tiny.recognize(audio, SAMPLE_RATE, TranscribeOptions(word_timestamps=True))
    segments = list(result)
    text = " ".join(s.text for s in segments).lower()
    assert result.windows >= 2
    for word in KEYWORDS.values():
        assert text.count(word) == 1, (word, text)
    starts = [s.start for s in segments]
    assert starts == sorted(starts) and segments[-1].end <= audio.size / SAMPLE_RATE + 0.1
    assert [s.id for s in segments] == list(range(len(segments)))


def test_an_hour_is_pulled_block_by_block_and_silence_costs_no_model_call(tiny: WhisperRecognizer) -> None:
    block = int(whisper_mod.DECODE_BLOCK_S * SAMPLE_RATE)
    pulled = 0

    def hour() -> Iterator[np.ndarray]:
        nonlocal pulled
        speech = clip("james")
        pulled += speech.size
        yield speech
        for _ in range(3600 * SAMPLE_RATE // block):  # an hour of digital silence, made as it is read
            pulled += block
            yield np.zeros(block, dtype=np.float32)

    result = tiny.recognize_blocks(hour(), TranscribeOptions(word_timestamps=False))
    assert (
        pulled <= (whisper_mod.WINDOW_S + whisper_mod.DECODE_BLOCK_S) * SAMPLE_RATE
    )  # one window, not the hour
    text = " ".join(s.text for s in result)
    assert "colorado" in text.lower()
    assert result.windows == 1
    assert result.duration == pytest.approx(3600 + clip("james").size / SAMPLE_RATE)


def test_silence_is_refused(tiny: WhisperRecognizer) -> None:
    with pytest.raises(VoxError) as info:
        tiny.recognize(np.zeros(5 * SAMPLE_RATE, dtype=np.float32), SAMPLE_RATE)
    assert (info.value.code, info.value.status) == ("silent_audio", 422)
    assert tiny.transcribe(np.zeros(SAMPLE_RATE, dtype=np.float32), SAMPLE_RATE) == ""


def test_a_glimpse_reads_the_first_words_on_a_short_encoder_pass(tiny: WhisperRecognizer) -> None:
    """Streaming partials: the encoder runs on the audio alone (not a 30 s window), without timestamps."""
    james = clip("james")
    lead = np.zeros(SAMPLE_RATE // 2, dtype=np.float32)
    seen = tiny.glimpse(np.concatenate([lead, james[: int(1.5 * SAMPLE_RATE)]]), "en")
    # "We have also started ..." spoken from 0.5 s: the first words heard, speech found where it begins
    # (less the VAD's 0.4 s of padding)
    assert word_error_rate("we have also", " ".join(seen.text.lower().split()[:3])) <= 1 / 3
    assert 0.1 <= seen.start <= 0.6 and seen.language == "en"
    whole = tiny.glimpse(james, "en")
    assert word_error_rate(KEYWORDS_TEXT, whole.text) <= 0.2 and "colorado" in whole.text.lower()
    # nothing to hear: no text, and no model call for digital silence
    assert tiny.glimpse(np.zeros(SAMPLE_RATE, dtype=np.float32)).text == ""
    noise = np.random.default_rng(0).normal(0, 0.01, 2 * SAMPLE_RATE).astype(np.float32)
    assert tiny.glimpse(noise, "en").text == ""


KEYWORDS_TEXT = "We have also started contemplating the possibility of moving back to Colorado."


@pytest.mark.parametrize(
    ("options", "code"),
    [
        (TranscribeOptions(task="translate"), "translation_unavailable"),
        (TranscribeOptions(language="de"), "unsupported_language"),
        (TranscribeOptions(language="klingon"), "unsupported_language"),
        (TranscribeOptions(temperature=1.5), "invalid_temperature"),
    ],
)
def test_bad_options_are_refused_before_any_work(
    tiny: WhisperRecognizer, options: TranscribeOptions, code: str
) -> None:
    with pytest.raises(VoxError) as info:
        tiny.recognize(clip("james"), SAMPLE_RATE, options)
    assert (info.value.code, info.value.status) == (code, 400)


def test_weights_that_do_not_match_their_sha256_are_never_used(tmp_path: Path) -> None:
    bad = dataclasses.replace(MODELS["tiny.en"], sha256="0" * 64)
    with pytest.raises(VoxError) as info:
        ensure_model_dir(tmp_path, bad)
    assert info.value.code == "model_corrupt"
    assert not (tmp_path / "whisper-tiny.en" / "model.bin").exists()
    assert not [p for p in (tmp_path / "whisper-tiny.en").iterdir() if p.name.endswith(".tmp")]


def test_joined_model_is_reused(model_cache: Path) -> None:
    path = ensure_model_dir(model_cache, MODELS["tiny.en"])
    before = (path / "model.bin").stat().st_mtime_ns
    assert ensure_model_dir(model_cache, MODELS["tiny.en"]) == path
    assert (path / "model.bin").stat().st_mtime_ns == before
    assert {p.name for p in path.iterdir()} >= {
        "model.bin",
        "config.json",
        "tokenizer.json",
        "vocabulary.txt",
    }


def test_asr_engine_whisper_is_the_transcriber(model_cache: Path, tmp_path: Path) -> None:
    from voxvault.config import Settings
    from voxvault.engines.registry import EngineRegistry

    registry = EngineRegistry(
        Settings(data_dir=tmp_path, cache_dir=model_cache, asr_engine="whisper", asr_model="tiny.en")
    )
    assert not registry.loaded("transcriber")  # nothing loads before it is asked for
    asr = registry.asr()
    assert asr is registry.transcriber() and isinstance(asr, WhisperRecognizer)
    assert asr.model_name == "tiny.en"
