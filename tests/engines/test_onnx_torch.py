"""The ONNX graph executed with PyTorch: operators against onnxruntime, and Kokoro on PyTorch.

Small hand-built graphs pin the operators whose ONNX and torch conventions differ (LSTM gate order,
Slice with negative steps, Resize coordinates, reflect padding, STFT layout, the exported atan2); the real
model is checked by ear's proxy (aligned band energies) against onnxruntime on the same float graph, and
for gradients reaching the style.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import helper, numpy_helper
from test_kokoro import MID, SAME_SPEECH_MAX_DB, SHORT, spectral_distance_db

from voxvault.engines.base import TTSEngine
from voxvault.engines.kokoro import KokoroEngine
from voxvault.engines.kokoro_torch import KokoroTorchEngine
from voxvault.engines.onnx_torch import TorchGraph, UnsupportedOperator
from voxvault.errors import VoxError

RNG = np.random.default_rng(7)


def _model(nodes: list[onnx.NodeProto], inputs: dict[str, np.ndarray], inits: dict[str, np.ndarray],
           outputs: list[str]) -> onnx.ModelProto:  # fmt: skip
    graph = helper.make_graph(
        nodes,
        "t",
        [
            helper.make_tensor_value_info(k, helper.np_dtype_to_tensor_dtype(v.dtype), v.shape)
            for k, v in inputs.items()
        ],
        [helper.make_empty_tensor_value_info(o) for o in outputs],
        [numpy_helper.from_array(v, k) for k, v in inits.items()],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)], ir_version=9)


def _both(model: onnx.ModelProto, feeds: dict[str, np.ndarray]) -> tuple[list[np.ndarray], list[np.ndarray]]:
    ref = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, feeds)
    with torch.inference_mode():
        got = [t.numpy() for t in TorchGraph(model)(feeds)]
    return ref, got


def test_bidirectional_lstm_matches_onnxruntime() -> None:
    hidden, inp = 5, 3
    x = RNG.standard_normal((7, 1, inp)).astype(np.float32)
    inits = {
        "W": RNG.standard_normal((2, 4 * hidden, inp)).astype(np.float32),
        "R": RNG.standard_normal((2, 4 * hidden, hidden)).astype(np.float32),
        "B": RNG.standard_normal((2, 8 * hidden)).astype(np.float32),
    }
    node = helper.make_node("LSTM", ["x", "W", "R", "B"], ["y", "h", "c"], hidden_size=hidden,
                            direction="bidirectional")  # fmt: skip
    ref, got = _both(_model([node], {"x": x}, inits, ["y", "h", "c"]), {"x": x})
    for r, g in zip(ref, got, strict=True):
        assert r.shape == g.shape
        np.testing.assert_allclose(g, r, atol=1e-5)


def test_shape_ops_match_onnxruntime() -> None:
    """Slice (negative step, clamped ends), Resize (linear half-pixel, nearest asymmetric), reflect Pad."""
    x = RNG.standard_normal((1, 3, 10)).astype(np.float32)
    i64 = np.int64
    inits = {
        "st": np.array([-1], i64), "en": np.array([-(2**63)], i64), "ax": np.array([2], i64),
        "sp": np.array([-2], i64), "sc": np.array([1, 1, 2.5], np.float32),
        "pd": np.array([0, 0, 3, 0, 0, 2], i64),
    }  # fmt: skip
    nodes = [
        helper.make_node("Slice", ["x", "st", "en", "ax", "sp"], ["s"]),
        helper.make_node("Resize", ["x", "", "sc"], ["lin"], mode="linear",
                         coordinate_transformation_mode="half_pixel"),
        helper.make_node("Resize", ["x", "", "sc"], ["near"], mode="nearest",
                         coordinate_transformation_mode="asymmetric", nearest_mode="floor"),
        helper.make_node("Pad", ["x", "pd"], ["pad"], mode="reflect"),
    ]  # fmt: skip
    ref, got = _both(_model(nodes, {"x": x}, inits, ["s", "lin", "near", "pad"]), {"x": x})
    for r, g in zip(ref, got, strict=True):
        assert r.shape == g.shape
        np.testing.assert_allclose(g, r, atol=1e-5)


def test_stft_and_exported_atan2() -> None:
    """STFT layout matches; Div -> Atan (how atan2 is exported) gives 0, not NaN, for silent bins."""
    sig = np.concatenate([RNG.standard_normal(64), np.zeros(64)]).astype(np.float32)[None]
    inits = {"step": np.array(8, np.int64), "win": np.hanning(16).astype(np.float32),
             "len": np.array(16, np.int64), "zero": np.array([0], np.int64), "one": np.array([1], np.int64),
             "axis": np.array([3], np.int64)}  # fmt: skip
    nodes = [
        helper.make_node("STFT", ["sig", "step", "win", "len"], ["spec"]),
        helper.make_node("Gather", ["spec", "zero"], ["re"], axis=3),
        helper.make_node("Gather", ["spec", "one"], ["im"], axis=3),
        helper.make_node("Div", ["im", "re"], ["ratio"]),
        helper.make_node("Atan", ["ratio"], ["phase"]),
    ]
    model = _model(nodes, {"sig": sig}, inits, ["spec", "phase"])
    (ref_spec, _), (spec, phase) = _both(model, {"sig": sig})
    np.testing.assert_allclose(spec, ref_spec, atol=1e-4)
    assert np.isfinite(phase).all()
    assert np.all(phase[0, -3:] == 0.0)  # frames of silence: atan2(0, 0) = 0


def test_unknown_operator_is_named_at_load() -> None:
    x = np.zeros((2,), np.float32)
    model = _model([helper.make_node("Hardmax", ["x"], ["y"])], {"x": x}, {}, ["y"])
    with pytest.raises(UnsupportedOperator, match="Hardmax"):
        TorchGraph(model)


# --- the real model ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def torch_engine(model_cache: Path) -> KokoroTorchEngine:
    return KokoroTorchEngine(model_cache, device="cpu")


def test_torch_kokoro_sounds_like_onnxruntime(
    torch_engine: KokoroTorchEngine, float_engine: KokoroEngine
) -> None:
    assert isinstance(torch_engine, TTSEngine)
    voice = float_engine.preset_styles()["jm_kumo"]
    for phrase in (SHORT, MID):
        ref = float_engine.synthesize(phrase, voice)
        got = torch_engine.synthesize(phrase, voice)
        assert got.dtype == np.float32 and abs(len(got) - len(ref)) < 0.02 * len(ref)
        assert spectral_distance_db(ref, got) < SAME_SPEECH_MAX_DB
    other = torch_engine.synthesize(MID, voice)
    assert spectral_distance_db(float_engine.synthesize(SHORT, voice), other) > 2 * SAME_SPEECH_MAX_DB


def test_gradients_reach_the_style(torch_engine: KokoroTorchEngine) -> None:
    style = torch.tensor(torch_engine.preset_styles()["jf_alpha"][10], requires_grad=True)
    audio = torch_engine.forward(torch_engine.tokenize(SHORT), style)
    assert audio.requires_grad and audio.numel() > 10_000
    (audio**2).mean().backward()
    grad = style.grad
    assert grad is not None and torch.isfinite(grad).all()
    assert grad[:128].abs().sum() > 0 and grad[128:].abs().sum() > 0  # decoder half and prosody half


def test_torch_engine_refuses_a_device_it_does_not_have(model_cache: Path) -> None:
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(VoxError) as err:
        KokoroTorchEngine(model_cache, device="cuda")
    assert err.value.code == "device_unavailable"


def test_torch_kokoro_speaks_a_voice_pitch_as_onnxruntime_does(torch_engine: KokoroTorchEngine) -> None:
    """The pitch factor is a weight of the float graph too: a voice keeps its pitch on either runtime."""
    from voxvault.cloning.instant import f0_track
    from voxvault.engines.base import AdaptedWeights
    from voxvault.engines.onnx_float import PITCH_SCALE

    style = torch_engine.preset_styles()["jf_alpha"]
    plain = torch_engine.synthesize(MID, style)
    up = AdaptedWeights("up", {PITCH_SCALE: np.array([2 ** (3 / 12) - 1], np.float32)})
    higher = torch_engine.synthesize_adapted(MID, style, 1.0, up)
    rate = torch_engine.sample_rate
    semitones = 12 * np.log2(np.median(f0_track(higher, rate)) / np.median(f0_track(plain, rate)))
    assert semitones == pytest.approx(3.0, abs=1.0)


def test_adapted_weights_change_one_call_only(torch_engine: KokoroTorchEngine) -> None:
    """A voice's adapted weights apply to its own call; zero deltas change nothing; a misfit is refused."""
    from voxvault.cloning.adapt.decoder import adaptable_weights
    from voxvault.engines.base import AdaptedWeights

    style = torch_engine.preset_styles()["jf_alpha"]
    plain = torch_engine.synthesize(SHORT, style)
    constants = torch_engine.graph.constants
    names = adaptable_weights(torch_engine)
    zero = AdaptedWeights("zero", {n: np.zeros(tuple(constants[n].shape), np.float32) for n in names})
    assert np.allclose(torch_engine.synthesize_adapted(SHORT, style, 1.0, zero), plain, atol=1e-5)

    bias = next(n for n in names if n.endswith("bias"))
    bumped = AdaptedWeights("bumped", {bias: np.full(tuple(constants[bias].shape), 0.5, np.float32)})
    changed = torch_engine.synthesize_adapted(SHORT, style, 1.0, bumped)
    n = min(len(changed), len(plain))
    assert spectral_distance_db(changed[:n], plain[:n]) > 0.5
    assert np.array_equal(torch_engine.synthesize(SHORT, style), plain)  # the next plain call is unaffected

    misfit = AdaptedWeights("misfit", {bias: np.zeros((3,), np.float32)})
    with pytest.raises(VoxError) as err:
        torch_engine.synthesize_adapted(SHORT, style, 1.0, misfit)
    assert err.value.code == "adapted_weights_mismatch" and err.value.status == 409
