"""GE2E speaker encoder (Resemblyzer's pretrained weights) without Resemblyzer's runtime dependencies.

Resemblyzer is installed only for its ``pretrained.pt``; importing it would pull webrtcvad and librosa, so the
network, the mel front end and the partial-utterance averaging are re-implemented here to match it:

- audio resampled to 16 kHz (soxr) and brought to -30 dBFS RMS. Deviation: Resemblyzer only *raises* quiet
  audio, so louder clips keep their level and, the mel spectrogram being linear, the embedding moves with the
  recording level (same clip at -17 vs -30 dBFS: cosine 0.83-0.91 on the test voices). Here the level is
  always set, and set again on the trimmed speech, which makes embeddings gain-invariant without hurting
  speaker separation. ``increase_only=True`` restores Resemblyzer's behaviour exactly;
- silence trimming: Resemblyzer uses webrtcvad; here the caller may pass ``speech_segments`` (e.g. from the
  Silero VAD), otherwise an energy gate with Resemblyzer's smoothing (30 ms windows, moving average of 8,
  dilation by 3 windows each side) keeps voiced regions and shortens long pauses;
- power mel spectrogram identical to ``librosa.feature.melspectrogram(sr=16000, n_fft=400, hop_length=160,
  n_mels=40)`` (Hann window, centred frames with zero padding, Slaney mel scale and area normalisation);
- 160-frame partials at 1.3 per second (last one kept if it covers >= 75 %), each embedded by a 3-layer LSTM
  + Linear + ReLU and L2-normalised; the utterance embedding is their L2-normalised mean.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from numpy.typing import NDArray
from torch import nn

from voxvault.engines.base import EMBEDDING_DIM, FloatArray, SpeechSegment, mono_float32
from voxvault.engines.weights import package_file
from voxvault.errors import VoxError

log = logging.getLogger(__name__)

SAMPLE_RATE = 16000
N_FFT = 400  # 25 ms window
HOP = 160  # 10 ms hop
N_MELS = 40
PARTIAL_FRAMES = 160  # 1.6 s per partial utterance
PARTIAL_RATE = 1.3  # partials per second
MIN_COVERAGE = 0.75
TARGET_DBFS = -30.0
INT16_MAX = 2**15 - 1

# Energy trim (stands in for Resemblyzer's webrtcvad pass, same smoothing constants).
TRIM_WINDOW = 480  # 30 ms
TRIM_AVERAGE_WIDTH = 8
TRIM_MAX_SILENCE_WINDOWS = 6
TRIM_RELATIVE_DB = -40.0  # a window is voiced when within 40 dB of the loudest window ...
TRIM_FLOOR_DBFS = -60.0  # ... and above this absolute floor

MIN_SPEECH_SECONDS = 0.5
SILENCE_RMS = 1e-5  # about -100 dBFS: nothing to embed


def _hz_to_mel(freqs: NDArray[np.float64]) -> NDArray[np.float64]:
    """Slaney mel scale (librosa ``htk=False``): linear below 1 kHz, logarithmic above."""
    f_sp = 200.0 / 3
    mels = freqs / f_sp
    min_log_hz = 1000.0
    min_log_mel = min_log_hz / f_sp
    logstep = np.log(6.4) / 27.0
    log_region = freqs >= min_log_hz
    mels[log_region] = min_log_mel + np.log(freqs[log_region] / min_log_hz) / logstep
    return mels


def _mel_to_hz(mels: NDArray[np.float64]) -> NDArray[np.float64]:
    f_sp = 200.0 / 3
    freqs = f_sp * mels
    min_log_hz = 1000.0
    min_log_mel = min_log_hz / f_sp
    logstep = np.log(6.4) / 27.0
    log_region = mels >= min_log_mel
    freqs[log_region] = min_log_hz * np.exp(logstep * (mels[log_region] - min_log_mel))
    return freqs


def mel_filterbank(
    sr: int = SAMPLE_RATE, n_fft: int = N_FFT, n_mels: int = N_MELS, fmax: float | None = None
) -> NDArray[np.float32]:
    """Slaney-normalised triangular filters, as ``librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=n_mels)``."""
    fft_freqs = np.fft.rfftfreq(n=n_fft, d=1.0 / sr)
    edges = np.array([0.0, sr / 2.0 if fmax is None else fmax])
    mel_edges = _hz_to_mel(edges)
    mel_f = _mel_to_hz(np.linspace(mel_edges[0], mel_edges[1], n_mels + 2))
    fdiff = np.diff(mel_f)
    ramps = np.subtract.outer(mel_f, fft_freqs)
    lower = -ramps[:-2] / fdiff[:-1, None]
    upper = ramps[2:] / fdiff[1:, None]
    weights = np.maximum(0.0, np.minimum(lower, upper))
    weights *= (2.0 / (mel_f[2 : n_mels + 2] - mel_f[:n_mels]))[:, None]
    return weights.astype(np.float32)


_MEL_BASIS = mel_filterbank()
_HANN = (0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(N_FFT) / N_FFT)).astype(np.float32)  # periodic Hann


def mel_spectrogram(wav: FloatArray) -> NDArray[np.float32]:
    """(frames, 40) power mel spectrogram; frames = 1 + len(wav) // 160, as librosa's centred STFT gives."""
    padded = np.pad(wav.astype(np.float32, copy=False), N_FFT // 2, mode="constant")
    n_frames = 1 + (len(padded) - N_FFT) // HOP
    frames = np.lib.stride_tricks.sliding_window_view(padded, N_FFT)[::HOP][:n_frames]
    power = np.abs(np.fft.rfft(frames * _HANN, axis=1)) ** 2
    return (power.astype(np.float32) @ _MEL_BASIS.T).astype(np.float32)


def partial_slices(n_samples: int) -> list[slice]:
    """Mel-frame slices of the partial utterances (Resemblyzer's ``compute_partial_slices``)."""
    n_frames = int(np.ceil((n_samples + 1) / HOP))
    frame_step = int(np.round((SAMPLE_RATE / PARTIAL_RATE) / HOP))
    steps = max(1, n_frames - PARTIAL_FRAMES + frame_step + 1)
    slices = [slice(i, i + PARTIAL_FRAMES) for i in range(0, steps, frame_step)]
    last = slices[-1]
    coverage = (n_samples - last.start * HOP) / (PARTIAL_FRAMES * HOP)
    if coverage < MIN_COVERAGE and len(slices) > 1:
        slices = slices[:-1]
    return slices


def normalize_volume(wav: FloatArray, increase_only: bool = False) -> FloatArray:
    """Scale to -30 dBFS RMS; with ``increase_only`` loud audio is left alone (Resemblyzer's behaviour)."""
    rms = float(np.sqrt(np.mean(np.square(wav, dtype=np.float64))))
    if rms <= 0.0:
        return wav
    change_db = TARGET_DBFS - 20.0 * np.log10(rms)
    if increase_only and change_db <= 0:
        return wav
    return (wav * np.float32(10 ** (change_db / 20.0))).astype(np.float32)


def smooth_voice_flags(flags: NDArray[np.bool_]) -> NDArray[np.bool_]:
    """Resemblyzer's post-VAD smoothing: moving average of 8 windows, rounded, then dilated by 3 each side."""
    width = TRIM_AVERAGE_WIDTH
    padded = np.concatenate(
        [np.zeros((width - 1) // 2, np.int32), flags.astype(np.int32), np.zeros(width // 2, np.int32)]
    )
    counts = np.convolve(padded, np.ones(width, dtype=np.int32), mode="valid")
    mask = (2 * counts > width).astype(np.int32)  # np.round(counts / width) with round-half-to-even
    size = TRIM_MAX_SILENCE_WINDOWS + 1  # scipy binary_dilation with a centred structure of ones
    dilated = np.convolve(mask, np.ones(size, dtype=np.int32), mode="full")
    left = size // 2
    return dilated[size - 1 - left : size - 1 - left + len(mask)] > 0


def energy_trim(wav: FloatArray) -> FloatArray:
    """Drop long pauses: keep 30 ms windows near voiced ones (webrtcvad replaced by an energy gate)."""
    usable = len(wav) - len(wav) % TRIM_WINDOW
    if usable == 0:
        return wav[:0]
    windows = wav[:usable].reshape(-1, TRIM_WINDOW).astype(np.float64)
    db = 10.0 * np.log10(np.mean(windows**2, axis=1) + 1e-20)
    threshold = max(float(db.max()) + TRIM_RELATIVE_DB, TRIM_FLOOR_DBFS)
    mask = smooth_voice_flags(db > threshold)
    return wav[:usable][np.repeat(mask, TRIM_WINDOW)]


class _GE2ENetwork(nn.Module):
    """The layers in Resemblyzer's ``VoiceEncoder`` (same parameter names as its state dict)."""

    def __init__(self) -> None:
        super().__init__()
        self.lstm = nn.LSTM(N_MELS, 256, 3, batch_first=True)
        self.linear = nn.Linear(256, EMBEDDING_DIM)
        self.relu = nn.ReLU()

    def forward(self, mels: torch.Tensor) -> torch.Tensor:
        _, (hidden, _) = self.lstm(mels)
        raw = self.relu(self.linear(hidden[-1]))
        return raw / torch.linalg.vector_norm(raw, dim=1, keepdim=True).clamp_min(1e-12)


def default_weights_path() -> Path:
    """``pretrained.pt`` inside the installed resemblyzer package, found without importing it."""
    return package_file("resemblyzer", "pretrained.pt", "GE2E weights")


class GE2EEncoder:
    """Speaker embeddings (256-d, L2-normalised, non-negative) from Resemblyzer's GE2E model.

    Thread-safe: weights are read-only after construction and inference runs under ``torch.inference_mode``.
    """

    name = "ge2e"
    sample_rate = SAMPLE_RATE
    dim = EMBEDDING_DIM

    def __init__(
        self, device: str = "cpu", weights_path: str | Path | None = None, increase_only: bool = False
    ) -> None:
        t0 = time.perf_counter()
        self.increase_only = increase_only
        self.device = torch.device(device)
        path = Path(weights_path) if weights_path is not None else default_weights_path()
        checkpoint = torch.load(path, map_location=self.device, weights_only=True)
        state = {k: v for k, v in checkpoint["model_state"].items() if k.startswith(("lstm.", "linear."))}
        network = _GE2ENetwork()
        network.load_state_dict(state, strict=True)
        self._network = network.to(self.device).eval()
        for p in self._network.parameters():
            p.requires_grad_(False)  # gradients flow to the input only
        self._torch_front: dict[tuple[int, str], tuple[torch.Tensor, torch.Tensor]] = {}
        self.load_seconds = time.perf_counter() - t0
        log.info("ge2e loaded on %s in %.2fs", self.device, self.load_seconds)

    def _to_16k(self, audio: FloatArray, sample_rate: int) -> FloatArray:
        return mono_float32(audio, sample_rate, SAMPLE_RATE)

    def _forward(self, mels: NDArray[np.float32]) -> NDArray[np.float32]:
        with torch.inference_mode():
            batch = torch.from_numpy(np.ascontiguousarray(mels)).to(self.device)
            embeddings: NDArray[np.float32] = self._network(batch).cpu().numpy().astype(np.float32)
        return embeddings

    def preprocess(
        self, audio: FloatArray, sample_rate: int, speech_segments: Sequence[SpeechSegment] | None = None
    ) -> FloatArray:
        """16 kHz, volume-normalised, pauses trimmed: the waveform the network actually hears.

        ``speech_segments`` (seconds in ``audio``'s time line) replaces the energy trim when given.
        """
        wav = self._to_16k(audio, sample_rate)
        if speech_segments is not None:
            pieces = [
                wav[max(0, int(s.start * SAMPLE_RATE)) : max(0, int(np.ceil(s.end * SAMPLE_RATE)))]
                for s in speech_segments
            ]
            wav = np.concatenate(pieces) if pieces else wav[:0]
        if len(wav) == 0 or float(np.sqrt(np.mean(np.square(wav, dtype=np.float64)))) < SILENCE_RMS:
            raise VoxError("no_speech", "no speech found in the audio to build a voice embedding from")
        wav = normalize_volume(wav, self.increase_only)
        if speech_segments is None:
            wav = energy_trim(wav)
            if not self.increase_only and len(wav):
                wav = normalize_volume(wav)  # level of the speech itself, not of speech plus pauses
        if len(wav) < MIN_SPEECH_SECONDS * SAMPLE_RATE:
            raise VoxError(
                "audio_too_short",
                f"need at least {MIN_SPEECH_SECONDS} s of speech for a voice embedding",
                speech_seconds=round(len(wav) / SAMPLE_RATE, 3),
            )
        return wav

    def embed(
        self,
        audio: FloatArray,
        sample_rate: int,
        speech_segments: Sequence[SpeechSegment] | None = None,
    ) -> FloatArray:
        """One utterance embedding: mean of the partial embeddings, L2-normalised."""
        t0 = time.perf_counter()
        wav = self.preprocess(audio, sample_rate, speech_segments)
        slices = partial_slices(len(wav))
        needed = slices[-1].stop * HOP
        if needed > len(wav):
            wav = np.pad(wav, (0, needed - len(wav)))
        mel = mel_spectrogram(wav)
        partials = self._forward(np.stack([mel[s] for s in slices]))
        mean = partials.mean(axis=0)
        embedding = (mean / max(float(np.linalg.norm(mean)), 1e-12)).astype(np.float32)
        log.debug(
            "ge2e embed: %.2fs audio, %d partials, %.3fs",
            len(wav) / SAMPLE_RATE,
            len(slices),
            time.perf_counter() - t0,
        )
        return embedding

    def embed_differentiable(self, audio: torch.Tensor, sample_rate: int) -> torch.Tensor:
        """The utterance embedding of a torch waveform, keeping autograd (style fine-tuning by gradient).

        Same features as :meth:`embed` without leaving torch: for a rate that is a multiple of 8 kHz up
        to 48 kHz the STFT runs at that rate with a 25 ms window and 10 ms hop and the mel filters stop at
        8 kHz, which gives the 16 kHz filterbank's bins (40 Hz apart) without resampling; the power is
        scaled by the window-length ratio. Pauses are not trimmed (callers pass trimmed speech).
        """
        if sample_rate % 8000 or not 16000 <= sample_rate <= 48000:
            raise VoxError(
                "invalid_audio", f"differentiable embedding needs 16/24/32/40/48 kHz, got {sample_rate}"
            )
        wav = audio.reshape(-1).to(self.device, torch.float32)
        n_fft, hop = sample_rate // 40, sample_rate // 100
        key = (sample_rate, str(self.device))
        if key not in self._torch_front:
            basis = mel_filterbank(sample_rate, n_fft, N_MELS, fmax=SAMPLE_RATE / 2)
            window = torch.hann_window(n_fft, periodic=True, device=self.device)
            self._torch_front[key] = (torch.from_numpy(basis).to(self.device), window)
        basis_t, window = self._torch_front[key]
        rms = torch.sqrt(torch.mean(wav**2) + 1e-12)
        wav = wav * (10 ** (TARGET_DBFS / 20.0) / rms)  # -30 dBFS, as embed() does
        n16 = int(wav.numel() * SAMPLE_RATE / sample_rate)
        slices = partial_slices(n16)
        needed = slices[-1].stop * hop
        if needed > wav.numel():
            wav = torch.nn.functional.pad(wav, (0, needed - wav.numel()))
        spec = torch.stft(
            wav, n_fft, hop, window=window, center=True, pad_mode="constant", return_complex=True
        )
        power = (spec.real**2 + spec.imag**2) * (N_FFT / n_fft)
        mel = (basis_t @ power).T  # (frames, 40)
        partials = self._network(torch.stack([mel[sl] for sl in slices]))
        mean = partials.mean(dim=0)
        return mean / torch.linalg.vector_norm(mean).clamp_min(1e-12)

    def embed_segments(
        self, audio: FloatArray, sample_rate: int, window_s: float = 1.6, hop_s: float = 0.8
    ) -> NDArray[np.float32]:
        """(n, 256) embeddings of fixed windows; row ``i`` covers ``[i * hop_s, i * hop_s + window_s)``.

        No silence trimming (rows must stay on the input's time line); audio shorter than one window is
        zero-padded to one window. Silent windows give near-arbitrary rows: mask them with a VAD if needed.
        """
        if not (0 < hop_s <= window_s) or window_s < 0.1:
            raise VoxError(
                "invalid_window", f"need 0 < hop_s <= window_s and window_s >= 0.1, got {window_s}/{hop_s}"
            )
        wav = self._to_16k(audio, sample_rate)
        if len(wav) == 0 or float(np.sqrt(np.mean(np.square(wav, dtype=np.float64)))) < SILENCE_RMS:
            raise VoxError("no_speech", "no speech found in the audio to build voice embeddings from")
        wav = normalize_volume(wav, self.increase_only)
        win = int(round(window_s * SAMPLE_RATE / HOP))
        step = int(round(hop_s * SAMPLE_RATE / HOP))
        mel = mel_spectrogram(wav)
        usable = len(wav) // HOP  # frames whose window starts inside the audio
        if usable < win:
            mel = np.pad(mel, ((0, win - len(mel)), (0, 0))) if len(mel) < win else mel
            starts = [0]
        else:
            starts = list(range(0, usable - win + 1, step))
        return self._forward(np.stack([mel[s : s + win] for s in starts]))
