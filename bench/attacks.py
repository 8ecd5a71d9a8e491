"""Attacks a watermark must survive: real codecs (PyAV), resampling (soxr), noise, edits, acoustics.

Every attack takes mono float32 audio in [-1, 1] at ``sr`` and a seeded ``numpy.random.Generator`` and
returns ``(audio, sample_rate)``; the rate may change (telephone, 16 kHz), as it would for a real copy.
Parameters are fixed here so the benchmark table means the same thing on every run.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import cast

import av
import numpy as np
import soxr
from av.audio.stream import AudioStream
from numpy.typing import NDArray
from scipy import signal

Audio = NDArray[np.float32]
AttackFn = Callable[[Audio, int, np.random.Generator], tuple[Audio, int]]


# -- codecs ------------------------------------------------------------------------------------------------
def codec_roundtrip(audio: Audio, sr: int, codec: str, container: str, bitrate: int, codec_sr: int) -> Audio:
    """Encode with a real encoder into a real container in memory, decode back to float mono at codec_sr."""
    x = audio if sr == codec_sr else soxr.resample(audio, sr, codec_sr).astype(np.float32)
    buf = io.BytesIO()
    with av.open(buf, "w", format=container) as out:
        stream = cast(AudioStream, out.add_stream(codec, rate=codec_sr))
        stream.layout = "mono"
        if bitrate:
            stream.bit_rate = bitrate
        frame_size = stream.codec_context.frame_size or 1024
        fmt = stream.codec_context.format.name if stream.codec_context.format else "s16"
        pcm = np.clip(x, -1.0, 1.0)
        for start in range(0, len(pcm), frame_size):
            block = pcm[start : start + frame_size]
            if fmt.startswith("s16"):
                data = (block * 32767.0).astype(np.int16)[None, :]
                frame = av.AudioFrame.from_ndarray(data, format="s16", layout="mono")
            else:
                frame = av.AudioFrame.from_ndarray(
                    block.astype(np.float32)[None, :], format="flt", layout="mono"
                )
            frame.sample_rate = codec_sr
            frame.pts = start
            frame.time_base = Fraction(1, codec_sr)
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    buf.seek(0)
    pieces = []
    with av.open(buf, "r") as inp:
        resampler = av.AudioResampler(format="flt", layout="mono", rate=codec_sr)
        for frame in inp.decode(audio=0):
            for f in resampler.resample(frame):
                pieces.append(f.to_ndarray().reshape(-1))
        for f in resampler.resample(None):
            pieces.append(f.to_ndarray().reshape(-1))
    return np.concatenate(pieces).astype(np.float32) if pieces else np.zeros(0, np.float32)


def mp3(bitrate: int) -> AttackFn:
    def run(audio: Audio, sr: int, rng: np.random.Generator) -> tuple[Audio, int]:
        return codec_roundtrip(audio, sr, "libmp3lame", "mp3", bitrate, sr), sr

    return run


def opus(bitrate: int) -> AttackFn:
    def run(audio: Audio, sr: int, rng: np.random.Generator) -> tuple[Audio, int]:
        return codec_roundtrip(audio, sr, "libopus", "ogg", bitrate, 48000), 48000

    return run


def aac(bitrate: int) -> AttackFn:
    def run(audio: Audio, sr: int, rng: np.random.Generator) -> tuple[Audio, int]:
        return codec_roundtrip(audio, sr, "aac", "adts", bitrate, sr), sr

    return run


def resample_to(rate: int) -> AttackFn:
    def run(audio: Audio, sr: int, rng: np.random.Generator) -> tuple[Audio, int]:
        return soxr.resample(audio, sr, rate).astype(np.float32), rate

    return run


def telephone(audio: Audio, sr: int, rng: np.random.Generator) -> tuple[Audio, int]:
    """8 kHz G.711 mu-law through the real pcm_mulaw codec, with the telephone band-pass in front."""
    x = soxr.resample(audio, sr, 8000).astype(np.float32)
    sos = signal.butter(4, [300, 3400], btype="bandpass", fs=8000, output="sos")
    x = signal.sosfilt(sos, x).astype(np.float32)
    return codec_roundtrip(x, 8000, "pcm_mulaw", "wav", 0, 8000), 8000


# -- level, noise ------------------------------------------------------------------------------------------
def gain(db: float) -> AttackFn:
    def run(audio: Audio, sr: int, rng: np.random.Generator) -> tuple[Audio, int]:
        return np.clip(audio * 10 ** (db / 20), -1.0, 1.0).astype(np.float32), sr

    return run


def _mix_at_snr(audio: Audio, noise: Audio, snr_db: float) -> Audio:
    p_sig = float(np.mean(audio.astype(np.float64) ** 2)) + 1e-12
    p_noise = float(np.mean(noise.astype(np.float64) ** 2)) + 1e-12
    scaled = noise * np.sqrt(p_sig / (p_noise * 10 ** (snr_db / 10)))
    return np.clip(audio + scaled, -1.0, 1.0).astype(np.float32)


def white_noise(snr_db: float) -> AttackFn:
    def run(audio: Audio, sr: int, rng: np.random.Generator) -> tuple[Audio, int]:
        return _mix_at_snr(audio, rng.standard_normal(len(audio)).astype(np.float32), snr_db), sr

    return run


def babble_noise(snr_db: float, talkers: Sequence[Audio], n_talkers: int = 4) -> AttackFn:
    """Several other voices summed (random segments, looped) under the signal at the given SNR."""

    def run(audio: Audio, sr: int, rng: np.random.Generator) -> tuple[Audio, int]:
        babble = np.zeros(len(audio), np.float32)
        picks = rng.choice(len(talkers), size=min(n_talkers, len(talkers)), replace=False)
        for i in picks:
            t = talkers[int(i)]
            reps = int(np.ceil((len(audio) + len(t)) / len(t))) + 1
            looped = np.tile(t, reps)
            start = int(rng.integers(0, len(t)))
            seg = looped[start : start + len(audio)]
            babble += seg / (np.sqrt(np.mean(seg**2)) + 1e-9)
        return _mix_at_snr(audio, babble, snr_db), sr

    return run


# -- edits -------------------------------------------------------------------------------------------------
def cut_start(seconds: float) -> AttackFn:
    def run(audio: Audio, sr: int, rng: np.random.Generator) -> tuple[Audio, int]:
        return audio[int(seconds * sr) :].copy(), sr

    return run


def mix_into(recordings: Sequence[Audio], level_db: float = -3.0) -> AttackFn:
    """Drop the clip at a random place inside a longer unmarked recording (3x its length, others' speech)."""

    def run(audio: Audio, sr: int, rng: np.random.Generator) -> tuple[Audio, int]:
        host_len = 3 * len(audio)
        host = np.concatenate([recordings[int(i)] for i in rng.integers(0, len(recordings), size=64)])
        start = int(rng.integers(0, max(1, len(host) - host_len)))
        host = host[start : start + host_len].astype(np.float32)
        host = host * (
            10 ** (level_db / 20) * np.sqrt(np.mean(audio**2)) / (np.sqrt(np.mean(host**2)) + 1e-9)
        )
        at = int(rng.integers(len(audio) // 2, host_len - len(audio) - len(audio) // 2))
        fade = min(int(0.05 * sr), len(audio) // 4)
        ramp = np.ones(len(audio), np.float32)
        ramp[:fade] = np.linspace(0, 1, fade)
        ramp[-fade:] = np.linspace(1, 0, fade)
        out = host.copy()
        out[at : at + len(audio)] = host[at : at + len(audio)] * (1 - ramp) + audio * ramp
        return np.clip(out, -1.0, 1.0).astype(np.float32), sr

    return run


def speed(factor: float) -> AttackFn:
    """Play ``factor`` times faster by resampling (tempo and pitch both change, like a tape/varispeed)."""

    def run(audio: Audio, sr: int, rng: np.random.Generator) -> tuple[Audio, int]:
        return soxr.resample(audio, sr * factor, sr).astype(np.float32), sr

    return run


# -- acoustics ---------------------------------------------------------------------------------------------
def room_impulse(sr: int, rt60: float, drr_db: float, rng: np.random.Generator) -> Audio:
    """Direct path + exponentially decaying diffuse tail (Polack's model), early reflections included."""
    n = int(rt60 * 1.2 * sr)
    t = np.arange(n) / sr
    tail = rng.standard_normal(n) * np.exp(-6.9078 * t / rt60)
    onset = int(0.003 * sr)  # diffuse part starts a few ms after the direct sound
    tail[:onset] = 0.0
    for _ in range(6):  # a few discrete early reflections 3-30 ms after the direct path
        k = int(rng.uniform(0.003, 0.03) * sr)
        tail[k] += rng.uniform(0.2, 0.6) * rng.choice([-1.0, 1.0]) * np.sqrt(np.sum(tail**2) / 50 + 1e-12)
    tail *= np.sqrt(10 ** (-drr_db / 10) / (np.sum(tail**2) + 1e-12))
    rir = tail
    rir[0] = 1.0
    return rir.astype(np.float32)


def loudspeaker_to_microphone(audio: Audio, sr: int, rng: np.random.Generator) -> tuple[Audio, int]:
    """Small loudspeaker (band-pass 200-7000 Hz, mild saturation) in a room, picked up by a microphone.

    Room: RT60 uniform in 0.25-0.6 s, direct-to-reverberant ratio uniform in 0-8 dB; then pink-ish room
    noise at 25 dB SNR and the mic's own high-pass. Recorded at 16 kHz.
    """
    sos = signal.butter(3, [200, 7000], btype="bandpass", fs=sr, output="sos")
    x = signal.sosfilt(sos, audio)
    x = np.tanh(2.0 * x) / 2.0  # a small driver compresses its peaks a little
    rir = room_impulse(sr, float(rng.uniform(0.25, 0.6)), float(rng.uniform(0.0, 8.0)), rng)
    x = signal.fftconvolve(x, rir)[: len(audio)]
    noise = rng.standard_normal(len(x))
    noise = signal.lfilter([1.0], [1.0, -0.9], noise)  # pink-ish (low-frequency heavy) room noise
    x = _mix_at_snr(x.astype(np.float32), noise.astype(np.float32), 25.0)
    mic = signal.butter(2, 80, btype="highpass", fs=sr, output="sos")
    x = signal.sosfilt(mic, x)
    x = x / (np.max(np.abs(x)) + 1e-9) * 0.5
    return soxr.resample(x.astype(np.float32), sr, 16000).astype(np.float32), 16000


@dataclass(frozen=True)
class Attack:
    name: str
    run: AttackFn
    target: float  # the fraction of clips whose payload must come back exact


def standard_attacks(talkers: Sequence[Audio]) -> list[Attack]:
    """The attack list of issue 4, in table order."""
    return [
        Attack("none", lambda a, sr, rng: (a, sr), 0.99),
        Attack("mp3_64k", mp3(64000), 0.99),
        Attack("mp3_32k", mp3(32000), 0.99),
        Attack("opus_24k", opus(24000), 0.99),
        Attack("aac_64k", aac(64000), 0.99),
        Attack("resample_16k", resample_to(16000), 0.99),
        Attack("telephone_8k_mulaw", telephone, 0.99),
        Attack("gain_+10dB", gain(10.0), 0.99),
        Attack("gain_-10dB", gain(-10.0), 0.99),
        Attack("white_noise_20dB", white_noise(20.0), 0.99),
        Attack("babble_noise_20dB", babble_noise(20.0, talkers), 0.99),
        Attack("cut_first_1s", cut_start(1.0), 0.99),
        Attack("mixed_into_longer", mix_into(talkers), 0.99),
        Attack("speed_+5%", speed(1.05), 0.95),
        Attack("speed_-5%", speed(0.95), 0.95),
        Attack("loudspeaker_to_mic", loudspeaker_to_microphone, 0.95),
    ]
