"""Speaker diarization ("who spoke when") from engines already shipped: Silero VAD and CAM++.

Method: speech regions from Silero VAD; inside them, sliding windows of 1.5 s (hop 0.75 s; a region
shorter than a window is one window) embedded by CAM++; agglomerative clustering of the window embeddings
(scipy, cosine distance, average linkage), cut at ``num_speakers`` when it is given, else at
:data:`DISTANCE_THRESHOLD`; then a majority vote of the windows covering each 0.1 s frame of speech, and
runs of one label become turns. Labels are ``speaker_0``, ``speaker_1``, ... in order of first speech.

Threshold: the six real voices in ``shared/testdata/speakers`` cut into these windows (39 windows): same-voice
pairs average cosine 0.596 (5th percentile 0.391), different-voice pairs 0.083 (95th percentile 0.228); at
cosine 0.30 (distance 0.7) 0.9 % of same-voice pairs fall below and 0.3 % of different-voice pairs above,
the best balance on a 0.05 grid (docs/transcription.md, "Who spoke when"). Average linkage compares mean
similarities of clusters, so single noisy pairs matter less.

Overlapped speech (with an ``overlap`` detector, as the registry builds it): pyannote's segmentation-3.0
(engines/segmentation.py) gives each frame the probability that two people speak; a 0.1 s speech frame
above :data:`OVERLAP_THRESHOLD` is overlapped. Its turn is split there and marked ``overlap=True``, and the
second voice gets a turn of its own over the same stretch, also marked: the label with the next most
window votes in that frame (windows across a turn change carry both), else the nearest other speaker's
within :data:`SECOND_VOICE_S`. Without a second label the stretch is marked on the one speaker only.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import soxr

from voxvault.engines.base import FloatArray, SpeakerEncoder, VoiceActivityDetector
from voxvault.errors import VoxError

log = logging.getLogger(__name__)

SAMPLE_RATE = 16000
WINDOW_S = 1.5
HOP_S = 0.75
FRAME_S = 0.1
MIN_WINDOW_S = 0.5  # CAM++ needs 0.5 s; shorter speech regions are left unlabelled
DISTANCE_THRESHOLD = 0.7  # cosine distance; see the module docstring
#: Mean two-speaker probability over a 0.1 s frame above which the frame is overlapped.
OVERLAP_THRESHOLD = 0.5
#: How far from an overlapped frame the other voice may be found when no window voted for it there.
SECOND_VOICE_S = 1.0


class OverlapModel(Protocol):
    frame_s: float

    def overlap_probability(self, audio: np.ndarray, sample_rate: int) -> np.ndarray: ...


@dataclass(frozen=True)
class SpeakerTurn:
    start: float  # seconds
    end: float
    speaker: str  # speaker_0, speaker_1, ...
    overlap: bool  # two people speak in this stretch (module docstring); False without a detector


def merge_frames(labels: list[int], frame_s: float) -> list[tuple[float, float, int]]:
    """Runs of one label in a per-frame label list (-1 = no speech) as (start, end, label)."""
    runs: list[tuple[float, float, int]] = []
    start = 0
    for i in range(1, len(labels) + 1):
        if i == len(labels) or labels[i] != labels[start]:
            if labels[start] >= 0:
                runs.append((round(start * frame_s, 3), round(i * frame_s, 3), labels[start]))
            start = i
    return runs


class Diarizer:
    """Who spoke when, from a VAD and a speaker encoder (both loaded already; this adds no weights)."""

    name = "vad-campp-ahc"

    def __init__(
        self,
        vad: VoiceActivityDetector,
        encoder: SpeakerEncoder,
        threshold: float = DISTANCE_THRESHOLD,
        window_s: float = WINDOW_S,
        hop_s: float = HOP_S,
        overlap: OverlapModel | None = None,
    ) -> None:
        self.vad = vad
        self.encoder = encoder
        self.overlap = overlap
        self.threshold = threshold
        self.window_s = window_s
        self.hop_s = hop_s

    def _windows(self, regions: list[tuple[float, float]]) -> list[tuple[float, float]]:
        out: list[tuple[float, float]] = []
        for start, end in regions:
            if end - start < MIN_WINDOW_S:
                continue
            if end - start <= self.window_s:
                out.append((start, end))
                continue
            t = start
            while t + self.window_s < end:
                out.append((t, t + self.window_s))
                t += self.hop_s
            out.append((max(start, end - self.window_s), end))  # the region's tail
        return out

    def _cluster(self, embeddings: np.ndarray, num_speakers: int | None) -> np.ndarray:
        from scipy.cluster.hierarchy import fcluster, linkage

        n = len(embeddings)
        if n == 1 or num_speakers == 1:
            return np.zeros(n, dtype=int)
        tree = linkage(embeddings.astype(np.float64), method="average", metric="cosine")
        if num_speakers is not None:
            labels = fcluster(tree, t=min(num_speakers, n), criterion="maxclust")
        else:
            labels = fcluster(tree, t=self.threshold, criterion="distance")
        return np.asarray(labels, dtype=int) - 1

    def diarize(
        self, audio: FloatArray, sample_rate: int, num_speakers: int | None = None
    ) -> list[SpeakerTurn]:
        """Speaker turns of mono audio, in time order; [] when there is no speech."""
        wav = np.asarray(audio)
        if wav.ndim != 1:
            raise VoxError("invalid_audio", f"expected mono audio (1-D), got shape {wav.shape}")
        if num_speakers is not None and num_speakers < 1:
            raise VoxError("invalid_num_speakers", "num_speakers must be at least 1")
        wav = wav.astype(np.float32, copy=False)
        if sample_rate != SAMPLE_RATE and len(wav):
            wav = soxr.resample(wav, int(sample_rate), SAMPLE_RATE, quality="HQ").astype(np.float32)
        t0 = time.perf_counter()
        regions = [(s.start, s.end) for s in self.vad.speech_segments(wav, SAMPLE_RATE)]
        windows = self._windows(regions)
        if not windows:
            return []
        clips = [wav[int(s * SAMPLE_RATE) : int(e * SAMPLE_RATE)] for s, e in windows]
        embed_batch = getattr(self.encoder, "embed_batch", None)
        if embed_batch is not None:
            embeddings = np.asarray(embed_batch(clips, SAMPLE_RATE), dtype=np.float32)
        else:
            embeddings = np.stack([self.encoder.embed(c, SAMPLE_RATE) for c in clips])
        labels = self._cluster(embeddings, num_speakers)

        # Frame-level majority vote of the windows covering each speech frame.
        n_frames = int(np.ceil(len(wav) / SAMPLE_RATE / FRAME_S))
        n_labels = int(labels.max()) + 1
        votes = np.zeros((n_frames, n_labels), dtype=np.int32)
        for (start, end), label in zip(windows, labels, strict=True):
            votes[int(round(start / FRAME_S)) : int(round(end / FRAME_S)), label] += 1
        speech = np.zeros(n_frames, dtype=bool)
        for start, end in regions:
            speech[int(round(start / FRAME_S)) : int(round(end / FRAME_S))] = True
        frame_labels = np.where(speech & (votes.sum(axis=1) > 0), votes.argmax(axis=1), -1)
        overlapped, second = self._overlaps(wav, frame_labels, votes)

        # runs of one (label, overlapped) pair: a turn is split where an overlap starts or ends
        keyed = [
            int(label) * 2 + int(o) if label >= 0 else -1
            for label, o in zip(frame_labels, overlapped, strict=True)
        ]
        runs = [(a, b, 0, key // 2, bool(key % 2)) for a, b, key in merge_frames(keyed, FRAME_S)]
        runs += [(a, b, 1, label, True) for a, b, label in merge_frames([int(x) for x in second], FRAME_S)]
        # in time order, the main voice of a stretch before its second (speaker_at takes the first turn)
        runs.sort(key=lambda r: (r[0], r[2]))
        order: dict[int, str] = {}
        turns = [
            SpeakerTurn(start=a, end=b, speaker=order.setdefault(label, f"speaker_{len(order)}"), overlap=o)
            for a, b, _, label, o in runs
        ]
        log.info(
            "diarize: %.1fs audio, %d windows, %d speakers, %d turns (%d overlapped), %.2fs",
            len(wav) / SAMPLE_RATE,
            len(windows),
            len(order),
            len(turns),
            sum(t.overlap for t in turns),
            time.perf_counter() - t0,
        )
        return turns

    def _overlaps(
        self, wav: np.ndarray, frame_labels: np.ndarray, votes: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Per 0.1 s frame: overlapped or not, and the second voice's label there (-1: none found)."""
        n = len(frame_labels)
        overlapped = np.zeros(n, dtype=bool)
        second = np.full(n, -1, dtype=int)
        if self.overlap is None or n == 0:
            return overlapped, second
        prob = np.asarray(self.overlap.overlap_probability(wav, SAMPLE_RATE), dtype=np.float64)
        frame = np.minimum((np.arange(prob.size) * self.overlap.frame_s / FRAME_S).astype(int), n - 1)
        mean = np.bincount(frame, prob, n) / np.maximum(np.bincount(frame, minlength=n), 1)
        overlapped = (mean > OVERLAP_THRESHOLD) & (frame_labels >= 0)
        reach = int(round(SECOND_VOICE_S / FRAME_S))
        for f in np.flatnonzero(overlapped):
            own = int(frame_labels[f])
            others = votes[f].copy()
            others[own] = 0
            if others.max() > 0:
                second[f] = int(others.argmax())
                continue
            lo, hi = max(0, int(f) - reach), min(n, int(f) + reach + 1)
            near = [g for g in range(lo, hi) if frame_labels[g] >= 0 and frame_labels[g] != own]
            if near:
                second[f] = int(frame_labels[min(near, key=lambda g: abs(g - f))])
        return overlapped, second


def speaker_at(turns: list[SpeakerTurn], t: float) -> str | None:
    """The speaker of the turn covering time ``t`` (else the nearest turn within 0.5 s), or None."""
    best: tuple[float, str] | None = None
    for turn in turns:
        if turn.start <= t <= turn.end:
            return turn.speaker
        gap = min(abs(turn.start - t), abs(turn.end - t))
        if gap <= 0.5 and (best is None or gap < best[0]):
            best = (gap, turn.speaker)
    return best[1] if best else None
