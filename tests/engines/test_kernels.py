"""Fused kernels: the compiled Snake and AdaInSnake ops compute what the exported chains compute, the graph
rewrite finds the chains only where it is safe, and the engine speaks the same with or without them (and
without a compiler at all). The fused graph also takes a voice's adapted style biases per call."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper
from tests.engines.test_kokoro import MID, SAME_SPEECH_MAX_DB, SHORT, spectral_distance_db

from voxvault.cloning.instant import f0_track
from voxvault.engines import kernels
from voxvault.engines.base import AdaptedWeights
from voxvault.engines.kokoro import KokoroEngine, word_spans
from voxvault.engines.onnx_float import PITCH_SCALE, SNAKE_DOMAIN, fuse_vocoder, is_style_bias
from voxvault.errors import VoxError
from voxvault.synthesis.pipeline import SpeechPipeline, VoiceStyle
from voxvault.text import TextFrontend

pytestmark = pytest.mark.skipif(kernels.compiler() is None, reason="no C compiler on this machine")


@pytest.fixture(scope="module")
def library(tmp_path_factory: pytest.TempPathFactory) -> Path:
    built = kernels.kernel_library(tmp_path_factory.mktemp("kernels"))
    assert built is not None
    return built


def _session(model: onnx.ModelProto, library: Path | None, threads: int = 2) -> ort.InferenceSession:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    if library is not None:
        opts.register_custom_ops_library(str(library))
    return ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])


def _adain_nodes() -> list[onnx.NodeProto]:
    """AdaIN as exported: (x - mean) / sqrt(var + eps) * gain + shift, statistics over the last axis."""
    return [
        helper.make_node("ReduceMean", ["raw", "axes"], ["mean"], keepdims=1),
        helper.make_node("Sub", ["raw", "mean"], ["centred"]),
        helper.make_node("Mul", ["centred", "centred"], ["squared"]),
        helper.make_node("ReduceMean", ["squared", "axes"], ["var"], keepdims=1),
        helper.make_node("Add", ["var", "eps"], ["padded"]),
        helper.make_node("Sqrt", ["padded"], ["std"]),
        helper.make_node("Div", ["centred", "std"], ["normed"]),
        helper.make_node("Mul", ["gain", "normed"], ["scaled"]),
        helper.make_node("Add", ["scaled", "shift"], ["x"]),
    ]


def _snake_chain(
    alpha: np.ndarray, exponent: float = 2.0, sin_is_output: bool = False, adain: bool = False
) -> onnx.ModelProto:
    """The chain as the exported Kokoro graph has it: Mul -> Sin -> Pow -> Mul(1/alpha) -> Add, optionally
    behind an adaptive instance norm whose gain and shift are graph inputs (they come from the style)."""
    nodes = (_adain_nodes() if adain else []) + [
        helper.make_node("Mul", ["alpha", "x"], ["ax"]),
        helper.make_node("Sin", ["ax"], ["s"]),
        helper.make_node("Pow", ["s", "two"], ["s2"]),
        helper.make_node("Mul", ["inv", "s2"], ["m"]),
        helper.make_node("Add", ["x", "m"], ["y"]),
        helper.make_node("Identity", ["y"], ["out"]),
    ]
    outputs = [helper.make_tensor_value_info("out", TensorProto.FLOAT, None)]
    if sin_is_output:
        outputs.append(helper.make_tensor_value_info("s", TensorProto.FLOAT, None))
    channels = alpha.shape[1]
    inputs = [
        helper.make_tensor_value_info("raw" if adain else "x", TensorProto.FLOAT, [None, channels, None])
    ]
    if adain:
        inputs += [
            helper.make_tensor_value_info(n, TensorProto.FLOAT, [None, channels, 1])
            for n in ("gain", "shift")
        ]
    graph = helper.make_graph(
        nodes,
        "snake",
        inputs,
        outputs,
        [
            numpy_helper.from_array(alpha, "alpha"),
            numpy_helper.from_array((1.0 / alpha).astype(np.float32), "inv"),
            numpy_helper.from_array(np.array(exponent, np.float32), "two"),
            numpy_helper.from_array(np.array([2], np.int64), "axes"),
            numpy_helper.from_array(np.array(1e-5, np.float32), "eps"),
        ],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _inputs(channels: int, length: int, batch: int = 1) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(7)
    alpha = (rng.random((1, channels, 1)) * 5 + 0.05).astype(np.float32)
    # Activations of every size the vocoder produces, plus exact zeros and large arguments.
    x = rng.standard_normal((batch, channels, length)) * rng.choice([0.01, 1, 30, 1000], (batch, channels, 1))
    x[..., :7] = 0.0
    return alpha, x.astype(np.float32)


@pytest.mark.parametrize(("batch", "length"), [(1, 50), (2, 40_000)])  # one thread / ORT's thread pool
def test_fused_snake_matches_the_five_node_chain(library: Path, batch: int, length: int) -> None:
    alpha, x = _inputs(24, length, batch)
    model = _snake_chain(alpha)
    expected = _session(model, None).run(None, {"x": x})[0]
    report = fuse_vocoder(model)
    assert report.snake == 1 and [n.op_type for n in model.graph.node] == ["Snake", "Identity"]
    assert any(o.domain == SNAKE_DOMAIN for o in model.opset_import)
    got = _session(model, library).run(None, {"x": x})[0]
    reference = x.astype(np.float64) + np.sin(alpha.astype(np.float64) * x) ** 2 / alpha
    # Within float32 rounding of the exact value, like onnxruntime's own chain.
    scale = np.abs(reference) + 1.0
    assert np.max(np.abs(got - reference) / scale) < 1e-5
    assert np.max(np.abs(expected - reference) / scale) < 1e-5


@pytest.mark.parametrize(("batch", "length"), [(1, 50), (2, 40_000)])
def test_fused_instance_norm_and_snake_match_the_exported_chain(
    library: Path, batch: int, length: int
) -> None:
    alpha, raw = _inputs(24, length, batch)
    raw[:, ::5] += 500.0  # channels whose mean dwarfs their spread: centring must come first
    raw[:, 3] = 2.0  # a constant channel: variance 0, only epsilon keeps it finite
    rng = np.random.default_rng(3)
    feeds = {
        "raw": raw,
        "gain": (1 + rng.standard_normal((batch, 24, 1))).astype(np.float32),
        "shift": rng.standard_normal((batch, 24, 1)).astype(np.float32),
    }
    model = _snake_chain(alpha, adain=True)
    report = fuse_vocoder(model)
    assert (report.snake, report.adain) == (1, 1)
    assert [n.op_type for n in model.graph.node] == ["AdaInSnake", "Identity"]
    got = _session(model, library).run(None, feeds)[0]
    r = raw.astype(np.float64)
    mean = r.mean(axis=2, keepdims=True)
    normed = (r - mean) / np.sqrt(((r - mean) ** 2).mean(axis=2, keepdims=True) + 1e-5)
    x = normed * feeds["gain"] + feeds["shift"]
    reference = x + np.sin(alpha * x) ** 2 / alpha
    assert np.max(np.abs(got - reference) / (np.abs(reference) + 1.0)) < 1e-4


def test_chain_is_left_alone_where_fusing_would_change_the_graph(library: Path) -> None:
    alpha, _ = _inputs(4, 10)
    cube = _snake_chain(alpha, exponent=3.0)
    assert fuse_vocoder(cube).snake == 0
    exposed = _snake_chain(alpha, sin_is_output=True)  # an intermediate that someone reads
    assert fuse_vocoder(exposed).snake == 0
    assert "Sin" in [n.op_type for n in exposed.graph.node]


def test_kernel_refuses_a_shape_it_was_not_built_for(library: Path) -> None:
    alpha, x = _inputs(8, 30)
    model = _snake_chain(alpha)
    fuse_vocoder(model)
    del model.graph.input[:]
    model.graph.input.append(helper.make_tensor_value_info("x", TensorProto.FLOAT, None))
    session = _session(model, library)
    with pytest.raises(Exception, match="one value per channel"):
        session.run(None, {"x": x[:, :5]})  # 5 channels against 8 alphas


def test_library_is_built_once_and_reused(tmp_path: Path) -> None:
    first = kernels.kernel_library(tmp_path)
    assert first is not None and first.is_file()
    stamp = first.stat().st_mtime_ns
    again = kernels.kernel_library(tmp_path)
    assert again == first and again.stat().st_mtime_ns == stamp
    assert [p.name for p in tmp_path.iterdir()] == [first.name]  # no temporary files left


def test_no_compiler_means_no_library(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CC", "no-such-compiler-here")
    assert kernels.kernel_library(tmp_path) is None
    assert list(tmp_path.iterdir()) == []


def test_a_compiler_that_fails_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CC", "false")
    assert kernels.kernel_library(tmp_path) is None
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_engine_with_kernels_sounds_like_the_plain_graph(
    int8_engine: KokoroEngine, int8_plain: KokoroEngine
) -> None:
    fused, plain = int8_engine, int8_plain
    assert fused.fused_kernels and fused.model_path.name.endswith(".fused.onnx")
    assert not plain.fused_kernels and plain.model_path == plain.joined_model_path
    graph = onnx.load(str(fused.model_path), load_external_data=False)
    ops = [n.op_type for n in graph.graph.node]
    # Every Snake of the vocoder's resblocks; 42 of them behind an instance norm (the other six follow a
    # residual sum).
    assert (ops.count("Snake"), ops.count("AdaInSnake")) == (6, 42)
    style = fused.preset_styles()["jm_kumo"]
    for phonemes in (MID, SHORT):
        a, b = plain.synthesize(phonemes, style), fused.synthesize(phonemes, style)
        assert 0.98 < b.size / a.size < 1.02
        # Measured 0.5-0.9 dB: the int8 graph quantises each activation again at run time, which turns the
        # last bits of a float difference into whole quantisation steps (int8 vs int8-vnni: 0.4-0.65 dB).
        assert spectral_distance_db(a, b) < SAME_SPEECH_MAX_DB


@pytest.mark.slow
def test_kernels_compute_the_float_graph_exactly(model_cache: Path) -> None:
    # Without run-time quantisation, what the fused ops change is float rounding only.
    fused = KokoroEngine(model_cache, precision="float", threads=2)
    plain = KokoroEngine(model_cache, precision="float", threads=2, kernels="off")
    assert fused.fused_kernels and not plain.fused_kernels
    style = fused.preset_styles()["jf_alpha"]
    a, b = plain.synthesize(MID, style), fused.synthesize(MID, style)
    assert a.size == b.size
    assert spectral_distance_db(a, b) < 0.05  # measured 0.00


@pytest.mark.slow
def test_engine_without_a_compiler_speaks_the_plain_graph(
    tmp_path: Path, model_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CC", "no-such-compiler-here")
    engine = KokoroEngine(model_cache, precision="int8", threads=1)
    assert not engine.fused_kernels and engine.model_path == engine.joined_model_path
    assert engine.synthesize(SHORT, engine.preset_styles()["jf_alpha"]).size > 0


def test_unknown_kernel_choice_is_refused(tmp_path: Path) -> None:
    with pytest.raises(VoxError) as err:
        KokoroEngine(tmp_path, kernels="fast")
    assert err.value.code == "unknown_kernels"


# --- adapted voices through onnxruntime -------------------------------------------------------------------
def _style_biases(engine: KokoroEngine) -> dict[str, tuple[int, ...]]:
    graph = onnx.load(str(engine.model_path)).graph
    return {t.name: tuple(t.dims) for t in graph.initializer if is_style_bias(t.name)}


@pytest.mark.slow
def test_fused_graph_speaks_adapted_style_biases_per_call(
    int8_engine: KokoroEngine, int8_plain: KokoroEngine
) -> None:
    engine = int8_engine
    shapes = _style_biases(engine)
    assert len(shapes) == 58  # the decoder's AdaIN projections, as decoder adaptation's default scope
    style = engine.preset_styles()["jf_alpha"]
    plain = engine.synthesize(SHORT, style)

    zero = AdaptedWeights("zero", {n: np.zeros(s, np.float32) for n, s in shapes.items()})
    assert engine.speaks(zero)
    np.testing.assert_array_equal(engine.synthesize_adapted(SHORT, style, 1.0, zero), plain)

    rng = np.random.default_rng(5)
    noise = {n: rng.normal(0, 0.3, s).astype(np.float32) for n, s in shapes.items()}
    changed = engine.synthesize_adapted(SHORT, style, 1.0, AdaptedWeights("bumped", noise))
    n = min(len(changed), len(plain))
    assert spectral_distance_db(changed[:n], plain[:n]) > 1.0
    np.testing.assert_array_equal(engine.synthesize(SHORT, style), plain)  # the next call is unaffected

    name = next(iter(shapes))
    for misfit in (
        AdaptedWeights("shape", {name: np.zeros((3,), np.float32)}),
        AdaptedWeights("weight", {name.replace(".bias", ".weight"): np.zeros((3,), np.float32)}),
    ):
        assert not engine.speaks(misfit)
        with pytest.raises(VoxError) as err:
            engine.synthesize_adapted(SHORT, style, 1.0, misfit)
        assert err.value.code == "adapted_weights_mismatch" and err.value.status == 409

    # Without the kernels the graph is as shipped: nothing to override, such voices go to PyTorch.
    assert not int8_plain.speaks(zero)


def semitones_between(a: np.ndarray, b: np.ndarray, rate: int) -> float:
    """Median F0 of ``a`` over ``b``'s, in semitones."""
    return float(12 * np.log2(np.median(f0_track(a, rate)) / np.median(f0_track(b, rate))))


@pytest.mark.slow
def test_fused_graph_speaks_a_voice_pitch_per_call(int8_engine: KokoroEngine) -> None:
    engine = int8_engine
    assert set(engine.shipped_inputs()) == {*_style_biases(engine), PITCH_SCALE}
    assert PITCH_SCALE not in engine.shipped_biases()  # what decoder adaptation tunes
    style = engine.preset_styles()["jf_alpha"]
    plain = engine.synthesize(MID, style)
    zero = AdaptedWeights("zero", {PITCH_SCALE: np.zeros(1, np.float32)})
    assert engine.speaks(zero)
    np.testing.assert_array_equal(engine.synthesize_adapted(MID, style, 1.0, zero), plain)

    down = np.array([2 ** (-4 / 12) - 1], np.float32)  # four semitones lower
    lower = engine.synthesize_adapted(MID, style, 1.0, AdaptedWeights("low", {PITCH_SCALE: down}))
    assert semitones_between(lower, plain, engine.sample_rate) == pytest.approx(-4.0, abs=1.0)
    assert abs(len(lower) - len(plain)) < 0.03 * len(plain)  # same words, same timing
    np.testing.assert_array_equal(engine.synthesize(MID, style), plain)  # the next call is unaffected


@pytest.mark.slow
def test_pipeline_speaks_a_bias_adapted_voice_on_its_own_engine_unless_told_not_to(
    int8_engine: KokoroEngine,
) -> None:
    engine = int8_engine
    shapes = _style_biases(engine)
    adapted = AdaptedWeights("v1", {n: np.full(s, 0.1, np.float32) for n, s in shapes.items()})
    style = engine.preset_styles()["jm_kumo"]
    voice, preset = VoiceStyle("v", style, adapted), VoiceStyle("v", style)
    pipeline = SpeechPipeline(engine, TextFrontend(), adaptable_tts=None)  # no PyTorch engine at all
    spoken = pipeline.render(pipeline.prepare("Thanks, see you.", voice, fmt="wav"))
    plain = pipeline.render(pipeline.prepare("Thanks, see you.", preset, fmt="wav"))
    assert spoken.duration > 0.5 and spoken.output_sha256 != plain.output_sha256

    # VOXVAULT_ADAPTED_VOICE_ENGINE=pytorch: the same voice goes to the PyTorch engine (absent here).
    strict = SpeechPipeline(engine, TextFrontend(), adaptable_tts=None, adapted_on_tts=False)
    with pytest.raises(VoxError) as err:
        strict.render(strict.prepare("Thanks, see you.", voice, fmt="wav"))
    assert err.value.code == "adapted_voice_unavailable"

    # auto: weights the adaptation job measured closer through PyTorch go there; the others stay here.
    auto = SpeechPipeline(engine, TextFrontend(), adaptable_tts=None, follow_as_trained=True)
    again = auto.render(auto.prepare("Thanks, see you.", voice, fmt="wav"))
    assert again.output_sha256 == spoken.output_sha256
    closer_as_trained = VoiceStyle("v", style, replace(adapted, as_trained=True))
    with pytest.raises(VoxError) as err:
        auto.render(auto.prepare("Thanks, see you.", closer_as_trained, fmt="wav"))
    assert err.value.code == "adapted_voice_unavailable"
    # VOXVAULT_ADAPTED_VOICE_ENGINE=onnxruntime: every voice it can take stays here, as trained or not
    forced = pipeline.render(pipeline.prepare("Thanks, see you.", closer_as_trained, fmt="wav"))
    assert forced.output_sha256 == spoken.output_sha256


# --- word timings from the model's durations --------------------------------------------------------------
def test_word_spans_follow_the_token_durations() -> None:
    vocab = {c: i for i, c in enumerate("abc .,")}
    # Frames of 600 samples per token: pad, a, b, " ", c, ",", " ", (☃ is unknown: no token) " ", a, ".", pad
    frames = np.array([2, 1, 1, 1, 3, 2, 1, 1, 4, 5, 1], np.float32)
    spans = word_spans("ab c, ☃ a.", vocab, frames, offset=600, length=10_000, sample_rate=24_000)
    at = [round(x * 24_000 / 600) for span in spans for x in span]  # in frames, after the 1-frame offset
    assert at == [1, 3, 4, 7, 10, 10, 11, 15]  # "c" ends before its comma, "a" before its "."; "☃" takes none
    cut = word_spans("ab c, ☃ a.", vocab, frames, offset=600, length=12 * 600, sample_rate=24_000)
    assert cut[-1] == (11 * 600 / 24_000, 12 * 600 / 24_000)  # clipped to the audio kept


@pytest.mark.slow
def test_fused_engine_times_words_as_an_aligner_hears_them(int8_engine: KokoroEngine) -> None:
    from voxvault.engines.asr import PocketSphinxASR
    from voxvault.synthesis.streaming import estimate_word_timings

    engine = int8_engine
    assert engine.timed
    asr = PocketSphinxASR()
    style = engine.preset_styles()["jm_kumo"]
    exact_err, estimate_err = [], []
    for text in ("Please call me back when you get this message.", "I would like to book a table for two."):
        piece = TextFrontend().plan(text, first_piece_max_phonemes=None)[0]
        spoken = engine.synthesize_timed(piece.phonemes, style)
        assert spoken.word_spans is not None and len(spoken.word_spans) == len(piece.text.split())
        starts = [a for a, _ in spoken.word_spans]
        assert starts == sorted(starts) and all(
            a < b <= len(spoken.audio) / 24_000 for a, b in spoken.word_spans
        )
        heard = asr.align(spoken.audio, 24_000, piece.text)
        assert [w.word for w in heard] == [w.strip(".").lower() for w in piece.text.split()]
        exact = estimate_word_timings(piece, spoken.audio, 24_000, spoken.word_spans)
        estimate = estimate_word_timings(piece, spoken.audio, 24_000)
        # Word ends (the aligner gives the pause before a word to that word, so its starts are early).
        exact_err += [abs(e - w.end) for (_, _, e), w in zip(exact, heard, strict=True)]
        estimate_err += [abs(e - w.end) for (_, _, e), w in zip(estimate, heard, strict=True)]
    # Measured: 38-39 ms from the aligner against 97-100 ms for the phoneme-count estimate.
    assert np.mean(exact_err) < 0.07 and np.mean(exact_err) < 0.7 * np.mean(estimate_err)


@pytest.mark.slow
def test_damaged_fused_graph_is_rebuilt(tmp_path: Path, model_cache: Path) -> None:
    import shutil

    for name in ("kokoro-v1.0.int8.onnx", "kokoro-v1.0.int8.onnx.json"):  # a private cache, same model
        shutil.copy(model_cache / name, tmp_path / name)
    first = KokoroEngine(tmp_path, precision="int8", threads=1)
    style = first.preset_styles()["jf_alpha"]
    expected = first.synthesize(SHORT, style)
    assert first.fused_kernels
    with first.model_path.open("r+b") as f:  # same size: only the failed load reveals it
        f.seek(1000)
        f.write(b"\xff" * 4096)
    again = KokoroEngine(tmp_path, precision="int8", threads=1)
    assert again.fused_kernels and again.model_path == first.model_path
    np.testing.assert_array_equal(again.synthesize(SHORT, style), expected)
