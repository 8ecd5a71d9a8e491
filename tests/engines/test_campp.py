"""CAM++ speaker encoder: Kaldi fbank against a reference, speaker separation on real voices, torch path."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import soxr
from tests.conftest import needs_testdata, speaker_clips

from voxvault.audio.io import decode
from voxvault.engines.base import SpeakerEncoder
from voxvault.engines.campp import CamppEncoder, fbank
from voxvault.errors import VoxError

pytestmark = needs_testdata


@pytest.fixture(scope="module")
def encoder() -> CamppEncoder:
    return CamppEncoder()


@pytest.fixture(scope="module")
def clips() -> dict[str, tuple[np.ndarray, int]]:
    out = {}
    for path in speaker_clips():
        audio = decode(path, max_bytes=50_000_000, max_seconds=120.0)
        out[path.stem] = (audio.samples, audio.sample_rate)
    return out


def _at_16k(samples: np.ndarray, rate: int) -> np.ndarray:
    return soxr.resample(samples, rate, 16000, quality="HQ").astype(np.float32)


def test_fbank_matches_kaldi_native_fbank_on_real_speech(clips: dict[str, tuple[np.ndarray, int]]) -> None:
    knf = pytest.importorskip("kaldi_native_fbank", reason="dev dependency kaldi-native-fbank")
    wav = _at_16k(*next(iter(clips.values())))
    opts = knf.FbankOptions()
    opts.frame_opts.dither = 0.0
    opts.mel_opts.num_bins = 80
    reference = knf.OnlineFbank(opts)
    reference.accept_waveform(16000, wav.tolist())
    reference.input_finished()
    expected = np.stack([reference.get_frame(i) for i in range(reference.num_frames_ready)])
    got = fbank(wav)
    assert got.shape == expected.shape == (1 + (len(wav) - 400) // 160, 80)
    diff = np.abs(got - expected)
    assert diff.max() < 5e-3 and diff.mean() < 1e-4  # log-mel units; float32 FFTs differ in the last bits


def test_torch_fbank_equals_the_numpy_one(encoder: CamppEncoder, clips: dict) -> None:
    import torch

    wav = _at_16k(*next(iter(clips.values())))
    got = encoder.fbank_torch(torch.from_numpy(wav)).numpy()
    np.testing.assert_allclose(got, fbank(wav), atol=5e-3)


def test_halves_of_one_speaker_score_clearly_above_different_speakers(
    encoder: CamppEncoder, clips: dict[str, tuple[np.ndarray, int]]
) -> None:
    assert isinstance(encoder, SpeakerEncoder)
    halves = {}
    for name, (samples, rate) in clips.items():
        cut = len(samples) // 2
        halves[name] = (encoder.embed(samples[:cut], rate), encoder.embed(samples[cut:], rate))
    for pair in halves.values():
        assert all(e.shape == (192,) and e.dtype == np.float32 for e in pair)
        assert float(np.linalg.norm(pair[0])) == pytest.approx(1.0, abs=1e-5)
    names = list(halves)
    same = [float(halves[n][0] @ halves[n][1]) for n in names]
    different = [float(halves[a][0] @ halves[b][1]) for a in names for b in names if a != b]
    # measured: same 0.51-0.75, different -0.18-0.28 (the six test voices)
    assert min(same) > max(different) + 0.15
    assert np.mean(same) - np.mean(different) > 0.4


def test_the_torch_path_equals_the_numpy_path_and_carries_gradients(
    encoder: CamppEncoder, clips: dict[str, tuple[np.ndarray, int]]
) -> None:
    import torch

    samples, rate = next(iter(clips.values()))
    wav16 = _at_16k(samples, rate)
    expected = encoder.embed(wav16, 16000)
    got = encoder.embed_torch(torch.from_numpy(wav16)).detach().numpy()
    np.testing.assert_allclose(got, expected, atol=1e-4)
    # at the clip's own rate (24 kHz): torch's sinc resampler instead of soxr, nearly the same embedding
    wave = torch.from_numpy(samples.copy()).requires_grad_(True)
    embedding = encoder.embed_torch(wave, rate)
    assert float(embedding.detach().numpy() @ encoder.embed(samples, rate)) > 0.999
    other = encoder.embed(*next(reversed(clips.values())))
    (embedding @ torch.from_numpy(other)).backward()
    assert (
        wave.grad is not None and bool(torch.isfinite(wave.grad).all()) and float(wave.grad.abs().sum()) > 0
    )


def test_bad_audio_gets_clear_errors(encoder: CamppEncoder) -> None:
    with pytest.raises(VoxError) as silent:
        encoder.embed(np.zeros(16000, np.float32), 16000)
    assert silent.value.code == "no_speech"
    with pytest.raises(VoxError) as short:
        encoder.embed(np.random.default_rng(0).normal(0, 0.1, 4000).astype(np.float32), 16000)
    assert short.value.code == "audio_too_short"
    with pytest.raises(VoxError) as stereo:
        encoder.embed(np.zeros((2, 16000), np.float32), 16000)
    assert stereo.value.code == "invalid_audio"


def test_importing_the_engine_loads_no_model() -> None:
    code = "import sys, voxvault.engines.campp; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
