"""Quality gates for enrollment audio: enough speech, little noise, no clipping, a usable sample rate.

Every file is measured on its own (so a refusal can name the file and the measure), then the samples are
checked together for the total amount of speech. Measures are plain numbers, safe to store and audit.

- speech seconds: Silero VAD segments (what the speaker encoder will actually hear);
- SNR: mean power of the 20 ms frames inside speech against the noise floor, the 10th percentile of all
  frame powers (pauses between words are where the floor shows, even in files with almost no silence);
- clipping: share of samples at or above 0.99 of full scale after decoding to 16 kHz;
- sample rate: the rate the file was recorded at (before our resampling), at least 16 kHz.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from voxvault.engines.base import FloatArray, SpeechSegment, VoiceActivityDetector
from voxvault.errors import VoxError

ANALYSIS_RATE = 16_000
FRAME = 320  # 20 ms at 16 kHz
NOISE_PERCENTILE = 10.0
POWER_FLOOR = 1e-10  # -100 dBFS: digital silence counts as this quiet, not as minus infinity
MAX_SNR_DB = 99.0
CLIP_LEVEL = 0.99


@dataclass(frozen=True)
class QualityPolicy:
    """Thresholds; defaults are what docs/consent.md reports and the tests pin."""

    min_sample_rate: int = 16_000
    min_file_speech_s: float = 1.0  # below this a file is "no speech" (silence, noise, a click)
    min_total_speech_s: float = 10.0  # across all samples
    min_recording_speech_s: float = 3.0  # the consent recording
    min_snr_db: float = 15.0
    max_clipped_fraction: float = 0.01


@dataclass(frozen=True)
class AudioMeasures:
    """What one file is made of, measured once and reused by every later check."""

    label: str  # how refusals name the file: "recording" or "samples[1] (me.wav)"
    audio: FloatArray  # 16 kHz mono
    source_sample_rate: int
    segments: tuple[SpeechSegment, ...]
    speech_s: float
    snr_db: float
    clipped_fraction: float

    @property
    def duration_s(self) -> float:
        return len(self.audio) / ANALYSIS_RATE

    def scores(self) -> dict[str, float | int | str]:
        """Numbers only: this goes into the consent record and the audit trail."""
        return {
            "file": self.label,
            "duration_s": round(self.duration_s, 3),
            "speech_s": round(self.speech_s, 3),
            "snr_db": round(self.snr_db, 2),
            "clipped_fraction": round(self.clipped_fraction, 6),
            "sample_rate": self.source_sample_rate,
        }


def frame_powers(audio: FloatArray) -> FloatArray:
    usable = len(audio) - len(audio) % FRAME
    if usable <= 0:
        return np.zeros(0, dtype=np.float32)
    frames = audio[:usable].reshape(-1, FRAME).astype(np.float64)
    return np.asarray(np.mean(frames * frames, axis=1), dtype=np.float32)


def estimate_snr_db(audio: FloatArray, segments: Sequence[SpeechSegment]) -> float:
    """Speech power over the noise floor, in dB (see the module docstring)."""
    powers = frame_powers(audio)
    if powers.size == 0 or not segments:
        return 0.0
    centres = (np.arange(powers.size) + 0.5) * FRAME / ANALYSIS_RATE
    in_speech = np.zeros(powers.size, dtype=bool)
    for seg in segments:
        in_speech |= (centres >= seg.start) & (centres < seg.end)
    if not in_speech.any():
        return 0.0
    noise = max(float(np.percentile(powers, NOISE_PERCENTILE)), POWER_FLOOR)
    speech = float(np.mean(powers[in_speech]))
    excess = speech - noise
    if excess <= 0:
        return 0.0
    return float(min(MAX_SNR_DB, 10.0 * np.log10(excess / noise)))


def clipped_fraction(audio: FloatArray) -> float:
    if len(audio) == 0:
        return 0.0
    return float(np.count_nonzero(np.abs(audio) >= CLIP_LEVEL)) / len(audio)


def measure(
    label: str, audio: FloatArray, source_sample_rate: int, vad: VoiceActivityDetector
) -> AudioMeasures:
    """Measure one decoded file (mono float32 at 16 kHz)."""
    wav = np.asarray(audio, dtype=np.float32)
    segments = tuple(vad.speech_segments(wav, ANALYSIS_RATE)) if len(wav) else ()
    return AudioMeasures(
        label=label,
        audio=wav,
        source_sample_rate=int(source_sample_rate),
        segments=segments,
        speech_s=float(sum(s.end - s.start for s in segments)),
        snr_db=estimate_snr_db(wav, segments),
        clipped_fraction=clipped_fraction(wav),
    )


def _refuse(
    code: str, m: AudioMeasures, measure_name: str, value: float, threshold: float, text: str
) -> VoxError:
    return VoxError(
        code,
        f"{m.label}: {text}",
        status=422,
        file=m.label,
        measure=measure_name,
        value=round(value, 4),
        threshold=threshold,
    )


def check_file(m: AudioMeasures, policy: QualityPolicy, *, min_speech_s: float | None = None) -> None:
    """Refuse one file that cannot be used, naming the file and the measure that failed."""
    if m.source_sample_rate < policy.min_sample_rate:
        raise _refuse(
            "low_sample_rate",
            m,
            "sample_rate",
            m.source_sample_rate,
            policy.min_sample_rate,
            f"recorded at {m.source_sample_rate} Hz; at least {policy.min_sample_rate} Hz is needed",
        )
    if m.speech_s < policy.min_file_speech_s:
        raise _refuse(
            "no_speech",
            m,
            "speech_s",
            m.speech_s,
            policy.min_file_speech_s,
            f"no speech found ({m.speech_s:.2f} s detected; silence or noise only?)",
        )
    if m.clipped_fraction > policy.max_clipped_fraction:
        raise _refuse(
            "clipping",
            m,
            "clipped_fraction",
            m.clipped_fraction,
            policy.max_clipped_fraction,
            f"{100 * m.clipped_fraction:.2f} % of samples are clipped; record at a lower level",
        )
    if m.snr_db < policy.min_snr_db:
        raise _refuse(
            "low_snr",
            m,
            "snr_db",
            m.snr_db,
            policy.min_snr_db,
            f"too noisy: estimated SNR {m.snr_db:.1f} dB, at least {policy.min_snr_db:g} dB is needed",
        )
    if min_speech_s is not None and m.speech_s < min_speech_s:
        raise _refuse(
            "too_little_speech",
            m,
            "speech_s",
            m.speech_s,
            min_speech_s,
            f"only {m.speech_s:.1f} s of speech; at least {min_speech_s:g} s is needed",
        )


def check_total_speech(samples: Sequence[AudioMeasures], policy: QualityPolicy) -> float:
    """Refuse samples that together hold too little speech; returns the total speech seconds."""
    total = float(sum(m.speech_s for m in samples))
    if total < policy.min_total_speech_s:
        files = ", ".join(f"{m.label}: {m.speech_s:.1f} s" for m in samples)
        raise VoxError(
            "too_little_speech",
            f"the samples hold {total:.1f} s of speech ({files}); at least "
            f"{policy.min_total_speech_s:g} s in total is needed",
            status=422,
            file=", ".join(m.label for m in samples),
            measure="speech_s",
            value=round(total, 3),
            threshold=policy.min_total_speech_s,
        )
    return total
