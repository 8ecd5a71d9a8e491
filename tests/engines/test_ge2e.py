"""GE2E speaker encoder: Resemblyzer-equivalent front end and speaker separation on real voices."""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np
import pytest

from voxvault.engines.base import SpeakerEncoder, SpeechSegment
from voxvault.engines.ge2e import (
    GE2EEncoder,
    energy_trim,
    mel_filterbank,
    mel_spectrogram,
    partial_slices,
    smooth_voice_flags,
)
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


SPEAKERS = ["andrew", "ashley", "brandon", "elizabeth", "james", "karen"]


@pytest.fixture(scope="module")
def encoder() -> GE2EEncoder:
    return GE2EEncoder()


@pytest.fixture(scope="module")
def clips() -> dict[str, tuple[np.ndarray, int]]:
    return {name: load_clip(name) for name in SPEAKERS}


def test_mel_filterbank_matches_librosa_reference_values() -> None:
    # Reference numbers from librosa 0.11: librosa.filters.mel(sr=16000, n_fft=400, n_mels=40)
    basis = mel_filterbank()
    assert basis.shape == (40, 201)
    np.testing.assert_allclose(
        basis[[0, 10, 39]].sum(axis=1), [0.02480904, 0.02480904, 0.02497876], rtol=1e-5
    )
    assert [int(basis[i].argmax()) for i in (0, 10, 39)] == [2, 20, 185]


def test_mel_spectrogram_of_a_tone_matches_librosa_reference_values() -> None:
    # librosa.feature.melspectrogram(y=0.5 sin(2 pi 1000 t), sr=16000, n_fft=400, hop_length=160, n_mels=40)
    t = np.arange(16000) / 16000
    tone = (0.5 * np.sin(2 * np.pi * 1000 * t)).astype(np.float32)
    mel = mel_spectrogram(tone)
    assert mel.shape == (101, 40)
    assert int(mel[50].argmax()) == 13
    assert mel[50].max() == pytest.approx(26.12999, rel=1e-4)
    assert mel[0].max() == pytest.approx(10.03464, rel=1e-4)  # zero-padded edge frame


def test_partial_slices_follow_resemblyzer() -> None:
    # Expected values from resemblyzer.VoiceEncoder.compute_partial_slices(n, rate=1.3, min_coverage=0.75)
    assert [(s.start, s.stop) for s in partial_slices(100)] == [(0, 160)]
    assert [(s.start, s.stop) for s in partial_slices(25600)] == [(0, 160)]
    assert [(s.start, s.stop) for s in partial_slices(91234)] == [
        (0, 160),
        (77, 237),
        (154, 314),
        (231, 391),
        (308, 468),
        (385, 545),
    ]


def test_voice_flag_smoothing_fills_short_gaps_and_drops_blips() -> None:
    flags = np.zeros(60, dtype=bool)
    flags[10:30] = True
    flags[33:50] = True  # a 3-window pause inside speech is kept
    flags[55] = True  # a lone blip is smoothed away
    mask = smooth_voice_flags(flags)
    assert mask[10:50].all()
    assert not mask[:3].any()
    assert not mask[57:].any()


def test_energy_trim_shortens_a_long_pause_but_keeps_speech() -> None:
    rng = np.random.default_rng(0)
    burst = (0.1 * rng.standard_normal(16000)).astype(np.float32)
    wav = np.concatenate([burst, np.zeros(48000, np.float32), burst])
    trimmed = energy_trim(wav)
    assert 32000 <= len(trimmed) < 40000


def test_is_a_speaker_encoder(encoder: GE2EEncoder) -> None:
    assert isinstance(encoder, SpeakerEncoder)
    assert (encoder.name, encoder.sample_rate, encoder.dim) == ("ge2e", 16000, 256)


@needs_clips
def test_embedding_is_unit_norm_and_non_negative(encoder: GE2EEncoder, clips: dict) -> None:
    audio, sr = clips["james"]
    emb = encoder.embed(audio, sr)
    assert emb.shape == (256,)
    assert emb.dtype == np.float32
    assert np.linalg.norm(emb) == pytest.approx(1.0, abs=1e-5)
    assert emb.min() >= 0.0


@needs_clips
def test_same_speaker_scores_above_every_other_speaker(encoder: GE2EEncoder, clips: dict) -> None:
    full = {name: encoder.embed(*clips[name]) for name in SPEAKERS}
    for name in SPEAKERS:
        audio, sr = clips[name]
        half = len(audio) // 2
        first, second = encoder.embed(audio[:half], sr), encoder.embed(audio[half:], sr)
        same = float(first @ second)
        others = [float(first @ full[o]) for o in SPEAKERS if o != name]
        assert same > max(others), (name, same, others)


@needs_clips
def test_sample_rate_and_loudness_barely_change_the_embedding(encoder: GE2EEncoder, clips: dict) -> None:
    import soxr

    audio, sr = clips["ashley"]
    reference = encoder.embed(audio, sr)
    at_16k = soxr.resample(audio, sr, 16000).astype(np.float32)
    assert float(encoder.embed(at_16k, 16000) @ reference) > 0.99
    assert float(encoder.embed(audio * 0.05, sr) @ reference) > 0.99  # quiet input is normalised up


@needs_clips
def test_silence_around_speech_is_ignored(encoder: GE2EEncoder, clips: dict) -> None:
    audio, sr = clips["karen"]
    reference = encoder.embed(audio, sr)
    pad = np.zeros(2 * sr, np.float32)
    padded = np.concatenate([pad, audio, pad])
    assert float(encoder.embed(padded, sr) @ reference) > 0.98
    speech = [SpeechSegment(2.0, 2.0 + len(audio) / sr)]
    assert float(encoder.embed(padded, sr, speech_segments=speech) @ reference) > 0.98


def test_silence_and_too_short_audio_are_refused(encoder: GE2EEncoder) -> None:
    with pytest.raises(VoxError) as err:
        encoder.embed(np.zeros(32000, np.float32), 16000)
    assert err.value.code == "no_speech"
    rng = np.random.default_rng(0)
    with pytest.raises(VoxError) as err:
        encoder.embed((0.1 * rng.standard_normal(3000)).astype(np.float32), 16000)
    assert err.value.code == "audio_too_short"
    with pytest.raises(VoxError) as err:
        encoder.embed(np.zeros((2, 16000), np.float32), 16000)
    assert err.value.code == "invalid_audio"
    with pytest.raises(VoxError) as err:
        encoder.embed(np.full(16000, np.nan, np.float32), 16000)
    assert err.value.code == "invalid_audio"


@needs_clips
def test_embed_segments_follows_a_speaker_change(encoder: GE2EEncoder, clips: dict) -> None:
    a, sr = clips["andrew"]
    b, _ = clips["elizabeth"]
    a, b = a[: 4 * sr], b[: 4 * sr]
    rows = encoder.embed_segments(np.concatenate([a, b]), sr, window_s=1.6, hop_s=0.8)
    assert rows.shape == (9, 256)  # windows starting at 0, 0.8, ..., 6.4 s within 8 s
    emb_a, emb_b = encoder.embed(a, sr), encoder.embed(b, sr)
    first, last = rows[:3], rows[-3:]  # entirely inside a's and b's halves
    assert (first @ emb_a > first @ emb_b).all()
    assert (last @ emb_b > last @ emb_a).all()


def test_embed_segments_pads_short_audio_to_one_window(encoder: GE2EEncoder) -> None:
    rng = np.random.default_rng(0)
    rows = encoder.embed_segments((0.1 * rng.standard_normal(8000)).astype(np.float32), 16000)
    assert rows.shape == (1, 256)
    with pytest.raises(VoxError):
        encoder.embed_segments(rng.standard_normal(16000).astype(np.float32), 16000, window_s=1.0, hop_s=2.0)


@needs_clips
def test_concurrent_calls_give_the_same_embedding(encoder: GE2EEncoder, clips: dict) -> None:
    import threading

    inputs = [clips["james"], clips["ashley"]]
    expected = [encoder.embed(a, sr) for a, sr in inputs]
    results: dict[int, np.ndarray] = {}

    def run(i: int) -> None:
        results[i] = encoder.embed(*inputs[i % 2])

    threads = [threading.Thread(target=run, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i in range(4):
        np.testing.assert_allclose(results[i], expected[i % 2], atol=1e-5)
