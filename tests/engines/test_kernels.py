"""Fused kernels: the compiled Snake op computes what the five-node chain computes, the graph rewrite finds
the chain only where it is safe, and the engine speaks the same with or without them (and without a
compiler at all)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper
from tests.engines.test_kokoro import MID, SAME_SPEECH_MAX_DB, SHORT, spectral_distance_db

from voxvault.engines import kernels
from voxvault.engines.kokoro import KokoroEngine
from voxvault.engines.onnx_float import SNAKE_DOMAIN, fuse_snakes
from voxvault.errors import VoxError

pytestmark = pytest.mark.skipif(kernels.compiler() is None, reason="no C compiler on this machine")


@pytest.fixture(scope="module")
def library(tmp_path_factory: pytest.TempPathFactory) -> Path:
    built = kernels.snake_library(tmp_path_factory.mktemp("kernels"))
    assert built is not None
    return built


def _session(model: onnx.ModelProto, library: Path | None, threads: int = 2) -> ort.InferenceSession:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    if library is not None:
        opts.register_custom_ops_library(str(library))
    return ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])


def _snake_chain(alpha: np.ndarray, exponent: float = 2.0, sin_is_output: bool = False) -> onnx.ModelProto:
    """The chain as the exported Kokoro graph has it: Mul -> Sin -> Pow -> Mul(1/alpha) -> Add."""
    nodes = [
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
    graph = helper.make_graph(
        nodes,
        "snake",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, alpha.shape[1], None])],
        outputs,
        [
            numpy_helper.from_array(alpha, "alpha"),
            numpy_helper.from_array((1.0 / alpha).astype(np.float32), "inv"),
            numpy_helper.from_array(np.array(exponent, np.float32), "two"),
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
    report = fuse_snakes(model)
    assert report.snake == 1 and [n.op_type for n in model.graph.node] == ["Snake", "Identity"]
    assert any(o.domain == SNAKE_DOMAIN for o in model.opset_import)
    got = _session(model, library).run(None, {"x": x})[0]
    reference = x.astype(np.float64) + np.sin(alpha.astype(np.float64) * x) ** 2 / alpha
    # Within float32 rounding of the exact value, like onnxruntime's own chain.
    scale = np.abs(reference) + 1.0
    assert np.max(np.abs(got - reference) / scale) < 1e-5
    assert np.max(np.abs(expected - reference) / scale) < 1e-5


def test_chain_is_left_alone_where_fusing_would_change_the_graph(library: Path) -> None:
    alpha, _ = _inputs(4, 10)
    cube = _snake_chain(alpha, exponent=3.0)
    assert fuse_snakes(cube).snake == 0
    exposed = _snake_chain(alpha, sin_is_output=True)  # an intermediate that someone reads
    assert fuse_snakes(exposed).snake == 0
    assert "Sin" in [n.op_type for n in exposed.graph.node]


def test_kernel_refuses_a_shape_it_was_not_built_for(library: Path) -> None:
    alpha, x = _inputs(8, 30)
    model = _snake_chain(alpha)
    fuse_snakes(model)
    del model.graph.input[:]
    model.graph.input.append(helper.make_tensor_value_info("x", TensorProto.FLOAT, None))
    session = _session(model, library)
    with pytest.raises(Exception, match="one value per channel"):
        session.run(None, {"x": x[:, :5]})  # 5 channels against 8 alphas


def test_library_is_built_once_and_reused(tmp_path: Path) -> None:
    first = kernels.snake_library(tmp_path)
    assert first is not None and first.is_file()
    stamp = first.stat().st_mtime_ns
    again = kernels.snake_library(tmp_path)
    assert again == first and again.stat().st_mtime_ns == stamp
    assert [p.name for p in tmp_path.iterdir()] == [first.name]  # no temporary files left


def test_no_compiler_means_no_library(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CC", "no-such-compiler-here")
    assert kernels.snake_library(tmp_path) is None
    assert list(tmp_path.iterdir()) == []


def test_a_compiler_that_fails_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CC", "false")
    assert kernels.snake_library(tmp_path) is None
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_engine_with_kernels_sounds_like_the_plain_graph(model_cache: Path) -> None:
    fused = KokoroEngine(model_cache, precision="int8", threads=2)
    plain = KokoroEngine(model_cache, precision="int8", threads=2, kernels="off")
    assert fused.fused_kernels and fused.model_path.name.endswith(".snake.onnx")
    assert not plain.fused_kernels and plain.model_path == plain.joined_model_path
    graph = onnx.load(str(fused.model_path), load_external_data=False)
    assert sum(n.op_type == "Snake" for n in graph.graph.node) == 48  # every resblock activation
    style = fused.preset_styles()["jm_kumo"]
    for phonemes in (MID, SHORT):
        a, b = plain.synthesize(phonemes, style), fused.synthesize(phonemes, style)
        assert 0.98 < b.size / a.size < 1.02
        # Measured 0.2-0.35 dB (the int8 and int8-vnni graphs differ by 0.4-0.65 dB).
        assert spectral_distance_db(a, b) < SAME_SPEECH_MAX_DB / 2


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
