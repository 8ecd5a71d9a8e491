"""Who is speaking: one speaker per sample file, and the same person in the consent and the samples.

Both checks use GE2E speaker embeddings (256-d, L2-normalised, cosine similarity):

- **same person**: the embedding of the consent recording's speech against the embedding of all samples'
  speech together; below ``same_speaker_threshold`` the enrollment is refused (``speaker_mismatch``).
- **one speaker per file**: 1.6 s windows every 0.8 s, those mostly inside speech kept, are split into two
  groups by spherical 2-means. One speaker gives two groups whose centroids are still close; two speakers
  give two groups of real size whose centroids are far apart (``multiple_speakers``, naming the file).

Thresholds come from bench/consent_calibration.py; docs/consent.md reports their measured error rates.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from voxvault.engines.base import FloatArray, SpeakerEncoder, SpeechSegment
from voxvault.engines.speaker import cosine, unit
from voxvault.errors import VoxError
from voxvault.voices.quality import ANALYSIS_RATE, AudioMeasures

WINDOW_S = 1.6
HOP_S = 0.8
MIN_SPEECH_COVER = 0.8  # a window counts when this share of it is speech


@dataclass(frozen=True)
class IdentityPolicy:
    same_speaker_threshold: float = 0.75
    # With little speech on either side GE2E's same-person score falls (1.7-3 s of speech, halves of one
    # clip: 0.715-0.885 over 21 speakers, bench/consent_victims.py) while different people stay below 0.70
    # (0.451-0.687, bench/consent_calibration.py): the pooled check is held to the per-file line there. A
    # script reading is about 9 s of speech, so only short samples (enroll_min_speech_s lowered) get it.
    short_speech_s: float = 4.0
    short_same_speaker_threshold: float = 0.70
    # The recording against EACH sample file, by two encoders; a file fails when either judge is below its
    # own threshold (bench/consent.py calibrates both on real pairs and on the project's own clones).
    file_ge2e_threshold: float = 0.70
    file_campp_threshold: float = 0.515
    split_threshold: float = 0.80  # centroid cosine below this (with both groups big enough) = two speakers
    min_group_windows: int = 3  # about 3 s of speech in the smaller group


def speech_only(audio: FloatArray, segments: tuple[SpeechSegment, ...] | list[SpeechSegment]) -> FloatArray:
    pieces = [audio[int(s.start * ANALYSIS_RATE) : int(np.ceil(s.end * ANALYSIS_RATE))] for s in segments]
    pieces = [p for p in pieces if len(p)]
    return np.concatenate(pieces).astype(np.float32) if pieces else np.zeros(0, dtype=np.float32)


def embed_measures(encoder: SpeakerEncoder, files: list[AudioMeasures]) -> FloatArray:
    """One embedding for the speech of one or more files (partials averaged over all of it)."""
    speech = np.concatenate([speech_only(m.audio, m.segments) for m in files]) if files else np.zeros(0)
    if len(speech) == 0:
        raise VoxError("no_speech", "no speech to build a voice embedding from", 422)
    emb = np.asarray(encoder.embed(speech.astype(np.float32), ANALYSIS_RATE), dtype=np.float32)
    return emb


@dataclass(frozen=True)
class SplitScore:
    windows: int
    centroid_cosine: float | None  # None: too little speech to tell
    smaller_group: int

    def numbers(self) -> dict[str, float | int | None]:
        cos = None if self.centroid_cosine is None else round(self.centroid_cosine, 4)
        return {"windows": self.windows, "centroid_cosine": cos, "smaller_group": self.smaller_group}


def _speech_windows(m: AudioMeasures, n_rows: int) -> NDArray[np.bool_]:
    keep = np.zeros(n_rows, dtype=bool)
    for i in range(n_rows):
        start, end = i * HOP_S, i * HOP_S + WINDOW_S
        covered = sum(max(0.0, min(end, s.end) - max(start, s.start)) for s in m.segments)
        keep[i] = covered >= MIN_SPEECH_COVER * WINDOW_S
    return keep


def two_means(
    rows: NDArray[np.float32], iterations: int = 20
) -> tuple[NDArray[np.int_], NDArray[np.float32]]:
    """Spherical 2-means, started from the two least similar rows (deterministic)."""
    unit = rows / np.maximum(np.linalg.norm(rows, axis=1, keepdims=True), 1e-12)
    sims = unit @ unit.T
    i, j = np.unravel_index(int(np.argmin(sims)), sims.shape)
    centroids = np.stack([unit[i], unit[j]])
    labels = np.zeros(len(unit), dtype=np.int_)
    for _ in range(iterations):
        new = np.argmax(unit @ centroids.T, axis=1)
        if _ and np.array_equal(new, labels):
            break
        labels = new
        for k in (0, 1):
            members = unit[labels == k]
            if len(members):
                c = members.mean(axis=0)
                centroids[k] = c / max(float(np.linalg.norm(c)), 1e-12)
    return labels, centroids.astype(np.float32)


def speaker_split(encoder: SpeakerEncoder, m: AudioMeasures, policy: IdentityPolicy) -> SplitScore:
    """How strongly one file's speech falls into two different voices."""
    embed_segments = getattr(encoder, "embed_segments", None)
    if embed_segments is None or m.speech_s < 2 * policy.min_group_windows * HOP_S:
        return SplitScore(0, None, 0)
    rows = np.asarray(
        embed_segments(m.audio, ANALYSIS_RATE, window_s=WINDOW_S, hop_s=HOP_S), dtype=np.float32
    )
    rows = rows[_speech_windows(m, len(rows))]
    if len(rows) < 2 * policy.min_group_windows:
        return SplitScore(len(rows), None, 0)
    labels, centroids = two_means(rows)
    smaller = int(min(np.count_nonzero(labels == 0), np.count_nonzero(labels == 1)))
    return SplitScore(len(rows), cosine(centroids[0], centroids[1]), smaller)


def check_one_speaker(split: SplitScore, m: AudioMeasures, policy: IdentityPolicy) -> None:
    if (
        split.centroid_cosine is not None
        and split.smaller_group >= policy.min_group_windows
        and split.centroid_cosine < policy.split_threshold
    ):
        raise VoxError(
            "multiple_speakers",
            f"{m.label}: more than one voice is speaking in this file (the two voices found have cosine "
            f"{split.centroid_cosine:.2f}, below {policy.split_threshold:.2f}); give each file one speaker",
            422,
            file=m.label,
            measure="centroid_cosine",
            value=round(split.centroid_cosine, 4),
            threshold=policy.split_threshold,
        )


@dataclass(frozen=True)
class FileMatch:
    """The consent recording against one sample file, by each judge (cosines of unit embeddings)."""

    file: str
    ge2e: float
    campp: float | None  # None: CAM++ is not configured

    def numbers(self) -> dict[str, float | None]:
        return {"ge2e": round(self.ge2e, 4), "campp": None if self.campp is None else round(self.campp, 4)}


def match_files(
    encoders: dict[str, SpeakerEncoder], recording: AudioMeasures, files: list[AudioMeasures]
) -> list[FileMatch]:
    """Each sample file's speech against the recording's, by GE2E and (when given) CAM++."""
    rec = {name: unit(embed_measures(enc, [recording])) for name, enc in encoders.items()}
    out = []
    for m in files:
        scores = {name: cosine(rec[name], unit(embed_measures(enc, [m]))) for name, enc in encoders.items()}
        out.append(FileMatch(m.label, scores["ge2e"], scores.get("campp")))
    return out


def check_each_file(matches: list[FileMatch], policy: IdentityPolicy) -> None:
    """The recording must be the voice of every sample file, not of their pool: samples of two people (the
    consenting one and a victim) pool to a voice between them that both can match (issue 25)."""
    for match in matches:
        for judge, value, threshold in (
            ("ge2e", match.ge2e, policy.file_ge2e_threshold),
            ("campp", match.campp, policy.file_campp_threshold),
        ):
            if value is not None and value < threshold:
                raise VoxError(
                    "speaker_mismatch",
                    f"{match.file}: the voice in the consent recording is not the voice in this file "
                    f"({judge} similarity {value:.2f}, need {threshold:.2f})",
                    422,
                    file=match.file,
                    measure=f"{judge}_similarity",
                    value=round(value, 4),
                    threshold=threshold,
                )


def same_speaker_threshold(policy: IdentityPolicy, shorter_speech_s: float | None) -> float:
    """The pooled GE2E line for this much speech on the shorter side (None: not known, the full line)."""
    if shorter_speech_s is not None and shorter_speech_s < policy.short_speech_s:
        return min(policy.same_speaker_threshold, policy.short_same_speaker_threshold)
    return policy.same_speaker_threshold


def check_same_speaker(
    similarity: float, policy: IdentityPolicy, shorter_speech_s: float | None = None
) -> None:
    """The pooled check; ``shorter_speech_s``: the speech seconds of the shorter side (recording or
    samples), which sets the line (:func:`same_speaker_threshold`)."""
    threshold = same_speaker_threshold(policy, shorter_speech_s)
    if similarity < threshold:
        raise VoxError(
            "speaker_mismatch",
            "the voice in the consent recording is not the voice in the samples "
            f"(similarity {similarity:.2f}, need {threshold:.2f})",
            422,
            file="recording",
            measure="speaker_similarity",
            value=round(similarity, 4),
            threshold=threshold,
        )
