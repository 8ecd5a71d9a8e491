"""Silero VAD (v5/v6 ONNX) on onnxruntime, without importing the ``silero_vad`` package (it pulls torch).

The model file comes from the installed ``silero-vad`` wheel. The streaming loop mirrors
``silero_vad.utils_vad.OnnxWrapper``: 16 kHz audio in 512-sample windows, each fed with the previous
window's last 64 samples as context plus the recurrent ``state`` (2, 1, 128). The probability-to-segment
logic is ``get_speech_timestamps_from_probs`` with its defaults (no maximum segment length).
"""

from __future__ import annotations

import importlib.util
import logging
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
from numpy.typing import NDArray

from voxvault.engines.base import FloatArray, SpeechSegment, mono_float32
from voxvault.errors import VoxError

log = logging.getLogger(__name__)

SAMPLE_RATE = 16000
WINDOW = 512
CONTEXT = 64
STATE_SHAPE = (2, 1, 128)


def default_model_path() -> Path:
    """``silero_vad/data/silero_vad.onnx`` in the installed package, found without importing it."""
    spec = importlib.util.find_spec("silero_vad")
    if spec is None or not spec.submodule_search_locations:
        raise VoxError("engine_unavailable", "the silero-vad package (VAD model) is not installed", 500)
    path = Path(next(iter(spec.submodule_search_locations))) / "data" / "silero_vad.onnx"
    if not path.is_file():
        raise VoxError("engine_unavailable", f"Silero VAD model missing at {path}", 500)
    return path


class SileroVAD:
    """Speech segments (seconds) of mono float32 audio at any sample rate.

    Thread-safe: the recurrent state lives in each call's local variables and ``InferenceSession.run`` may be
    called concurrently.
    """

    name = "silero"
    sample_rate = SAMPLE_RATE

    def __init__(
        self,
        model_path: str | Path | None = None,
        threshold: float = 0.5,
        min_speech_ms: int = 250,
        min_silence_ms: int = 100,
        speech_pad_ms: int = 30,
    ) -> None:
        t0 = time.perf_counter()
        path = Path(model_path) if model_path is not None else default_model_path()
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        self._session = ort.InferenceSession(
            str(path), sess_options=options, providers=["CPUExecutionProvider"]
        )
        self.threshold = threshold
        self.neg_threshold = max(threshold - 0.15, 0.01)
        self.min_speech_samples = SAMPLE_RATE * min_speech_ms / 1000
        self.min_silence_samples = SAMPLE_RATE * min_silence_ms / 1000
        self.speech_pad_samples = SAMPLE_RATE * speech_pad_ms / 1000
        self.load_seconds = time.perf_counter() - t0
        log.info("silero vad loaded in %.2fs", self.load_seconds)

    def _to_16k(self, audio: FloatArray, sample_rate: int) -> FloatArray:
        return mono_float32(audio, sample_rate, SAMPLE_RATE)

    def speech_probabilities(self, audio: FloatArray, sample_rate: int) -> NDArray[np.float32]:
        """Speech probability of each 32 ms window (512 samples at 16 kHz; the last one zero-padded)."""
        wav = self._to_16k(audio, sample_rate)
        n_windows = -(-len(wav) // WINDOW)
        padded = np.zeros(CONTEXT + n_windows * WINDOW, dtype=np.float32)
        padded[CONTEXT : CONTEXT + len(wav)] = wav
        state = np.zeros(STATE_SHAPE, dtype=np.float32)
        sr = np.array(SAMPLE_RATE, dtype=np.int64)
        probs = np.empty(n_windows, dtype=np.float32)
        for i in range(n_windows):
            # context (previous 64 samples, zeros at the start) followed by the current 512-sample window
            chunk = padded[i * WINDOW : i * WINDOW + CONTEXT + WINDOW][None, :]
            out, state = self._session.run(None, {"input": chunk, "state": state, "sr": sr})
            probs[i] = out[0, 0]
        return probs

    def _segments_from_probs(self, probs: NDArray[np.float32], n_samples: int) -> list[tuple[int, int]]:
        """``get_speech_timestamps_from_probs`` (hysteresis, min speech/silence, padding), in samples."""
        speeches: list[list[int]] = []
        triggered = False
        start = 0
        temp_end = 0
        for i, prob in enumerate(probs):
            cur = WINDOW * i
            if prob >= self.threshold and temp_end:
                temp_end = 0
            if prob >= self.threshold and not triggered:
                triggered = True
                start = cur
                continue
            if prob < self.neg_threshold and triggered:
                if not temp_end:
                    temp_end = cur
                if cur - temp_end < self.min_silence_samples:
                    continue
                if temp_end - start > self.min_speech_samples:
                    speeches.append([start, temp_end])
                temp_end = 0
                triggered = False
        if triggered and n_samples - start > self.min_speech_samples:
            speeches.append([start, n_samples])

        pad = self.speech_pad_samples
        for i, speech in enumerate(speeches):
            if i == 0:
                speech[0] = int(max(0, speech[0] - pad))
            if i != len(speeches) - 1:
                gap = speeches[i + 1][0] - speech[1]
                if gap < 2 * pad:
                    speech[1] += int(gap // 2)
                    speeches[i + 1][0] = int(max(0, speeches[i + 1][0] - gap // 2))
                else:
                    speech[1] = int(min(n_samples, speech[1] + pad))
                    speeches[i + 1][0] = int(max(0, speeches[i + 1][0] - pad))
            else:
                speech[1] = int(min(n_samples, speech[1] + pad))
        return [(s, e) for s, e in speeches]

    def speech_segments(self, audio: FloatArray, sample_rate: int) -> list[SpeechSegment]:
        """Speech regions in seconds on the input's time line, in order and non-overlapping."""
        t0 = time.perf_counter()
        wav = self._to_16k(audio, sample_rate)
        probs = self.speech_probabilities(wav, SAMPLE_RATE)
        segments = [
            SpeechSegment(start=s / SAMPLE_RATE, end=e / SAMPLE_RATE)
            for s, e in self._segments_from_probs(probs, len(wav))
        ]
        log.debug(
            "silero vad: %.2fs audio, %d segments, %.3fs",
            len(wav) / SAMPLE_RATE,
            len(segments),
            time.perf_counter() - t0,
        )
        return segments

    def speech_seconds(self, audio: FloatArray, sample_rate: int) -> float:
        """Total seconds of detected speech."""
        return float(sum(s.end - s.start for s in self.speech_segments(audio, sample_rate)))
