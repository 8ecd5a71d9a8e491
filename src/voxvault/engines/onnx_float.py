"""Turn a dynamically quantised (int8) ONNX graph back into a float32 graph.

Why: the shipped Kokoro graph is int8 with *dynamic* activation quantisation. On CPU the per-call
``DynamicQuantizeLinear`` passes and ``ConvInteger`` (which has no fast MLAS path for 1-D convolutions
over long audio-rate tensors) cost far more than they save; float ``Conv``/``MatMul`` with the weights
dequantised once is several times faster and numerically closer to the original fp32 model.

Rewritten patterns (as laid out by ``onnxruntime.quantization.quantize_dynamic``):

* ``DynamicQuantizeLinear(x) -> MatMulInteger(xq, Wq, xzp, wzp) -> Cast -> Mul(xs * ws)``
  becomes ``MatMul(x, (Wq - wzp) * ws)``.
* ``DynamicQuantizeLinear(x) -> ConvInteger(...) [-> Add(quantised bias)] -> Cast -> Mul(xs * ws)``
  becomes ``Conv(x, (Wq - wzp) * ws, bias)`` with the original float bias.
* ``DynamicQuantizeLSTM`` (com.microsoft) becomes a standard ``LSTM`` with dequantised, transposed weights.

Anything that does not match exactly is left as it is (and counted), so the result always runs.
Nodes that become unused are removed, as are unused initializers.
"""

from __future__ import annotations

import os
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx
from numpy.typing import NDArray
from onnx import NodeProto, TensorProto, helper, numpy_helper


@dataclass
class ConversionReport:
    """What the rewrite did, for logs and benchmarks."""

    matmul: int = 0
    conv: int = 0
    lstm: int = 0
    kept_quantised: dict[str, int] = field(default_factory=dict)
    removed_nodes: int = 0

    @property
    def converted(self) -> int:
        return self.matmul + self.conv + self.lstm


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
        self._dequantised: dict[tuple[str, ...], str] = {}

    def array(self, name: str) -> NDArray[np.generic] | None:
        if name not in self.inits:
            return None
        if name not in self._arrays:
            self._arrays[name] = numpy_helper.to_array(self.inits[name])
        return self._arrays[name]

    def only_consumer(self, name: str, op_type: str) -> NodeProto | None:
        nodes = self.consumers.get(name, [])
        return nodes[0] if len(nodes) == 1 and nodes[0].op_type == op_type else None

    def add_initializer(self, key: tuple[str, ...], name: str, value: NDArray[np.float32]) -> str:
        """Add a float initializer once per distinct source (shared ALBERT weights stay shared)."""
        existing = self._dequantised.get(key)
        if existing is not None:
            return existing
        unique = name
        suffix = 1
        while unique in self.inits or unique in self.producer:
            unique = f"{name}_{suffix}"
            suffix += 1
        tensor = numpy_helper.from_array(np.ascontiguousarray(value, dtype=np.float32), unique)
        self.graph.initializer.append(tensor)
        self.inits[unique] = tensor
        self._dequantised[key] = unique
        return unique


def _dynamic_quant_source(g: _Graph, quantised_input: str, zero_point_input: str) -> tuple[str, str] | None:
    """For ``DynamicQuantizeLinear(x)`` feeding a node, return (x, x_scale)."""
    dql = g.producer.get(quantised_input)
    if dql is None or dql.op_type != "DynamicQuantizeLinear":
        return None
    if dql.output[0] != quantised_input or dql.output[2] != zero_point_input:
        return None
    return dql.input[0], dql.output[1]


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


def _cast_then_scale(g: _Graph, integer_output: str, act_scale: str) -> tuple[NodeProto, NodeProto, NDArray[np.float32]] | None:
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


def _zero_point(g: _Graph, node: NodeProto, index: int) -> NDArray[np.float32] | None:
    if len(node.input) <= index or not node.input[index]:
        return np.zeros((), np.float32)
    arr = g.array(node.input[index])
    return None if arr is None else arr.astype(np.float32)


def _per_channel(values: NDArray[np.float32], ndim: int, axis: int) -> NDArray[np.float32]:
    """Shape a scalar or 1-D per-channel parameter to broadcast along ``axis`` of an ``ndim`` tensor."""
    if values.size == 1:
        return values.reshape(())
    shape = [1] * ndim
    shape[axis] = values.size
    return values.reshape(shape)


def _convert_matmul(g: _Graph, node: NodeProto) -> tuple[NodeProto, list[NodeProto]] | None:
    src = _dynamic_quant_source(g, node.input[0], node.input[2] if len(node.input) > 2 else "")
    weight = g.array(node.input[1])
    zero_point = _zero_point(g, node, 3)
    if src is None or weight is None or weight.ndim != 2 or zero_point is None:
        return None
    x, act_scale = src
    tail = _cast_then_scale(g, node.output[0], act_scale)
    if tail is None:
        return None
    cast, mul, scale = tail
    # Weight is [K, N]; per-channel parameters run along N (the output columns).
    w = (weight.astype(np.float32) - _per_channel(zero_point, 2, 1)) * _per_channel(scale, 2, 1)
    key = ("matmul", node.input[1], node.input[3] if len(node.input) > 3 else "", scale.tobytes().hex())
    w_name = g.add_initializer(key, node.input[1].removesuffix("_quantized") + "_float", w)
    new = helper.make_node("MatMul", [x, w_name], [mul.output[0]], name=node.name.removesuffix("_quant"))
    return new, [node, cast, mul]


def _quantised_bias(g: _Graph, bias_sum: str, act_scale: str) -> str | None:
    """Follow ``Reshape <- Cast <- Floor <- Div(bias, scale)`` back to the original float bias."""
    name = bias_sum
    for _ in range(6):
        node = g.producer.get(name)
        if node is None:
            return None
        if node.op_type == "Div":
            bias = node.input[0]
            return bias if g.array(bias) is not None else None
        if node.op_type not in {"Reshape", "Cast", "Floor", "Round"}:
            return None
        name = node.input[0]
    return None


def _convert_conv(g: _Graph, node: NodeProto) -> tuple[NodeProto, list[NodeProto]] | None:
    src = _dynamic_quant_source(g, node.input[0], node.input[2] if len(node.input) > 2 else "")
    weight = g.array(node.input[1])
    zero_point = _zero_point(g, node, 3)
    if src is None or weight is None or weight.ndim < 3 or zero_point is None:
        return None
    x, act_scale = src
    dead: list[NodeProto] = [node]
    integer_out = node.output[0]
    bias: str | None = None
    add = g.only_consumer(integer_out, "Add")
    if add is not None:
        other = [i for i in add.input if i != integer_out]
        bias = _quantised_bias(g, other[0], act_scale) if len(other) == 1 else None
        if bias is None:
            return None
        dead.append(add)
        integer_out = add.output[0]
    tail = _cast_then_scale(g, integer_out, act_scale)
    if tail is None:
        return None
    cast, mul, scale = tail
    dead += [cast, mul]
    # Weight is [O, I/group, *kernel]; per-channel parameters run along O.
    w = (weight.astype(np.float32) - _per_channel(zero_point, weight.ndim, 0)) * _per_channel(
        scale, weight.ndim, 0
    )
    key = ("conv", node.input[1], node.input[3] if len(node.input) > 3 else "", scale.tobytes().hex())
    w_name = g.add_initializer(key, node.input[1].removesuffix("_quantized") + "_float", w)
    inputs = [x, w_name] + ([bias] if bias else [])
    new = helper.make_node("Conv", inputs, [mul.output[0]], name=node.name.removesuffix("_quant"))
    new.attribute.extend(node.attribute)
    return new, dead


def _convert_lstm(g: _Graph, node: NodeProto) -> tuple[NodeProto, list[NodeProto]] | None:
    """``DynamicQuantizeLSTM`` stores W as [D, input, 4H] int8; ONNX ``LSTM`` wants [D, 4H, input] float."""
    inputs = list(node.input) + [""] * (12 - len(node.input))
    floats: list[str] = []
    for w_idx, s_idx, z_idx, label in ((1, 8, 9, "W"), (2, 10, 11, "R")):
        weight, scale, zp = g.array(inputs[w_idx]), g.array(inputs[s_idx]), g.array(inputs[z_idx])
        if weight is None or scale is None or weight.ndim != 3:
            return None
        zp_f = np.zeros((), np.float32) if zp is None else zp.astype(np.float32)
        d = weight.shape[0]
        # Per-direction ([D]) or per-direction-per-column ([D, 4H]) parameters.
        s = scale.astype(np.float32).reshape(d, 1, -1)
        z = zp_f.reshape(d, 1, -1) if zp_f.size > 1 else zp_f
        w = ((weight.astype(np.float32) - z) * s).transpose(0, 2, 1)
        key = ("lstm", inputs[w_idx], inputs[s_idx], inputs[z_idx])
        floats.append(g.add_initializer(key, f"{inputs[w_idx].removesuffix('_quantized')}_{label}_float", w))
    new_inputs = [inputs[0], floats[0], floats[1], *inputs[3:8]]
    while new_inputs and not new_inputs[-1]:
        new_inputs.pop()
    new = helper.make_node("LSTM", new_inputs, list(node.output), name=node.name.removesuffix("_quant"))
    new.attribute.extend(node.attribute)
    return new, [node]


def _remove_dead(graph: onnx.GraphProto) -> int:
    """Drop nodes whose outputs nobody reads, then unused initializers and stale value_info."""
    removed = 0
    outputs = {o.name for o in graph.output}
    while True:
        used = set(outputs)
        for n in graph.node:
            used.update(i for i in n.input if i)
        alive = [n for n in graph.node if any(o in used for o in n.output if o)]
        if len(alive) == len(graph.node):
            break
        removed += len(graph.node) - len(alive)
        del graph.node[:]
        graph.node.extend(alive)
    used_inits = {i for n in graph.node for i in n.input}
    kept_inits = [t for t in graph.initializer if t.name in used_inits or t.name in outputs]
    del graph.initializer[:]
    graph.initializer.extend(kept_inits)
    produced = {o for n in graph.node for o in n.output}
    kept_info = [v for v in graph.value_info if v.name in produced]
    del graph.value_info[:]
    graph.value_info.extend(kept_info)
    return removed


_CONVERTERS = {
    "MatMulInteger": _convert_matmul,
    "ConvInteger": _convert_conv,
    "DynamicQuantizeLSTM": _convert_lstm,
}
_COUNTERS = {"MatMulInteger": "matmul", "ConvInteger": "conv", "DynamicQuantizeLSTM": "lstm"}


def dequantize_model(model: onnx.ModelProto) -> ConversionReport:
    """Rewrite ``model`` in place to float32 weights; returns what was converted and what was kept."""
    nodes = list(model.graph.node)
    g = _Graph(model.graph, nodes)
    report = ConversionReport()
    replacements: dict[int, NodeProto | None] = {}
    for node in nodes:
        convert = _CONVERTERS.get(node.op_type)
        if convert is None:
            continue
        result = convert(g, node)
        if result is None:
            report.kept_quantised[node.op_type] = report.kept_quantised.get(node.op_type, 0) + 1
            continue
        new, dead = result
        # The new node reads only tensors that existed before the original integer op, so putting it
        # where that op was keeps the node list topologically sorted.
        for d in dead:
            replacements[id(d)] = None
        replacements[id(node)] = new
        setattr(report, _COUNTERS[node.op_type], getattr(report, _COUNTERS[node.op_type]) + 1)
    rebuilt: list[NodeProto] = []
    for node in nodes:
        if id(node) not in replacements:
            copy = NodeProto()
            copy.CopyFrom(node)
            rebuilt.append(copy)
        elif (new_node := replacements[id(node)]) is not None:
            rebuilt.append(new_node)
    del model.graph.node[:]
    model.graph.node.extend(rebuilt)
    report.removed_nodes = len(nodes) - len(rebuilt) + _remove_dead(model.graph)
    return report


def convert_file(src: Path, dst: Path) -> ConversionReport:
    """Convert ``src`` (int8 ONNX) to ``dst`` (float32 ONNX), written to a temp file and renamed atomically."""
    model = onnx.load(str(src))
    report = dequantize_model(model)
    tmp = dst.with_name(f".{dst.name}.{os.getpid()}.tmp")
    try:
        onnx.save(model, str(tmp))
        os.replace(tmp, dst)
    finally:
        tmp.unlink(missing_ok=True)
    return report
