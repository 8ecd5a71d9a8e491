"""The fake engines behave like engines where the product tests lean on them: deterministic audio that
differs by text and voice, scales with text and speed, carries the watermark; stable, voice-telling
embeddings; speech found where the sound is; the same refusals as the real engines."""

from __future__ import annotations

import numpy as np
import pytest

from voxvault.config import Settings
from voxvault.engines.base import SpeakerEncoder, SpeechRecognizer, TimedTTS, VoiceActivityDetector
from voxvault.engines.fake import FakeRecognizer, FakeSpeakerEncoder, FakeTTS, FakeVAD
from voxvault.engines.registry import EngineRegistry
from voxvault.engines.speaker import cosine
from voxvault.errors import VoxError

SHORT = "həlˈoʊ wˈɜːld."
LONG = "ðə kwˈɪk bɹˈaʊn fˈɑks ʤˈʌmps ˌoʊvəɹ ðə lˈeɪzi dˈɑɡ, ænd ðə dˈɑɡ slˈiːps ˈɑːn."


@pytest.fixture(scope="module")
def tts() -> FakeTTS:
    return FakeTTS()


@pytest.fixture(scope="module")
def packs(tts: FakeTTS) -> dict[str, np.ndarray]:
    return tts.preset_styles()


@pytest.fixture(scope="module")
def encoder() -> FakeSpeakerEncoder:
    return FakeSpeakerEncoder()


def test_the_registry_builds_every_fake_from_settings(tmp_path) -> None:  # type: ignore[no-untyped-def]
    fakes = {"tts_engine": "fake", "speaker_engine": "fake", "vad_engine": "fake", "asr_engine": "fake"}
    engines = EngineRegistry(Settings(data_dir=tmp_path, **fakes))  # type: ignore[arg-type]
    assert isinstance(engines.tts(), TimedTTS) and engines.tts().name == "fake"
    assert isinstance(engines.speaker(), SpeakerEncoder)
    assert isinstance(engines.vad(), VoiceActivityDetector)
    assert isinstance(engines.asr(), SpeechRecognizer)


def test_speech_is_deterministic_and_differs_by_text_and_voice(tts: FakeTTS, packs) -> None:  # type: ignore[no-untyped-def]
    alpha = tts.synthesize(SHORT, packs["jf_alpha"])
    assert alpha.dtype == np.float32 and np.abs(alpha).max() <= 1.0
    assert np.array_equal(alpha, FakeTTS().synthesize(SHORT, packs["jf_alpha"]))
    kumo = tts.synthesize(SHORT, packs["jm_kumo"])
    other = tts.synthesize("ɡʊdbˈaɪ wˈɜːld.", packs["jf_alpha"])
    assert not np.array_equal(alpha[: len(kumo)], kumo[: len(alpha)])
    assert not np.array_equal(alpha[: len(other)], other[: len(alpha)])


def test_duration_grows_with_text_and_falls_with_speed(tts: FakeTTS, packs) -> None:  # type: ignore[no-untyped-def]
    style = packs["jf_alpha"]
    short, long = tts.synthesize(SHORT, style), tts.synthesize(LONG, style)
    assert len(long) > 3 * len(short)
    fast = tts.synthesize(LONG, style, speed=2.0)
    assert 0.4 < len(fast) / len(long) < 0.6
    assert tts.synthesize("", style).size == 0


def test_word_spans_follow_the_words_in_order(tts: FakeTTS, packs) -> None:  # type: ignore[no-untyped-def]
    timed = tts.synthesize_timed(LONG, packs["jf_nezumi"])
    spans = timed.word_spans
    assert spans is not None and len(spans) == len(LONG.split())
    assert spans[0][0] == 0.0 and spans[-1][1] == pytest.approx(len(timed.audio) / tts.sample_rate, abs=1e-3)
    assert all(a < b <= c for (a, b), (c, _) in zip(spans, spans[1:], strict=False))


def test_refusals_match_the_real_engine(tts: FakeTTS, packs) -> None:  # type: ignore[no-untyped-def]
    style = packs["jf_alpha"]
    for call, code in (
        (lambda: tts.synthesize(SHORT, style, speed=5.0), "bad_speed"),
        (lambda: tts.synthesize("a" * (tts.max_phonemes + 1), style), "phonemes_too_long"),
        (lambda: tts.synthesize(SHORT, np.zeros(3, np.float32)), "bad_style"),
    ):
        with pytest.raises(VoxError) as err:
            call()
        assert err.value.code == code


def test_the_watermark_survives_fake_speech(tts: FakeTTS, packs) -> None:  # type: ignore[no-untyped-def]
    from voxvault.engines.watermark import Watermarker

    speech = np.concatenate([tts.synthesize(LONG, packs["jf_alpha"])] * 3)
    marker = Watermarker()
    found = marker.detect(marker.embed(speech, tts.sample_rate, 0xC0FFEE42), tts.sample_rate)
    assert found.present and found.payload == 0xC0FFEE42
    assert not marker.detect(speech, tts.sample_rate).present


def test_embeddings_are_stable_and_tell_voices_apart(tts: FakeTTS, packs, encoder) -> None:  # type: ignore[no-untyped-def]
    said = {name: tts.synthesize(LONG, pack) for name, pack in packs.items()}
    again = {name: tts.synthesize("ɪvɹi mˈɔːɹnɪŋ aɪ wˈɔːk tə ðə mˈɑːɹkɪt.", p) for name, p in packs.items()}
    emb = {name: encoder.embed(audio, tts.sample_rate) for name, audio in said.items()}
    assert all(abs(float(np.linalg.norm(e)) - 1.0) < 1e-5 and e.shape == (256,) for e in emb.values())
    assert np.array_equal(emb["jf_alpha"], encoder.embed(said["jf_alpha"], tts.sample_rate))
    for name, audio in again.items():  # another sentence in the same voice is nearest its own voice
        own = encoder.embed(audio, tts.sample_rate)
        nearest = max(emb, key=lambda other: cosine(own, emb[other]))
        assert nearest == name


def test_vad_and_recogniser_find_the_speech(tts: FakeTTS, packs) -> None:  # type: ignore[no-untyped-def]
    rate = tts.sample_rate
    speech = tts.synthesize(SHORT, packs["jf_alpha"])
    padded = np.concatenate([np.zeros(rate, np.float32), speech, np.zeros(rate, np.float32)])
    (segment,) = FakeVAD().speech_segments(padded, rate)
    assert segment.start == pytest.approx(1.0, abs=0.05)
    assert segment.end == pytest.approx(1.0 + len(speech) / rate, abs=0.05)
    assert FakeVAD().speech_segments(np.zeros(rate, np.float32), rate) == []
    asr = FakeRecognizer()
    assert asr.transcribe(np.zeros(rate, np.float32), rate) == ""
    assert asr.transcribe(padded, rate).startswith("word1")
    timings = asr.align(padded, rate, "hello world")
    assert [t.word for t in timings] == ["hello", "world"] and timings[0].start == segment.start


def test_the_fake_transcriber_hears_bursts_where_they_are_and_refuses_as_whisper(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Same options, windows and refusals as Whisper (its code), words where the sound is, a new segment
    after a pause, the same words for the same sound; selected by ``transcriber_engine``."""
    from voxvault.engines.fake import FakeTranscriber
    from voxvault.engines.whisper import TranscribeOptions

    engines = EngineRegistry(Settings(data_dir=tmp_path, transcriber_engine="fake"))
    fake = engines.transcriber("tiny.en")
    assert isinstance(fake, FakeTranscriber) and fake.model_name == "tiny.en"
    assert engines.diarizer().encoder.name == "fake" and not engines.loaded("speaker:campp")
    rate = 16_000
    t = np.arange(int(0.3 * rate)) / rate
    burst = (0.3 * np.sin(2 * np.pi * 200 * t)).astype(np.float32)
    quiet = np.zeros(int(0.2 * rate), np.float32)
    pause = np.zeros(rate, np.float32)
    audio = np.concatenate([quiet, burst, quiet, burst, pause, burst, quiet])
    segments = list(fake.recognize(audio, rate, TranscribeOptions(language="en")))
    assert [len(s.words) for s in segments] == [2, 1]
    assert segments[0].words[0].start == pytest.approx(0.2, abs=0.02)
    assert segments[1].start == pytest.approx(2.0, abs=0.02) and segments[1].end == pytest.approx(
        2.3, abs=0.02
    )
    assert len({w.word for s in segments for w in s.words}) == 1  # the same sound, the same word
    assert fake.transcribe(audio, rate) == fake.transcribe(audio, rate) != ""
    assert fake.transcribe(np.zeros(rate, np.float32), rate) == ""
    for options, code in (
        (TranscribeOptions(task="translate"), "translation_unavailable"),
        (TranscribeOptions(language="de"), "unsupported_language"),
        (TranscribeOptions(temperature=2.0), "invalid_temperature"),
    ):
        with pytest.raises(VoxError) as err:
            fake.recognize(audio, rate, options)
        assert err.value.code == code
    base = FakeTranscriber("base").recognize(audio, rate, TranscribeOptions(task="translate", language="de"))
    assert (base.info.task, base.info.language) == ("translate", "de")
