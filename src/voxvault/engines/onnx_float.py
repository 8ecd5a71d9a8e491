"""Rewrites of a dynamically quantised (int8) ONNX graph, done once and cached by the engine.

The shipped Kokoro graph was made by ``onnxruntime.quantization.quantize_dynamic``. Its layout:

* ``DynamicQuantizeLinear(x) -> MatMulInteger(xq, Wq, xzp, wzp) -> Cast -> Mul(xs * ws)``
* ``DynamicQuantizeLinear(x) -> ConvInteger(xq, Wq, xzp, wzp) [-> Add(bias_q)] -> Cast -> Mul(xs * ws)``
  where the bias was quantised at run time as ``Floor(bias / (xs * ws))``
* ``DynamicQuantizeLSTM`` (com.microsoft) with int8 weights stored as [D, input, 4H].

Three rewrites are offered:

``dequantize_model``
    Everything back to float32: ``MatMul(x, (Wq - wzp) * ws)``, ``Conv(x, W, bias)`` with the original
    float bias, and a standard ``LSTM``. Numerically this is the closest we can get to the fp32 model.

``convs_to_int8_gemm``
    Only the 1-D ``ConvInteger`` nodes change: onnxruntime runs ``ConvInteger`` through a slow uint8 x uint8
    path, while ``MatMulIntegerToFloat`` with uint8 activations and int8 weights hits the VNNI kernels.
    Each convolution becomes ``DynamicQuantizeLinear -> Transpose -> Pad -> Gather (im2col, uint8) ->
    MatMulIntegerToFloat`` with per-output-channel int8 weights, then a Transpose back. Only use this where
    the CPU has VNNI: without it the uint8 x int8 kernels can saturate.

``fuse_vocoder``
    The vocoder's Snake activations (five element-wise nodes each) become one ``ai.voxvault.Snake`` node,
    and, where an adaptive instance norm (nine more nodes) feeds one, one ``ai.voxvault.AdaInSnake``:
    kernels compiled from ``engines/kernels/fused.c``; applied on top of any graph above.

Anything that does not match exactly is left as it is (and counted), so the result always runs. Nodes that
become unused are removed, as are unused initializers.
"""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from numpy.typing import NDArray
from onnx import NodeProto, TensorProto, helper, numpy_helper

#: Bumped whenever a rewrite changes, so cached converted models are rebuilt.
REWRITE_VERSION = 4

#: The prosody predictor's F0 contour (Hz per frame) on its way to the decoder, in the shipped graph
F0_TENSOR = "/encoder/Squeeze_output_0"
#: A one-element initializer (1.0) the F0 contour is multiplied by: a voice's pitch (``cloning/pitch.py``)
PITCH_SCALE = "voice.pitch_scale"


@dataclass
class ConversionReport:
    """What a rewrite did, for logs and benchmarks."""

    matmul: int = 0
    conv: int = 0
    lstm: int = 0
    snake: int = 0
    adain: int = 0
    inputs: int = 0  # initializers also listed as graph inputs (overridable per call)
    outputs: int = 0  # intermediate tensors made graph outputs too
    pitch: int = 0  # the pitch factor added (add_pitch_scale)
    kept: dict[str, int] = field(default_factory=dict)
    removed_nodes: int = 0

    @property
    def converted(self) -> int:
        return self.matmul + self.conv + self.lstm + self.snake + self.adain


class _Graph:
    """Name lookups over one snapshot of a graph's nodes (the same Python objects throughout)."""

    def __init__(self, graph: onnx.GraphProto, nodes: list[NodeProto]) -> None:
        self.graph = graph
        self.inits: dict[str, TensorProto] = {t.name: t for t in graph.initializer}
        self.producer: dict[str, NodeProto] = {o: n for n in nodes for o in n.output if o}
        self.consumers: dict[str, list[NodeProto]] = defaultdict(list)
        for n in nodes:
            for i in n.input:
                if i:
                    self.consumers[i].append(n)
        self._arrays: dict[str, NDArray[np.generic]] = {}
        self._added: dict[tuple[str, ...], str] = {}

    def array(self, name: str) -> NDArray[np.generic] | None:
        if name not in self.inits:
            return None
        if name not in self._arrays:
            self._arrays[name] = numpy_helper.to_array(self.inits[name])
        return self._arrays[name]

    def only_consumer(self, name: str, op_type: str) -> NodeProto | None:
        nodes = self.consumers.get(name, [])
        return nodes[0] if len(nodes) == 1 and nodes[0].op_type == op_type else None

    def only_producer(self, name: str, op_type: str, readers: int = 1) -> NodeProto | None:
        """The node of ``op_type`` that makes ``name``, if exactly ``readers`` nodes read ``name``."""
        node = self.producer.get(name)
        if node is None or node.op_type != op_type or len({id(n) for n in self.consumers[name]}) != readers:
            return None
        return node

    def fresh_name(self, base: str) -> str:
        name, suffix = base, 1
        while name in self.inits or name in self.producer:
            name = f"{base}_{suffix}"
            suffix += 1
        return name

    def add_initializer(self, key: tuple[str, ...], base: str, value: NDArray[np.generic]) -> str:
        """Add an initializer once per distinct source (ALBERT's shared layer weights stay shared)."""
        existing = self._added.get(key)
        if existing is not None:
            return existing
        name = self.fresh_name(base)
        tensor = numpy_helper.from_array(np.ascontiguousarray(value), name)
        self.graph.initializer.append(tensor)
        self.inits[name] = tensor
        self._added[key] = name
        return name

    def constant(self, base: str, value: NDArray[np.generic]) -> str:
        return self.add_initializer(("const", str(value.dtype), repr(value.tolist())), base, value)


# --- pattern matching ---------------------------------------------------------------------------------


@dataclass
class _Quantised:
    """One matched ``DynamicQuantizeLinear -> integer op -> ... -> Mul(scale)`` pattern."""

    node: NodeProto
    x: str  # float activation feeding DynamicQuantizeLinear
    x_q: str  # its uint8 version
    x_scale: str
    x_zero_point: str
    weight: NDArray[np.float32]  # dequantised
    bias: str | None
    output: str  # float output of the pattern (name kept so consumers are untouched)
    dead: list[NodeProto]
    key: str


def _dynamic_quant_source(g: _Graph, node: NodeProto) -> NodeProto | None:
    if len(node.input) < 3:
        return None
    dql = g.producer.get(node.input[0])
    if dql is None or dql.op_type != "DynamicQuantizeLinear":
        return None
    if dql.output[0] != node.input[0] or dql.output[2] != node.input[2]:
        return None
    return dql


def _weight_scale(g: _Graph, scale_product: str, act_scale: str) -> NDArray[np.float32] | None:
    """The scale Mul is ``act_scale * weight_scale``; return the weight scale initializer's values."""
    mul = g.producer.get(scale_product)
    if mul is None or mul.op_type != "Mul" or act_scale not in mul.input:
        return None
    other = [i for i in mul.input if i != act_scale]
    if len(other) != 1:
        return None
    arr = g.array(other[0])
    return None if arr is None else arr.astype(np.float32)


def _cast_then_scale(
    g: _Graph, integer_output: str, act_scale: str
) -> tuple[NodeProto, NodeProto, NDArray[np.float32]] | None:
    """Match ``Cast(to float) -> Mul(scale)`` after an integer op; returns (cast, mul, weight_scale)."""
    cast = g.only_consumer(integer_output, "Cast")
    if cast is None or helper.get_attribute_value(cast.attribute[0]) != TensorProto.FLOAT:
        return None
    mul = g.only_consumer(cast.output[0], "Mul")
    if mul is None:
        return None
    other = [i for i in mul.input if i != cast.output[0]]
    if len(other) != 1:
        return None
    scale = _weight_scale(g, other[0], act_scale)
    return None if scale is None else (cast, mul, scale)


def _per_channel(values: NDArray[np.float32], ndim: int, axis: int) -> NDArray[np.float32]:
    """Shape a scalar or 1-D per-channel parameter to broadcast along ``axis`` of an ``ndim`` tensor."""
    if values.size == 1:
        return values.reshape(())
    shape = [1] * ndim
    shape[axis] = values.size
    return values.reshape(shape)


def _quantised_bias(g: _Graph, bias_sum: str) -> str | None:
    """Follow ``Reshape <- Cast <- Floor <- Div(bias, scale)`` back to the original float bias."""
    name = bias_sum
    for _ in range(6):
        node = g.producer.get(name)
        if node is None:
            return None
        if node.op_type == "Div":
            return node.input[0] if g.array(node.input[0]) is not None else None
        if node.op_type not in {"Reshape", "Cast", "Floor", "Round"}:
            return None
        name = node.input[0]
    return None


def _match(g: _Graph, node: NodeProto, channel_axis: int) -> _Quantised | None:
    """Match a MatMulInteger (channel_axis=1 of [K, N]) or ConvInteger (channel_axis=0 of [O, I, k])."""
    dql = _dynamic_quant_source(g, node)
    weight = g.array(node.input[1])
    if dql is None or weight is None:
        return None
    zp_name = node.input[3] if len(node.input) > 3 else ""
    zero_point = g.array(zp_name) if zp_name else np.zeros((), np.float32)
    if zero_point is None:
        return None
    dead = [node]
    integer_out = node.output[0]
    bias: str | None = None
    add = g.only_consumer(integer_out, "Add") if node.op_type == "ConvInteger" else None
    if add is not None:
        other = [i for i in add.input if i != integer_out]
        bias = _quantised_bias(g, other[0]) if len(other) == 1 else None
        if bias is None:
            return None
        dead.append(add)
        integer_out = add.output[0]
    tail = _cast_then_scale(g, integer_out, dql.output[1])
    if tail is None:
        return None
    cast, mul, scale = tail
    dead += [cast, mul]
    w = (
        weight.astype(np.float32) - _per_channel(zero_point.astype(np.float32), weight.ndim, channel_axis)
    ) * (_per_channel(scale, weight.ndim, channel_axis))
    key = f"{node.input[1]}|{zp_name}|{scale.tobytes().hex()}"
    x_q, x_scale, x_zero_point = dql.output[0], dql.output[1], dql.output[2]
    return _Quantised(
        node, dql.input[0], x_q, x_scale, x_zero_point, w.astype(np.float32), bias, mul.output[0], dead, key
    )


# --- rewrites -----------------------------------------------------------------------------------------

_Rewrite = tuple[list[NodeProto], list[NodeProto]]  # (new nodes, nodes they replace)


def _float_matmul(g: _Graph, node: NodeProto) -> _Rewrite | None:
    m = _match(g, node, channel_axis=1)
    if m is None or m.weight.ndim != 2:
        return None
    w = g.add_initializer(("matmul", m.key), node.input[1].removesuffix("_quantized") + "_float", m.weight)
    return [helper.make_node("MatMul", [m.x, w], [m.output], name=node.name.removesuffix("_quant"))], m.dead


def _float_conv(g: _Graph, node: NodeProto) -> _Rewrite | None:
    m = _match(g, node, channel_axis=0)
    if m is None or m.weight.ndim < 3:
        return None
    w = g.add_initializer(("conv", m.key), node.input[1].removesuffix("_quantized") + "_float", m.weight)
    new = helper.make_node(
        "Conv", [m.x, w] + ([m.bias] if m.bias else []), [m.output], name=node.name.removesuffix("_quant")
    )
    new.attribute.extend(node.attribute)
    return [new], m.dead


def _float_lstm(g: _Graph, node: NodeProto) -> _Rewrite | None:
    """``DynamicQuantizeLSTM`` stores W as [D, input, 4H] int8; ONNX ``LSTM`` wants [D, 4H, input] float."""
    inputs = list(node.input) + [""] * (12 - len(node.input))
    floats: list[str] = []
    for w_idx, s_idx, z_idx, label in ((1, 8, 9, "W"), (2, 10, 11, "R")):
        weight, scale = g.array(inputs[w_idx]), g.array(inputs[s_idx])
        zp = g.array(inputs[z_idx]) if inputs[z_idx] else np.zeros((), np.int8)
        if weight is None or scale is None or zp is None or weight.ndim != 3:
            return None
        d = weight.shape[0]
        # Per-direction ([D]) or per-direction-per-column ([D, 4H]) parameters.
        s = scale.astype(np.float32).reshape(d, 1, -1)
        z = zp.astype(np.float32).reshape(d, 1, -1) if zp.size > 1 else zp.astype(np.float32)
        w = ((weight.astype(np.float32) - z) * s).transpose(0, 2, 1)
        key = ("lstm", inputs[w_idx], inputs[s_idx], inputs[z_idx])
        base = f"{inputs[w_idx].removesuffix('_quantized')}_{label}_float"
        floats.append(g.add_initializer(key, base, w.astype(np.float32)))
    new_inputs = [inputs[0], floats[0], floats[1], *inputs[3:8]]
    while new_inputs and not new_inputs[-1]:
        new_inputs.pop()
    new = helper.make_node("LSTM", new_inputs, list(node.output), name=node.name.removesuffix("_quant"))
    new.attribute.extend(node.attribute)
    return [new], [node]


def _gemm_conv(g: _Graph, node: NodeProto) -> _Rewrite | None:
    """1-D ConvInteger -> uint8 im2col (Gather) + MatMulIntegerToFloat with per-channel int8 weights."""
    attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    if attrs.get("group", 1) != 1 or list(attrs.get("strides", [1])) != [1]:
        return None
    if attrs.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET"):
        return None
    m = _match(g, node, channel_axis=0)
    if m is None or m.weight.ndim != 3:
        return None
    out_ch, in_ch, kernel = m.weight.shape
    dilation = int(attrs.get("dilations", [1])[0])
    pad_begin, pad_end = (int(p) for p in attrs.get("pads", [0, 0]))

    # Symmetric per-output-channel int8 in [-127, 127]; rows ordered (tap, input channel) to match im2col.
    max_abs = np.abs(m.weight).reshape(out_ch, -1).max(axis=1)
    scale = np.where(max_abs > 0, max_abs / 127.0, 1.0).astype(np.float32)
    w_q = np.clip(np.rint(m.weight / scale[:, None, None]), -127, 127).astype(np.int8)
    w_mat = w_q.transpose(2, 1, 0).reshape(kernel * in_ch, out_ch)
    base = g.fresh_name(node.name.removesuffix("_quant").strip("/").replace("/", "_") + "_gemm")
    w_name = g.add_initializer(("gemm_w", m.key), base + "_W", w_mat)
    s_name = g.add_initializer(("gemm_s", m.key), base + "_Wscale", scale)
    bias = m.bias or g.add_initializer(("gemm_b0", str(out_ch)), base + "_B0", np.zeros(out_ch, np.float32))

    nodes: list[NodeProto] = []

    def add(op: str, inputs: list[str], suffix: str, domain: str = "", **kw: Any) -> str:
        out = f"{base}_{suffix}"
        nodes.append(helper.make_node(op, inputs, [out], name=out, domain=domain, **kw))
        return out

    time_major = add("Transpose", [m.x_q], "xt", perm=[0, 2, 1])  # [1, T, C] uint8
    if kernel == 1 and pad_begin == pad_end == 0:
        columns = time_major
    else:
        pads = g.constant("gemm_pads", np.array([0, pad_begin, 0, 0, pad_end, 0], np.int64))
        # Padding with the activation zero point is padding with 0.0.
        padded = add("Pad", [time_major, pads, m.x_zero_point], "xp")
        length = add("Shape", [padded], "len", start=1, end=2)  # [T_padded]
        span = g.constant("gemm_span", np.array([dilation * (kernel - 1)], np.int64))
        out_len = add("Sub", [length, span], "tout")
        steps = add(
            "Range",
            [
                g.constant("gemm_zero", np.array(0, np.int64)),
                add("Squeeze", [out_len, g.constant("gemm_axis0", np.array([0], np.int64))], "tsc"),
                g.constant("gemm_one", np.array(1, np.int64)),
            ],
            "steps",
        )
        starts = add("Unsqueeze", [steps, g.constant("gemm_axis1", np.array([1], np.int64))], "starts")
        taps = g.constant("gemm_taps", (np.arange(kernel, dtype=np.int64) * dilation).reshape(1, kernel))
        index = add("Add", [starts, taps], "idx")  # [T_out, kernel]
        gathered = add("Gather", [padded, index], "cols4", axis=1)  # [1, T_out, kernel, C]
        shape = g.constant("gemm_shape", np.array([0, -1, kernel * in_ch], np.int64))
        columns = add("Reshape", [gathered, shape], "cols")
    product = add(
        "MatMulIntegerToFloat",
        [columns, w_name, m.x_scale, s_name, m.x_zero_point, "", bias],
        "y",
        domain="com.microsoft",
    )
    nodes.append(helper.make_node("Transpose", [product], [m.output], name=f"{base}_out", perm=[0, 2, 1]))
    return nodes, m.dead


#: Domain of the fused ops compiled from ``voxvault/engines/kernels/fused.c``.
SNAKE_DOMAIN = "ai.voxvault"


def _snake(g: _Graph, sin: NodeProto) -> _Rewrite | None:
    """``Add(x, Mul(1/alpha, Pow(Sin(Mul(alpha, x)), 2)))`` -> ``Snake(x, alpha, 1/alpha)``.

    Only where every intermediate has that one reader and alpha, 1/alpha and the exponent are constants.
    """
    scaled = g.only_producer(sin.input[0], "Mul")
    if scaled is None:
        return None
    alpha = [i for i in scaled.input if i in g.inits]
    x = [i for i in scaled.input if i not in g.inits]
    if len(alpha) != 1 or len(x) != 1:
        return None
    square = g.only_consumer(sin.output[0], "Pow")
    exponent = g.array(square.input[1]) if square is not None else None
    if square is None or exponent is None or exponent.size != 1 or float(exponent.reshape(-1)[0]) != 2.0:
        return None
    weighted = g.only_consumer(square.output[0], "Mul")
    inverse = [i for i in weighted.input if i != square.output[0]] if weighted is not None else []
    if weighted is None or len(inverse) != 1 or inverse[0] not in g.inits:
        return None
    total = g.only_consumer(weighted.output[0], "Add")
    inner = {scaled.output[0], sin.output[0], square.output[0], weighted.output[0]}
    if total is None or x[0] not in total.input or inner & {o.name for o in g.graph.output}:
        return None
    a, inv = g.array(alpha[0]), g.array(inverse[0])
    if a is None or inv is None or a.dtype != np.float32 or inv.dtype != np.float32 or a.size != inv.size:
        return None
    node = helper.make_node(
        "Snake",
        [x[0], alpha[0], inverse[0]],
        [total.output[0]],
        name=f"{sin.name}_snake",
        domain=SNAKE_DOMAIN,
    )
    return [node], [scaled, square, weighted, total]


def _last_axis_mean(g: _Graph, node: NodeProto | None, x: str | None = None) -> bool:
    """``ReduceMean(x, axes=[2])`` with keepdims (the instance norm's statistics over time)."""
    if node is None or (x is not None and node.input[0] != x) or len(node.input) < 2:
        return False
    axes = g.array(node.input[1])
    keep = [a.i for a in node.attribute if a.name == "keepdims"]
    return axes is not None and axes.reshape(-1).tolist() in ([2], [-1]) and keep in ([], [1])


def _adain_snake(g: _Graph, snake: NodeProto) -> _Rewrite | None:
    """The adaptive instance norm feeding a Snake, fused into ``AdaInSnake``:

    ``Add(Mul(gain, Div(Sub(x, mean(x)), Sqrt(Add(mean(Sub^2), eps)))), shift) -> Snake`` becomes
    ``AdaInSnake(x, gain, shift, alpha, 1/alpha)`` (gain = 1 + gamma and shift = beta come from the style).
    """
    shifted = g.only_producer(snake.input[0], "Add")
    scaled = None
    for name in shifted.input if shifted is not None else []:
        scaled = scaled or g.only_producer(name, "Mul")
    if shifted is None or scaled is None:
        return None
    shift = [i for i in shifted.input if i != scaled.output[0]]
    normed = None
    for name in scaled.input:
        normed = normed or g.only_producer(name, "Div")
    if normed is None or len(shift) != 1:
        return None
    gain = [i for i in scaled.input if i != normed.output[0]]
    centred = g.only_producer(normed.input[0], "Sub", readers=2)
    root = g.only_producer(normed.input[1], "Sqrt")
    if centred is None or root is None or len(gain) != 1:
        return None
    x = centred.input[0]
    mean = g.only_producer(centred.input[1], "ReduceMean")
    padded = g.only_producer(root.input[0], "Add")
    if mean is None or not _last_axis_mean(g, mean, x) or padded is None:
        return None
    eps = [g.array(i) for i in padded.input if i in g.inits]
    variance = None
    for name in padded.input:
        variance = variance or g.only_producer(name, "ReduceMean")
    squared = g.only_producer(variance.input[0], "Mul") if variance is not None else None
    if (
        len(eps) != 1
        or eps[0] is None
        or eps[0].size != 1
        or variance is None
        or not _last_axis_mean(g, variance)
        or squared is None
        or list(squared.input) != [centred.output[0]] * 2
        or {id(n) for n in g.consumers[centred.output[0]]} != {id(squared), id(normed)}
    ):
        return None
    epsilon = float(np.asarray(eps[0]).reshape(-1)[0])
    node = helper.make_node(
        "AdaInSnake",
        [x, gain[0], shift[0], snake.input[1], snake.input[2]],
        list(snake.output),
        name=f"{snake.name}_adain",
        domain=SNAKE_DOMAIN,
        epsilon=epsilon,
    )
    return [node], [mean, centred, squared, variance, padded, root, normed, scaled, shifted]


# --- driver -------------------------------------------------------------------------------------------

_COUNTER = {
    "MatMulInteger": "matmul",
    "ConvInteger": "conv",
    "DynamicQuantizeLSTM": "lstm",
    "Sin": "snake",
    "Snake": "adain",
}


def _apply(
    model: onnx.ModelProto, rewrites: dict[str, Callable[[_Graph, NodeProto], _Rewrite | None]]
) -> ConversionReport:
    nodes = list(model.graph.node)
    g = _Graph(model.graph, nodes)
    report = ConversionReport()
    replacement: dict[int, list[NodeProto]] = {}
    for node in nodes:
        rewrite = rewrites.get(node.op_type)
        if rewrite is None:
            if node.op_type in _COUNTER:
                report.kept[node.op_type] = report.kept.get(node.op_type, 0) + 1
            continue
        result = rewrite(g, node)
        if result is None:
            report.kept[node.op_type] = report.kept.get(node.op_type, 0) + 1
            continue
        new_nodes, dead = result
        # New nodes read only tensors that existed before the original integer op, so putting them where
        # that op was keeps the node list topologically sorted.
        for d in dead:
            replacement[id(d)] = []
        replacement[id(node)] = new_nodes
        counter = _COUNTER[node.op_type]
        setattr(report, counter, getattr(report, counter) + 1)
    rebuilt: list[NodeProto] = []
    for node in nodes:
        if id(node) in replacement:
            rebuilt.extend(replacement[id(node)])
        else:
            copy = NodeProto()
            copy.CopyFrom(node)
            rebuilt.append(copy)
    replaced = len(nodes) - sum(1 for n in nodes if id(n) not in replacement)
    del model.graph.node[:]
    model.graph.node.extend(rebuilt)
    report.removed_nodes = replaced + _remove_dead(model.graph)
    declared = {o.domain for o in model.opset_import}
    for domain in ("com.microsoft", SNAKE_DOMAIN):  # the domains the rewrites write nodes in
        if domain not in declared and any(n.domain == domain for n in model.graph.node):
            model.opset_import.append(helper.make_opsetid(domain, 1))
    return report


def _delete_indices(container: Any, doomed: list[int]) -> int:
    """Delete entries of a protobuf repeated field in place (no copies of the big initializers)."""
    for i in reversed(doomed):
        del container[i]
    return len(doomed)


def _remove_dead(graph: onnx.GraphProto) -> int:
    """Drop nodes whose outputs nobody reads, then unused initializers and stale value_info."""
    removed = 0
    outputs = {o.name for o in graph.output}
    while True:
        used = set(outputs)
        for n in graph.node:
            used.update(i for i in n.input if i)
        gone = _delete_indices(
            graph.node, [i for i, n in enumerate(graph.node) if not any(o in used for o in n.output if o)]
        )
        if not gone:
            break
        removed += gone
    used_names = {i for n in graph.node for i in n.input} | outputs
    _delete_indices(
        graph.initializer, [i for i, t in enumerate(graph.initializer) if t.name not in used_names]
    )
    produced = {o for n in graph.node for o in n.output}
    _delete_indices(graph.value_info, [i for i, v in enumerate(graph.value_info) if v.name not in produced])
    return removed


def dequantize_model(model: onnx.ModelProto) -> ConversionReport:
    """Rewrite ``model`` in place to float32 weights; returns what was converted and what was kept."""
    return _apply(
        model,
        {"MatMulInteger": _float_matmul, "ConvInteger": _float_conv, "DynamicQuantizeLSTM": _float_lstm},
    )


def convs_to_int8_gemm(model: onnx.ModelProto) -> ConversionReport:
    """Rewrite 1-D ``ConvInteger`` patterns in place to im2col + uint8 x int8 ``MatMulIntegerToFloat``."""
    return _apply(model, {"ConvInteger": _gemm_conv})


def fuse_vocoder(model: onnx.ModelProto) -> ConversionReport:
    """Rewrite the vocoder's Snake activations, and the instance norms in front of them, to fused ops.

    The result only loads in a session that registered the kernel library (``engines.kernels``).
    """
    report = _apply(model, {"Sin": _snake})
    fused = _apply(model, {"Snake": _adain_snake})
    report.adain, report.removed_nodes = fused.adain, report.removed_nodes + fused.removed_nodes
    return report


def is_style_projection(name: str) -> bool:
    """A weight or bias of the decoder's AdaIN projections (style -> per-channel gain and bias): what
    decoder adaptation may change (``cloning/adapt/decoder.py``)."""
    return name.startswith("decoder.") and ".fc." in name


def is_style_bias(name: str) -> bool:
    """A bias of those projections: what a voice's default decoder adaptation changes."""
    return is_style_projection(name) and name.endswith(".bias")


def is_voice_input(name: str) -> bool:
    """What a voice may set per call in the fused graph: the style biases and the pitch factor."""
    return is_style_bias(name) or name == PITCH_SCALE


def add_pitch_scale(model: onnx.ModelProto) -> int:
    """Multiply the predicted F0 contour by the initializer ``PITCH_SCALE`` (1.0: the graph speaks as
    shipped) before the decoder reads it, so a voice can speak at its speaker's pitch. The contour drives
    both the decoder's F0 features and the vocoder's harmonic source, so the voice's pitch moves while the
    durations, the energy and the formants (the decoder's business) stay. Returns 1, or 0 where the graph
    has no such tensor or already has the factor."""
    graph = model.graph
    if any(t.name == PITCH_SCALE for t in graph.initializer):
        return 0
    made = [i for i, n in enumerate(graph.node) if F0_TENSOR in n.output]
    if not made:
        return 0
    scaled = F0_TENSOR + "_pitch_scaled"
    for node in graph.node:
        for k, name in enumerate(node.input):
            if name == F0_TENSOR:
                node.input[k] = scaled
    graph.initializer.append(numpy_helper.from_array(np.ones(1, dtype=np.float32), PITCH_SCALE))
    graph.node.insert(
        made[0] + 1, helper.make_node("Mul", [F0_TENSOR, PITCH_SCALE], [scaled], name="/voice/pitch")
    )
    return 1


def expose_style_biases(model: onnx.ModelProto) -> int:
    """List the decoder's style biases (and the pitch factor) as graph inputs too, so a session may
    override them per call.

    An initializer that is also a graph input is a default (ONNX IR >= 4): calls that do not feed it get
    the shipped value. onnxruntime then cannot constant-fold through them; they feed only the 58 small
    per-call projections (style -> gain, bias) and one multiplication, so nothing that matters is lost.
    Returns how many.
    """
    listed = {i.name for i in model.graph.input}
    added = 0
    for tensor in model.graph.initializer:
        if is_voice_input(tensor.name) and tensor.name not in listed:
            value = helper.make_tensor_value_info(tensor.name, tensor.data_type, tensor.dims)
            model.graph.input.append(value)
            added += 1
    return added


def expose_output(model: onnx.ModelProto, tensor: str) -> int:
    """Make an intermediate tensor a graph output too (1), if some node makes it and it is not one (0)."""
    if tensor in {o.name for o in model.graph.output} or not any(
        tensor in n.output for n in model.graph.node
    ):
        return 0
    model.graph.output.append(helper.make_tensor_value_info(tensor, TensorProto.FLOAT, None))
    return 1


def convert_file(
    src: Path, dst: Path, rewrite: Callable[[onnx.ModelProto], ConversionReport]
) -> ConversionReport:
    """Apply ``rewrite`` to the model at ``src`` and write ``dst`` atomically (temp file + rename)."""
    model = onnx.load(str(src))
    report = rewrite(model)
    tmp = dst.with_name(f".{dst.name}.{os.getpid()}.tmp")
    try:
        onnx.save(model, str(tmp))
        os.replace(tmp, dst)
    finally:
        tmp.unlink(missing_ok=True)
    return report
