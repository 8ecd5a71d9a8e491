"""Kokoro TTS engine: model joining and verification, synthesis behaviour, and the graph rewrites.

Behaviour tests use the int8 precision (same code path, least CPU); the float graph is checked against it.
Real-model tests use the suite's shared ``model_cache`` (tests/conftest.py), so the parts are joined and
the graphs converted once per machine.
"""

from __future__ import annotations

import copy
import hashlib
import os
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper
from scipy.signal import stft

from voxvault.engines.base import TTSEngine
from voxvault.engines.kokoro import (
    MODEL_FILENAME,
    KokoroEngine,
    cpu_has_vnni,
    ensure_joined_model,
    file_sha256,
    join_parts,
    shipped_sha256,
)
from voxvault.engines.onnx_float import convs_to_int8_gemm, dequantize_model
from voxvault.errors import VoxError

HELLO = "həlˈO wˈɜɹld, ɪt ɪz tˈɛn θˈɜɹɾi ɔn ðə θˈɜɹd ʌv mˈɑɹʧ."
MID = "həlˈO wˈɜɹld, ɪt ɪz tˈɛn."
SHORT = "θˈæŋks, sˈi ju."
OTHER = "ðə kwˈɪk bɹˈWn fˈɑks ʤˈʌmpt."
# Measured float-vs-int8 distance on these phrases: 0.9-1.5 dB (two voices, four phrases); unrelated
# sentences by the same voice: 6.6 dB. 2.5 dB leaves room for CPU-dependent rounding.
SAME_SPEECH_MAX_DB = 2.5


@pytest.fixture(scope="module")
def cache_dir(model_cache: Path) -> Path:
    return model_cache


@pytest.fixture(scope="module")
def voice(int8_engine: KokoroEngine) -> np.ndarray:
    return int8_engine.preset_styles()["jf_alpha"]


def _band_frames(audio: np.ndarray) -> np.ndarray:
    """Log energy in 40 log-spaced bands per 10.7 ms frame: [frames, bands] in dB."""
    _, _, spec = stft(audio, fs=24_000, nperseg=1024, noverlap=768)
    power = np.abs(spec) ** 2
    edges = np.unique(np.geomspace(2, power.shape[0] - 1, 41).astype(int))
    bands = np.stack([power[a:b].sum(axis=0) for a, b in zip(edges[:-1], edges[1:], strict=True)])
    return 10 * np.log10(bands.T + 1e-8)


def spectral_distance_db(a: np.ndarray, b: np.ndarray, band: int = 40) -> float:
    """Mean band-energy distance (dB) along the best time alignment (banded DTW).

    The vocoder's phase drifts with tiny pitch differences, so sample-level comparisons of two correct
    renderings are meaningless; the aligned spectral envelope is what a listener hears.
    """
    x, y = _band_frames(a), _band_frames(b)
    cost = np.sqrt(((x[:, None, :] - y[None, :, :]) ** 2).mean(axis=-1))
    n, m = cost.shape
    acc = np.full((n + 1, m + 1), np.inf)
    acc[0, 0] = 0.0
    for i in range(1, n + 1):
        for j in range(max(1, i - band), min(m, i + band) + 1):
            acc[i, j] = cost[i - 1, j - 1] + min(acc[i - 1, j], acc[i, j - 1], acc[i - 1, j - 1])
    return float(acc[n, m] / (n + m))


# --- joining and caching (fake parts: fast) --------------------------------------------------------------


def _fake_parts(tmp_path: Path) -> tuple[list[Path], bytes]:
    chunks = [os.urandom(3000), os.urandom(5000), os.urandom(1), os.urandom(2500)]
    parts = []
    for i, chunk in enumerate(chunks, 1):
        part = tmp_path / f"part{i}.bin"
        part.write_bytes(chunk)
        parts.append(part)
    return parts, b"".join(chunks)


def test_join_parts_concatenates_in_order_and_records_digest(tmp_path: Path) -> None:
    parts, whole = _fake_parts(tmp_path)
    digest = hashlib.sha256(whole).hexdigest()
    dest = ensure_joined_model(tmp_path / "cache", parts=parts, expected_sha256=digest)
    assert dest.name == MODEL_FILENAME
    assert dest.read_bytes() == whole
    marker = dest.with_name(dest.name + ".json").read_text()
    assert digest in marker


def test_corrupt_part_is_refused_and_leaves_nothing_behind(tmp_path: Path) -> None:
    parts, whole = _fake_parts(tmp_path)
    digest = hashlib.sha256(whole).hexdigest()
    data = bytearray(parts[1].read_bytes())
    data[100] ^= 0xFF
    parts[1].write_bytes(bytes(data))
    cache = tmp_path / "cache"
    with pytest.raises(VoxError) as err:
        ensure_joined_model(cache, parts=parts, expected_sha256=digest)
    assert err.value.code == "model_corrupt"
    assert "reinstall" in err.value.message
    assert list(cache.iterdir()) == []  # no partial model, no temp file, no marker


def test_joined_model_is_reused_and_rejoined_when_damaged(tmp_path: Path) -> None:
    parts, whole = _fake_parts(tmp_path)
    digest = hashlib.sha256(whole).hexdigest()
    cache = tmp_path / "cache"
    dest = ensure_joined_model(cache, parts=parts, expected_sha256=digest)
    first = dest.stat()

    assert ensure_joined_model(cache, parts=parts, expected_sha256=digest) == dest
    assert dest.stat().st_ino == first.st_ino and dest.stat().st_mtime_ns == first.st_mtime_ns

    dest.write_bytes(whole[:-10])  # truncated: size no longer matches the marker
    ensure_joined_model(cache, parts=parts, expected_sha256=digest)
    assert dest.read_bytes() == whole

    dest.with_name(dest.name + ".json").unlink()  # marker lost: cannot be trusted, rejoin
    before = dest.stat().st_ino
    ensure_joined_model(cache, parts=parts, expected_sha256=digest)
    assert dest.stat().st_ino != before
    assert dest.read_bytes() == whole


def test_join_parts_never_replaces_a_good_file_with_a_bad_one(tmp_path: Path) -> None:
    parts, whole = _fake_parts(tmp_path)
    dest = tmp_path / "model.onnx"
    dest.write_bytes(b"previous")
    with pytest.raises(VoxError):
        join_parts(parts, "0" * 64, dest)
    assert dest.read_bytes() == b"previous"


def test_unknown_precision_is_refused(tmp_path: Path) -> None:
    with pytest.raises(VoxError) as err:
        KokoroEngine(tmp_path, precision="fp16")
    assert err.value.code == "unknown_precision"
    assert list(tmp_path.iterdir()) == []  # refused before any work


# --- graph rewrites on a tiny quantised model (fast) -----------------------------------------------------


def _tiny_float_model() -> onnx.ModelProto:
    rng = np.random.default_rng(0)
    channels, hidden = 16, 8
    weights = {
        "conv_w": rng.standard_normal((channels, channels, 5)).astype(np.float32) * 0.2,
        "conv_b": rng.standard_normal(channels).astype(np.float32) * 0.1,
        "proj_w": rng.standard_normal((channels, 24)).astype(np.float32) * 0.2,
        "lstm_w": rng.standard_normal((1, 4 * hidden, 24)).astype(np.float32) * 0.2,
        "lstm_r": rng.standard_normal((1, 4 * hidden, hidden)).astype(np.float32) * 0.2,
        "lstm_b": rng.standard_normal((1, 8 * hidden)).astype(np.float32) * 0.1,
    }
    nodes = [
        helper.make_node(
            "Conv", ["x", "conv_w", "conv_b"], ["c"], kernel_shape=[5], pads=[4, 4], dilations=[2]
        ),
        helper.make_node("Transpose", ["c"], ["ct"], perm=[2, 0, 1]),
        helper.make_node("MatMul", ["ct", "proj_w"], ["p"]),
        helper.make_node("LSTM", ["p", "lstm_w", "lstm_r", "lstm_b"], ["y"], hidden_size=hidden),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, channels, None])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        initializer=[numpy_helper.from_array(v, k) for k, v in weights.items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory: pytest.TempPathFactory) -> tuple[onnx.ModelProto, onnx.ModelProto]:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    folder = tmp_path_factory.mktemp("tiny")
    model = _tiny_float_model()
    onnx.save(model, folder / "f.onnx")
    quantize_dynamic(
        folder / "f.onnx",
        folder / "q.onnx",
        weight_type=QuantType.QUInt8,
        op_types_to_quantize=["Conv", "MatMul", "LSTM"],
    )
    return model, onnx.load(folder / "q.onnx")


def _run(model: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return np.asarray(session.run(None, {"x": x})[0])


def _ops(model: onnx.ModelProto) -> set[str]:
    return {n.op_type for n in model.graph.node}


def test_dequantize_model_removes_every_integer_op_and_tracks_fp32(
    tiny_models: tuple[onnx.ModelProto, onnx.ModelProto],
) -> None:
    fp32, quantised = tiny_models
    assert {"ConvInteger", "MatMulInteger", "DynamicQuantizeLSTM"} <= _ops(quantised)
    converted = copy.deepcopy(quantised)
    report = dequantize_model(converted)
    assert (report.matmul, report.conv, report.lstm, report.kept) == (1, 1, 1, {})
    assert not _ops(converted) & {
        "ConvInteger",
        "MatMulInteger",
        "DynamicQuantizeLSTM",
        "DynamicQuantizeLinear",
    }
    onnx.checker.check_model(converted)
    x = np.random.default_rng(1).standard_normal((1, 16, 50)).astype(np.float32)
    ref = _run(fp32, x)
    rel = lambda y: float(np.linalg.norm(y - ref) / np.linalg.norm(ref))  # noqa: E731
    # Only the 8-bit weight rounding remains (measured 1.4%); the int8 graph also rounds activations (2.4%).
    assert rel(_run(converted, x)) < 0.03
    assert rel(_run(converted, x)) < rel(_run(quantised, x))


@pytest.mark.skipif(not cpu_has_vnni(), reason="uint8 x int8 GEMM rewrite is only used on VNNI CPUs")
def test_int8_gemm_rewrite_replaces_convs_and_matches(
    tiny_models: tuple[onnx.ModelProto, onnx.ModelProto],
) -> None:
    fp32, quantised = tiny_models
    rewritten = copy.deepcopy(quantised)
    report = convs_to_int8_gemm(rewritten)
    assert report.conv == 1 and "ConvInteger" not in _ops(rewritten)
    assert "MatMulIntegerToFloat" in _ops(rewritten)
    x = np.random.default_rng(2).standard_normal((1, 16, 50)).astype(np.float32)
    ref, q, y = _run(fp32, x), _run(quantised, x), _run(rewritten, x)
    assert np.linalg.norm(y - ref) / np.linalg.norm(ref) < 0.04  # measured 2.4%, same as the int8 graph
    assert np.linalg.norm(y - q) / np.linalg.norm(q) < 0.04


# --- the real model --------------------------------------------------------------------------------------


@pytest.mark.slow
def test_joined_model_matches_published_sha256(int8_engine: KokoroEngine) -> None:
    assert file_sha256(int8_engine.joined_model_path) == shipped_sha256()


@pytest.mark.slow
def test_float_model_has_no_quantised_ops_left(float_engine: KokoroEngine) -> None:
    model = onnx.load(str(float_engine.model_path), load_external_data=False)
    ops = {n.op_type for n in model.graph.node}
    assert not ops & {"ConvInteger", "MatMulInteger", "DynamicQuantizeLSTM", "DynamicQuantizeLinear"}


@pytest.mark.slow
def test_synthesize_speaks_non_silent_24khz_audio(int8_engine: KokoroEngine, voice: np.ndarray) -> None:
    assert isinstance(int8_engine, TTSEngine)
    assert (int8_engine.name, int8_engine.sample_rate) == ("kokoro", 24_000)
    audio = int8_engine.synthesize(HELLO, voice)
    assert audio.dtype == np.float32 and audio.ndim == 1
    assert 1.5 < audio.size / int8_engine.sample_rate < 5.0
    assert np.abs(audio).max() <= 1.0
    assert np.sqrt(np.mean(audio**2)) > 0.03
    # Silence trimmed to ~30 ms at both ends.
    edge = int(0.1 * int8_engine.sample_rate)
    assert np.abs(audio[:edge]).max() > 0.01 and np.abs(audio[-edge:]).max() > 0.01


@pytest.mark.slow
def test_duration_grows_with_phoneme_count(int8_engine: KokoroEngine, voice: np.ndarray) -> None:
    lengths = [int8_engine.synthesize(p, voice).size for p in (SHORT, MID, HELLO)]
    assert lengths[0] < lengths[1] < lengths[2]


@pytest.mark.slow
def test_speed_changes_duration(int8_engine: KokoroEngine, voice: np.ndarray) -> None:
    fast = int8_engine.synthesize(MID, voice, speed=1.5)
    slow = int8_engine.synthesize(MID, voice, speed=0.8)
    assert fast.size < 0.7 * slow.size


@pytest.mark.slow
def test_unknown_characters_are_dropped(int8_engine: KokoroEngine, voice: np.ndarray) -> None:
    clean = int8_engine.synthesize(MID, voice)
    noisy = int8_engine.synthesize("☃" + MID.replace(" ", " \u200b§") + "@", voice)
    np.testing.assert_allclose(noisy, clean, atol=1e-5)


@pytest.mark.slow
def test_style_pack_uses_the_row_for_the_token_count(int8_engine: KokoroEngine, voice: np.ndarray) -> None:
    tokens = int8_engine.tokenize(SHORT)
    from_pack = int8_engine.synthesize(SHORT, voice)
    from_row = int8_engine.synthesize(SHORT, voice[len(tokens) - 1])
    from_3d = int8_engine.synthesize(SHORT, voice[:, None, :])
    np.testing.assert_allclose(from_row, from_pack, atol=1e-5)
    np.testing.assert_allclose(from_3d, from_pack, atol=1e-5)
    other_row = int8_engine.synthesize(SHORT, voice[0])
    assert other_row.size != from_pack.size or not np.allclose(other_row, from_pack, atol=1e-3)


@pytest.mark.slow
def test_preset_styles_are_the_five_shipped_packs(int8_engine: KokoroEngine) -> None:
    styles = int8_engine.preset_styles()
    assert sorted(styles) == ["jf_alpha", "jf_gongitsune", "jf_nezumi", "jf_tebukuro", "jm_kumo"]
    assert all(s.shape == (510, 256) and s.dtype == np.float32 for s in styles.values())
    styles["jf_alpha"][:] = 0  # callers get copies
    assert np.abs(int8_engine.preset_styles()["jf_alpha"]).sum() > 0
    assert int8_engine.phoneme_vocab["ə"] == 83 and " " in int8_engine.phoneme_vocab


@pytest.mark.slow
def test_bad_input_is_refused_with_a_code(int8_engine: KokoroEngine, voice: np.ndarray) -> None:
    cases = [
        ((("a" * (int8_engine.max_phonemes + 1)), voice, 1.0), "phonemes_too_long"),
        ((HELLO, np.zeros(100, np.float32), 1.0), "bad_style"),
        ((HELLO, np.full(256, np.nan, np.float32), 1.0), "bad_style"),
        ((HELLO, voice, 0.1), "bad_speed"),
        ((HELLO, voice, float("nan")), "bad_speed"),
        ((b"abc", voice, 1.0), "bad_phonemes"),
    ]
    for (phonemes, style, speed), code in cases:
        with pytest.raises(VoxError) as err:
            int8_engine.synthesize(phonemes, style, speed=speed)  # type: ignore[arg-type]
        assert err.value.code == code
    assert int8_engine.synthesize("", voice).size == 0
    assert int8_engine.synthesize("☃☃", voice).size == 0
    # The limit counts phonemes the model knows, not raw characters.
    assert int8_engine.synthesize("☃" * int8_engine.max_phonemes + SHORT, voice).size > 0


@pytest.mark.slow
def test_float_and_int8_sound_the_same(float_engine: KokoroEngine, int8_engine: KokoroEngine) -> None:
    styles = float_engine.preset_styles()
    heard = {}
    for phonemes, name in ((MID, "jf_alpha"), (SHORT, "jm_kumo")):
        a = int8_engine.synthesize(phonemes, styles[name])
        b = float_engine.synthesize(phonemes, styles[name])
        assert 0.95 < b.size / a.size < 1.05  # measured within 2.8%
        assert spectral_distance_db(a, b) < SAME_SPEECH_MAX_DB
        heard[name] = a
    # The metric does tell different speech apart.
    other = int8_engine.synthesize(OTHER, styles["jm_kumo"])
    assert spectral_distance_db(heard["jm_kumo"], other) > 2 * SAME_SPEECH_MAX_DB


@pytest.mark.slow
@pytest.mark.skipif(not cpu_has_vnni(), reason="int8-vnni falls back to int8 without VNNI")
def test_int8_vnni_sounds_like_int8(cache_dir: Path, int8_engine: KokoroEngine) -> None:
    vnni = KokoroEngine(cache_dir, precision="auto")  # picks int8-vnni on a VNNI CPU
    assert vnni.precision == "int8-vnni" and "int8-vnni" in vnni.model_path.name
    style = vnni.preset_styles()["jm_kumo"]
    a, b = int8_engine.synthesize(MID, style), vnni.synthesize(MID, style)
    assert 0.97 < b.size / a.size < 1.03
    assert spectral_distance_db(a, b) < SAME_SPEECH_MAX_DB


@pytest.mark.slow
def test_damaged_cached_model_is_rejoined(tmp_path: Path) -> None:
    # kernels off: the joined graph itself is the session (with kernels, a derived graph is).
    first = KokoroEngine(tmp_path, precision="int8", threads=1, kernels="off")
    path = first.joined_model_path
    with path.open("r+b") as f:  # same size, so only the failed load reveals it
        f.write(b"\0" * 64)
    again = KokoroEngine(tmp_path, precision="int8", threads=1, kernels="off")
    assert file_sha256(again.joined_model_path) == shipped_sha256()
    assert again.synthesize(SHORT, again.preset_styles()["jf_alpha"]).size > 0
