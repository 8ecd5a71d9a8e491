"""Run an ONNX graph with PyTorch operators: the Kokoro graph on CUDA, and with gradients.

Why not onnxruntime: the onnxruntime on the GPU machines is CPU-only, and onnxruntime has no autograd, which
style fine-tuning needs (gradient steps on the 256-d style instead of blind search). Why not a hand-written
copy of Kokoro's modules: the shipped graph *is* the model (an export with its own simplifications, for
example no random noise in the source module); executing that graph op by op keeps one source of truth,
and the result is checked against onnxruntime on the same input (``tests/engines/test_onnx_torch.py``).

The graph must be float (``onnx_float.dequantize_model`` makes one from the int8 graph). Every node becomes
a small closure over its attributes; running the graph walks the closures in order and frees each value
after its last use. Integer tensors (shapes, indices) stay on the CPU whatever the device, as shape
arithmetic on a GPU would only add synchronisation. Only the operators this project's graphs use are
implemented; an unknown one fails at load time, naming it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import torch
import torch.nn.functional as F
from onnx import helper, numpy_helper

Tensor = torch.Tensor
OpFn = Callable[..., Any]


class UnsupportedOperator(ValueError):
    """The graph holds an operator this interpreter does not implement."""


def _attrs(node: onnx.NodeProto) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for a in node.attribute:
        value = helper.get_attribute_value(a)
        if isinstance(value, bytes):
            value = value.decode()
        elif isinstance(value, onnx.TensorProto):
            value = numpy_helper.to_array(value)
        out[a.name] = value
    return out


def _ints(t: Tensor | None) -> list[int]:
    return [] if t is None else [int(v) for v in t.reshape(-1).tolist()]


def _same_device(*ts: Tensor) -> tuple[Tensor, ...]:
    """Move CPU operands next to the first non-CPU one (scalars and shapes live on the CPU)."""
    dev = next((t.device for t in ts if t.device.type != "cpu"), None)
    if dev is None:
        return ts
    return tuple(t.to(dev) for t in ts)


def _binary(fn: Callable[[Tensor, Tensor], Tensor]) -> OpFn:
    def op(a: Tensor, b: Tensor) -> Tensor:
        a, b = _same_device(a, b)
        return fn(a, b)

    return op


def _div(a: Tensor, b: Tensor) -> Tensor:
    a, b = _same_device(a, b)
    if a.is_floating_point() or b.is_floating_point():
        return a / b
    return torch.div(a, b, rounding_mode="trunc")


def _atan_div(y: Tensor, x: Tensor) -> Tensor:
    """``y / x`` where it feeds an ``Atan``: how exporters spell ``atan2``. ``0/0`` becomes 0 (atan2's value)
    and ``y/0`` an infinity of y's sign, with finite gradients everywhere, so silent frames of the source
    signal neither turn the audio into NaN nor poison a backward pass."""
    y, x = _same_device(y, x)
    zero = x == 0
    safe = torch.where(zero, torch.ones_like(x), x)
    edge = torch.where(y == 0, torch.zeros_like(y), torch.copysign(torch.full_like(y, math.inf), y))
    return torch.where(zero, edge, y / safe)


def _sqrt(x: Tensor) -> Tensor:
    """``sqrt``, with a finite gradient at 0 when one is needed (the STFT magnitude of silence)."""
    return torch.sqrt(x.clamp_min(1e-20) if x.requires_grad else x)


def _pow(a: Tensor, b: Tensor) -> Tensor:
    if b.numel() == 1 and float(b) == 2.0:
        return a * a
    a, b = _same_device(a, b)
    return torch.pow(a, b)


_DTYPES: dict[int, torch.dtype] = {
    onnx.TensorProto.FLOAT: torch.float32,
    onnx.TensorProto.INT64: torch.int64,
    onnx.TensorProto.INT32: torch.int32,
    onnx.TensorProto.BOOL: torch.bool,
    onnx.TensorProto.FLOAT16: torch.float16,
    onnx.TensorProto.UINT8: torch.uint8,
    onnx.TensorProto.INT8: torch.int8,
}


def _gather(axis: int) -> OpFn:
    def op(data: Tensor, idx: Tensor) -> Tensor:
        ax = axis % data.dim()
        idx = torch.where(idx < 0, idx + data.shape[ax], idx).to(data.device)
        out = data.index_select(ax, idx.reshape(-1))
        return out.reshape((*data.shape[:ax], *idx.shape, *data.shape[ax + 1 :]))

    return op


def _slice(
    data: Tensor, starts: Tensor, ends: Tensor, axes: Tensor | None = None, steps: Tensor | None = None
) -> Tensor:
    """ONNX Slice has NumPy's semantics, so Python's own ``slice.indices`` does the clamping."""
    s, e = _ints(starts), _ints(ends)
    ax = _ints(axes) or list(range(len(s)))
    st = _ints(steps) or [1] * len(s)
    out = data
    for a, b, c, d in zip(ax, s, e, st, strict=True):
        a %= data.dim()
        lo, hi, step = slice(b, c, d).indices(out.shape[a])
        if step == 1:
            out = out.narrow(a, lo, max(0, hi - lo))
        else:
            out = out.index_select(a, torch.arange(lo, hi, step, device=out.device))
    return out


def _reshape(x: Tensor, shape: Tensor) -> Tensor:
    dims = _ints(shape)
    dims = [x.shape[i] if d == 0 else d for i, d in enumerate(dims)]
    return x.reshape(dims)


def _unsqueeze(x: Tensor, axes: Tensor) -> Tensor:
    out_rank = x.dim() + axes.numel()
    for a in sorted(a % out_rank for a in _ints(axes)):
        x = x.unsqueeze(a)
    return x


def _squeeze(x: Tensor, axes: Tensor | None = None) -> Tensor:
    if axes is None:
        return x.squeeze()
    for a in sorted((a % x.dim() for a in _ints(axes)), reverse=True):
        x = x.squeeze(a)
    return x


def _expand(x: Tensor, shape: Tensor) -> Tensor:
    return x.expand(torch.broadcast_shapes(x.shape, tuple(_ints(shape))))


def _reduce(fn: Callable[..., Tensor], keepdims: int, noop: int) -> OpFn:
    def op(x: Tensor, axes: Tensor | None = None) -> Tensor:
        dims = _ints(axes)
        if not dims:
            if noop:
                return x
            dims = list(range(x.dim()))
        return fn(x, dim=dims, keepdim=bool(keepdims))

    return op


def _split(axis: int, num_outputs: int | None) -> OpFn:
    def op(x: Tensor, split: Tensor | None = None) -> tuple[Tensor, ...]:
        if split is not None and split.numel():
            return tuple(torch.split(x, _ints(split), dim=axis))
        parts = num_outputs or 1
        return tuple(torch.split(x, math.ceil(x.shape[axis] / parts), dim=axis))

    return op


def _conv(a: dict[str, Any]) -> OpFn:
    pads = list(a.get("pads", []))
    strides, dil, groups = list(a.get("strides", [1])), list(a.get("dilations", [1])), int(a.get("group", 1))
    if a.get("auto_pad", "NOTSET") not in ("NOTSET", ""):
        raise UnsupportedOperator("Conv auto_pad")

    def op(x: Tensor, w: Tensor, b: Tensor | None = None) -> Tensor:
        nd = x.dim() - 2
        p = pads or [0] * (2 * nd)
        if p[:nd] == p[nd:]:
            padding: Sequence[int] = p[:nd]
        else:  # asymmetric: pad explicitly (F.pad wants the last axis first)
            x = F.pad(x, [v for i in reversed(range(nd)) for v in (p[i], p[i + nd])])
            padding = [0] * nd
        fn = F.conv1d if nd == 1 else F.conv2d
        return fn(x, w, b, stride=strides, padding=padding, dilation=dil, groups=groups)

    return op


def _conv_transpose(a: dict[str, Any]) -> OpFn:
    pads = list(a.get("pads", [0, 0]))
    if pads[: len(pads) // 2] != pads[len(pads) // 2 :] or len(pads) != 2:
        raise UnsupportedOperator("ConvTranspose with asymmetric or 2-D padding")
    stride, groups = int(a.get("strides", [1])[0]), int(a.get("group", 1))
    out_pad, dil = int(a.get("output_padding", [0])[0]), int(a.get("dilations", [1])[0])

    def op(x: Tensor, w: Tensor, b: Tensor | None = None) -> Tensor:
        return F.conv_transpose1d(x, w, b, stride, pads[0], out_pad, groups, dil)

    return op


def _lstm(a: dict[str, Any]) -> OpFn:
    """ONNX LSTM (gates i, o, f, c) through torch's fused LSTM (gates i, f, g, o)."""
    if a.get("layout", 0) != 0 or a.get("input_forget", 0) or "activations" in a or "clip" in a:
        raise UnsupportedOperator("LSTM with layout/input_forget/activations/clip")
    hidden = int(a["hidden_size"])
    bidirectional = a.get("direction", "forward") == "bidirectional"
    if a.get("direction", "forward") == "reverse":
        raise UnsupportedOperator("LSTM direction=reverse")
    order = torch.cat([torch.arange(0, hidden), torch.arange(2 * hidden, 3 * hidden),
                       torch.arange(3 * hidden, 4 * hidden), torch.arange(hidden, 2 * hidden)])  # fmt: skip
    cache: dict[tuple[int, int, int, str], list[Tensor]] = {}

    def params(w: Tensor, r: Tensor, b: Tensor | None) -> list[Tensor]:
        key = (id(w), id(r), id(b), str(w.device))

        def reorder() -> list[Tensor]:
            flat: list[Tensor] = []
            for d in range(w.shape[0]):
                o = order.to(w.device)
                bias = b[d] if b is not None else torch.zeros(8 * hidden, device=w.device)
                flat += [w[d][o], r[d][o], bias[: 4 * hidden][o], bias[4 * hidden :][o]]
            return flat

        if w.requires_grad or r.requires_grad:  # weights being trained: no cache
            return reorder()
        if key not in cache:
            # normal tensors (not inference tensors), so the cache also serves passes that need autograd
            with torch.inference_mode(False), torch.no_grad():
                cache[key] = reorder()
        return cache[key]

    def op(
        x: Tensor,
        w: Tensor,
        r: Tensor,
        b: Tensor | None = None,
        seq_lens: Tensor | None = None,
        h0: Tensor | None = None,
        c0: Tensor | None = None,
    ) -> tuple[Tensor, Tensor, Tensor]:
        seq, batch = x.shape[0], x.shape[1]
        if seq_lens is not None and seq_lens.numel() and bool((seq_lens != seq).any()):
            raise UnsupportedOperator("LSTM with ragged sequence_lens")
        dirs = 2 if bidirectional else 1
        if h0 is None:
            h0 = x.new_zeros(dirs, batch, hidden)
        if c0 is None:
            c0 = x.new_zeros(dirs, batch, hidden)
        y, h, c = torch._VF.lstm(
            x, (h0.to(x.device), c0.to(x.device)), params(w, r, b), True, 1, 0.0, False, bidirectional, False
        )
        return y.reshape(seq, batch, dirs, hidden).permute(0, 2, 1, 3), h, c

    return op


def _resize(a: dict[str, Any]) -> OpFn:
    mode, ctm = a.get("mode", "nearest"), a.get("coordinate_transformation_mode", "half_pixel")
    if (mode, ctm) not in {("linear", "half_pixel"), ("nearest", "asymmetric")} or (
        mode == "nearest" and a.get("nearest_mode", "round_prefer_floor") != "floor"
    ):
        raise UnsupportedOperator(f"Resize mode={mode} coordinate_transformation_mode={ctm}")

    def op(
        x: Tensor, roi: Tensor | None = None, scales: Tensor | None = None, sizes: Tensor | None = None
    ) -> Tensor:
        nd = x.dim() - 2
        if sizes is not None and sizes.numel():
            size = _ints(sizes)[2:]
            kw: dict[str, Any] = {"size": size}
        else:
            sc = [float(v) for v in scales.reshape(-1).tolist()] if scales is not None else []
            if sc[:2] != [1.0, 1.0]:
                raise UnsupportedOperator("Resize over batch or channel axes")
            size = [int(math.floor(x.shape[2 + i] * sc[2 + i])) for i in range(nd)]
            kw = {"size": size}
        if mode == "nearest":
            return F.interpolate(x, mode="nearest", **kw)
        return F.interpolate(x, mode="linear" if nd == 1 else "bilinear", align_corners=False, **kw)

    return op


def _pad(mode: str) -> OpFn:
    def op(x: Tensor, pads: Tensor, value: Tensor | None = None, axes: Tensor | None = None) -> Tensor:
        p = _ints(pads)
        n = len(p) // 2
        ax = _ints(axes) or list(range(n))
        torch_pads: list[int] = []
        for i in sorted(range(n), key=lambda i: -(ax[i] % x.dim())):
            torch_pads += [p[i], p[i + n]]
        # F.pad pads from the last axis backwards; trailing zero pairs on leading axes are dropped.
        while torch_pads and torch_pads[-2:] == [0, 0]:
            torch_pads = torch_pads[:-2]
        if mode == "constant":
            return F.pad(x, torch_pads, value=float(value) if value is not None and value.numel() else 0.0)
        needed = len(torch_pads) // 2
        if x.dim() - needed < 1:
            raise UnsupportedOperator("Pad reflect over every axis")
        if x.dim() - needed == 1 and needed <= 2:  # F.pad reflect wants a batch axis and 1-2 spatial ones
            return F.pad(x.unsqueeze(0), torch_pads, mode=mode).squeeze(0)
        return F.pad(x, torch_pads, mode=mode)

    return op


def _stft(a: dict[str, Any]) -> OpFn:
    if not a.get("onesided", 1):
        raise UnsupportedOperator("two-sided STFT")

    def op(
        signal: Tensor, step: Tensor, window: Tensor | None = None, length: Tensor | None = None
    ) -> Tensor:
        if signal.dim() == 3:  # [batch, length, 1]; onnxruntime also takes a plain [batch, length]
            if signal.shape[-1] != 1:
                raise UnsupportedOperator("complex STFT input")
            signal = signal[..., 0]
        n = int(length) if length is not None and length.numel() else int(window.shape[0])  # type: ignore[union-attr]
        frames = signal.unfold(-1, n, int(step))
        if window is not None:
            frames = frames * window.to(frames.device)
        return torch.view_as_real(torch.fft.rfft(frames, dim=-1))

    return op


def _layer_norm(axis: int, eps: float) -> OpFn:
    def op(x: Tensor, scale: Tensor, bias: Tensor | None = None) -> Tensor:
        return F.layer_norm(x, x.shape[axis % x.dim() :], scale, bias, eps)

    return op


def _skip_layer_norm(eps: float) -> OpFn:
    def op(
        x: Tensor, skip: Tensor, gamma: Tensor, beta: Tensor | None = None, bias: Tensor | None = None
    ) -> Tensor:
        s = x + skip if bias is None else x + skip + bias
        return F.layer_norm(s, s.shape[-1:], gamma, beta, eps)

    return op


def _fused_matmul(a: dict[str, Any]) -> OpFn:
    if a.get("transBatchA", 0) or a.get("transBatchB", 0):
        raise UnsupportedOperator("FusedMatMul transBatch")
    alpha, ta, tb = float(a.get("alpha", 1.0)), int(a.get("transA", 0)), int(a.get("transB", 0))

    def op(x: Tensor, y: Tensor) -> Tensor:
        x = x.transpose(-1, -2) if ta else x
        y = y.transpose(-1, -2) if tb else y
        out = torch.matmul(x, y)
        return out * alpha if alpha != 1.0 else out

    return op


def _dequantize(axis: int) -> OpFn:
    def op(x: Tensor, scale: Tensor, zero: Tensor | None = None) -> Tensor:
        xf = x.to(torch.float32)
        if zero is not None:
            zf = zero.to(torch.float32)
            xf = xf - (
                zf.reshape([-1 if i == axis % x.dim() else 1 for i in range(x.dim())])
                if zf.numel() > 1
                else zf
            )
        s = (
            scale.reshape([-1 if i == axis % x.dim() else 1 for i in range(x.dim())])
            if scale.numel() > 1
            else scale
        )
        return xf * s.to(xf.device)

    return op


def _scatter_nd(data: Tensor, indices: Tensor, updates: Tensor) -> Tensor:
    data, updates = _same_device(data, updates)
    k = indices.shape[-1]
    idx = indices.reshape(-1, k).to(data.device)
    out = data.clone()
    out[tuple(idx.T)] = updates.reshape(-1, *data.shape[k:]).to(out.dtype)
    return out


def _constant_of_shape(a: dict[str, Any]) -> OpFn:
    value = a.get("value", np.zeros(1, dtype=np.float32))
    fill = torch.from_numpy(np.array(value).reshape(-1)[:1].copy())

    def op(shape: Tensor) -> Tensor:
        return fill.expand(*_ints(shape)).clone() if shape.numel() else fill.reshape(()).clone()

    return op


def _clip(x: Tensor, lo: Tensor | None = None, hi: Tensor | None = None) -> Tensor:
    return torch.clamp(
        x,
        None if lo is None or not lo.numel() else lo.item(),
        None if hi is None or not hi.numel() else hi.item(),
    )


def _where(c: Tensor, x: Tensor, y: Tensor) -> Tensor:
    c, x, y = _same_device(c, x, y)
    return torch.where(c, x, y)


def _cumsum(a: dict[str, Any]) -> OpFn:
    if a.get("exclusive", 0) or a.get("reverse", 0):
        raise UnsupportedOperator("CumSum exclusive/reverse")

    def op(x: Tensor, axis: Tensor) -> Tensor:
        return torch.cumsum(x, dim=int(axis))

    return op


def _range(start: Tensor, limit: Tensor, delta: Tensor) -> Tensor:
    if start.is_floating_point():
        return torch.arange(float(start), float(limit), float(delta), dtype=start.dtype)
    return torch.arange(int(start), int(limit), int(delta), dtype=start.dtype)


def _build(node: onnx.NodeProto) -> OpFn:
    op, a = node.op_type, _attrs(node)
    simple: dict[str, OpFn] = {
        "Add": _binary(torch.add),
        "Sub": _binary(torch.sub),
        "Mul": _binary(torch.mul),
        "Div": _div,
        "Pow": _pow,
        "Equal": _binary(torch.eq),
        "Greater": _binary(torch.gt),
        "Less": _binary(torch.lt),
        "GreaterOrEqual": _binary(torch.ge),
        "And": _binary(torch.logical_and),
        "MatMul": _binary(torch.matmul),
        "Where": _where,
        "Sqrt": _sqrt,
        "Sin": torch.sin,
        "Cos": torch.cos,
        "Atan": torch.atan,
        "Exp": torch.exp,
        "Tanh": torch.tanh,
        "Sigmoid": torch.sigmoid,
        "Floor": torch.floor,
        "Round": torch.round,
        "Unsqueeze": _unsqueeze,
        "Squeeze": _squeeze,
        "Reshape": _reshape,
        "Expand": _expand,
        "Slice": _slice,
        "Clip": _clip,
        "Range": _range,
        "ScatterND": _scatter_nd,
        "NonZero": lambda x: torch.nonzero(x).T.contiguous().cpu(),
    }
    if op in simple:
        return simple[op]
    if op == "Gather":
        return _gather(int(a.get("axis", 0)))
    if op == "Transpose":
        perm = list(a["perm"])
        return lambda x: x.permute(perm)
    if op == "Shape":
        start, end = int(a.get("start", 0)), a.get("end")
        return lambda x: torch.tensor(x.shape[start:end], dtype=torch.int64)
    if op == "Concat":
        axis = int(a["axis"])
        return lambda *xs: torch.cat(_same_device(*xs), dim=axis)
    if op == "Cast":
        dtype = _DTYPES[int(a["to"])]
        return lambda x: x.to(dtype)
    if op == "ReduceMean":
        return _reduce(torch.mean, int(a.get("keepdims", 1)), int(a.get("noop_with_empty_axes", 0)))
    if op == "ReduceSum":
        return _reduce(torch.sum, int(a.get("keepdims", 1)), int(a.get("noop_with_empty_axes", 0)))
    if op == "Split":
        return _split(int(a.get("axis", 0)), a.get("num_outputs", len(node.output)))
    if op == "Conv":
        return _conv(a)
    if op == "ConvTranspose":
        return _conv_transpose(a)
    if op == "LeakyRelu":
        slope = float(a.get("alpha", 0.01))
        return lambda x: F.leaky_relu(x, slope)
    if op == "Softmax":
        axis = int(a.get("axis", -1))
        return lambda x: torch.softmax(x, dim=axis)
    if op == "LayerNormalization":
        return _layer_norm(int(a.get("axis", -1)), float(a.get("epsilon", 1e-5)))
    if op == "SkipLayerNormalization":
        return _skip_layer_norm(float(a.get("epsilon", 1e-12)))
    if op == "FastGelu":
        return lambda x, bias=None: F.gelu(x if bias is None else x + bias, approximate="tanh")
    if op == "FusedMatMul":
        return _fused_matmul(a)
    if op == "ConstantOfShape":
        return _constant_of_shape(a)
    if op == "LSTM":
        return _lstm(a)
    if op == "Resize":
        return _resize(a)
    if op == "Pad":
        return _pad(a.get("mode", "constant"))
    if op == "STFT":
        return _stft(a)
    if op == "CumSum":
        return _cumsum(a)
    if op == "DequantizeLinear":
        return _dequantize(int(a.get("axis", 1)))
    raise UnsupportedOperator(f"ONNX operator {node.domain or 'ai.onnx'}.{op} is not implemented")


class TorchGraph:
    """An ONNX graph executed with PyTorch: ``TorchGraph(path, device)(feeds) -> outputs``.

    ``constants`` are the initializers (a call may override some by name); ``requires_grad`` on an input
    or an override makes the outputs differentiable with respect to it, as every operator used is a
    differentiable torch op (except the integer and rounding paths, which carry no gradient anywhere).
    """

    def __init__(self, model: onnx.ModelProto | str | Path, device: str | torch.device = "cpu") -> None:
        if not isinstance(model, onnx.ModelProto):
            model = onnx.load(str(model))
        self.device = torch.device(device)
        graph = model.graph
        self.input_names = [i.name for i in graph.input]
        self.output_names = [o.name for o in graph.output]
        self.constants: dict[str, Tensor] = {}
        for init in graph.initializer:
            arr = numpy_helper.to_array(init)
            t = torch.from_numpy(np.array(arr, copy=True))
            # float weights on the device; integer shapes and indices stay on the CPU
            self.constants[init.name] = t.to(self.device) if t.is_floating_point() else t
        consumers: dict[str, list[str]] = {}
        for node in graph.node:
            for name in node.input:
                consumers.setdefault(name, []).append(node.op_type)
        self._steps: list[tuple[OpFn, list[str], list[str], str]] = []
        for node in graph.node:
            fn = _build(node)
            if node.op_type == "Div" and consumers.get(node.output[0]) == ["Atan"]:
                fn = _atan_div
            self._steps.append((fn, list(node.input), list(node.output), node.name or node.op_type))
        last_use: dict[str, int] = {}
        for i, (_, ins, _, _) in enumerate(self._steps):
            for name in ins:
                if name:
                    last_use[name] = i
        keep = set(self.output_names) | set(self.constants)
        self._free_after: list[list[str]] = [[] for _ in self._steps]
        for name, i in last_use.items():
            if name not in keep:
                self._free_after[i].append(name)

    def __call__(
        self, feeds: Mapping[str, Tensor | np.ndarray], overrides: Mapping[str, Tensor] | None = None
    ) -> list[Tensor]:
        """Run the graph; ``overrides`` replaces initializers by name (adapted weights, for example)."""
        values: dict[str, Tensor] = dict(self.constants)
        if overrides:
            unknown = set(overrides) - set(self.constants)
            if unknown:
                raise KeyError(f"no initializer named {sorted(unknown)[0]!r}")
            values.update(overrides)
        for name in self.input_names:
            if name not in feeds:
                raise KeyError(f"missing graph input {name!r}")
            v = feeds[name]
            t = v if isinstance(v, Tensor) else torch.from_numpy(np.asarray(v))
            values[name] = t.to(self.device) if t.is_floating_point() else t.cpu()
        for (fn, ins, outs, _name), free in zip(self._steps, self._free_after, strict=True):
            args = [values[i] if i else None for i in ins]
            while args and args[-1] is None:
                args.pop()
            try:
                result = fn(*args)
            except UnsupportedOperator:
                raise
            except Exception as exc:
                raise RuntimeError(f"node {_name}: {exc}") from exc
            if isinstance(result, tuple):
                for o, r in zip(outs, result, strict=False):
                    if o:
                        values[o] = r
            else:
                values[outs[0]] = result
            for name in free:
                values.pop(name, None)
        return [values[o] for o in self.output_names]
