"""Kokoro-82M on PyTorch: the CUDA path, and a differentiable copy of the model for style fine-tuning.

Same files and same interface as :class:`~voxvault.engines.kokoro.KokoroEngine` (it is a subclass): the
shipped int8 graph is joined and verified, rewritten once to float32 with dequantised weights
(``kokoro-v1.0.float32.onnx``), and that graph is executed by :class:`~voxvault.engines.onnx_torch.TorchGraph`
on ``device`` (``cpu`` or ``cuda``). No weights come from anywhere else.

On this project's 2-core CPU it is slower than onnxruntime's int8 kernels (``docs/benchmarks.md``), so the
CPU default stays the onnxruntime engine; this one is chosen with ``VOXVAULT_TTS_ENGINE=kokoro-torch`` and
``VOXVAULT_DEVICE=cuda`` on a GPU machine (onnxruntime there has no CUDA provider), and used directly by
the gradient fine-tuning path (:meth:`forward`, which keeps the autograd graph). Voices whose decoder was
adapted (``cloning/adapt/decoder.py``) speak through it with their own weights per call
(:meth:`synthesize_adapted`).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray

from voxvault.engines.base import STYLE_DIM, AdaptedWeights, FloatArray, TimedSpeech
from voxvault.engines.kokoro import KokoroEngine
from voxvault.engines.onnx_torch import TorchGraph
from voxvault.errors import VoxError

logger = logging.getLogger(__name__)


class KokoroTorchEngine(KokoroEngine):
    """``TTSEngine`` running the dequantised Kokoro graph with PyTorch on ``device``."""

    name = "kokoro-torch"

    def __init__(self, cache_dir: Path, device: str = "cpu", threads: int = 0) -> None:
        try:
            self.device = torch.device(device)
        except RuntimeError as exc:
            raise VoxError("bad_device", f"unknown torch device {device!r}", 500) from exc
        if self.device.type == "cuda" and not torch.cuda.is_available():
            raise VoxError("device_unavailable", "VOXVAULT_DEVICE=cuda but PyTorch sees no CUDA device", 500)
        self._lock = threading.Lock()  # torch CPU ops already use every core; one forward at a time
        super().__init__(cache_dir, precision="float", threads=threads, kernels="off")
        if self.device.type == "cpu":
            torch.set_num_threads(self.threads)

    def _session_for(self, path: Path, kernel_library: Path | None = None) -> TorchGraph:
        return TorchGraph(path, self.device)

    def _run(
        self, feeds: dict[str, NDArray[Any]], weights: Mapping[str, torch.Tensor] | None = None
    ) -> list[NDArray[Any]]:
        with self._lock, torch.inference_mode():
            out = self._session(feeds, weights)[0]
        return [np.asarray(out.detach().float().cpu().numpy())]

    @property
    def graph(self) -> TorchGraph:
        graph: TorchGraph = self._session
        return graph

    def speaks(self, adapted: AdaptedWeights) -> bool:
        """Any weights of the graph (a misfit is refused by ``synthesize_adapted``)."""
        return True

    def shipped_biases(self) -> dict[str, NDArray[np.float32]]:
        """The decoder's style biases as shipped (what decoder adaptation changes by default)."""
        from voxvault.engines.onnx_float import is_style_bias

        return {
            n: t.detach().float().cpu().numpy() for n, t in self.graph.constants.items() if is_style_bias(n)
        }

    def synthesize_adapted(
        self, phonemes: str, style: FloatArray, speed: float, adapted: AdaptedWeights
    ) -> FloatArray:
        """Speak with a voice's adapted weights for this call only (other voices are unaffected)."""
        return self.synthesize_timed(phonemes, style, speed, adapted).audio

    def synthesize_timed(
        self, phonemes: str, style: FloatArray, speed: float = 1.0, adapted: AdaptedWeights | None = None
    ) -> TimedSpeech:
        """As onnxruntime Kokoro's; this graph gives no durations, so ``word_spans`` is None."""
        weights = self.adapted_tensors(adapted) if adapted is not None else None
        return self._synthesize(phonemes, style, speed, lambda feeds: self._run(feeds, weights))

    def adapted_tensors(self, adapted: AdaptedWeights) -> dict[str, torch.Tensor]:
        """Shipped value + delta for each adapted weight, on the device.

        Built per call (cheap: the default bias deltas are 37 k numbers, all weights 4.8 M) rather than cached
        here: the decrypted deltas live in one place (the voice registry's cache), which erasing the voice
        empties.
        """
        constants = self.graph.constants
        out: dict[str, torch.Tensor] = {}
        for name, delta in adapted.deltas.items():
            shipped = constants.get(name)
            if shipped is None or not shipped.is_floating_point() or tuple(shipped.shape) != delta.shape:
                raise VoxError(
                    "adapted_weights_mismatch",
                    "the voice's adapted weights do not fit this model; adapt the voice again",
                    409,
                )
            change = torch.from_numpy(np.asarray(delta, dtype=np.float32)).to(shipped.device)
            out[name] = shipped + change
        return out

    def forward(
        self,
        tokens: Sequence[int],
        style: torch.Tensor,
        speed: float = 1.0,
        weights: Mapping[str, torch.Tensor] | None = None,
    ) -> torch.Tensor:
        """Audio (1-D tensor, 24 kHz, untrimmed) for ``tokens`` in ``style`` (256,), keeping autograd.

        Gradients flow to ``style`` through the prosody predictor and the decoder; token durations are
        rounded inside the model, so they carry none (as in any framework).
        """
        if style.shape[-1] != STYLE_DIM:
            raise VoxError("bad_style", f"style must end in {STYLE_DIM} values", shape=list(style.shape))
        if not tokens or len(tokens) > self.max_phonemes:
            raise VoxError("bad_phonemes", f"need 1..{self.max_phonemes} known phonemes", got=len(tokens))
        feeds = {
            "tokens": torch.tensor([[0, *tokens, 0]], dtype=torch.int64),
            "style": style.reshape(1, STYLE_DIM).to(self.device, torch.float32),
            "speed": torch.tensor([speed], dtype=torch.float32),
        }
        return self._session(feeds, weights)[0].reshape(-1)
