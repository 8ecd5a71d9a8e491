"""Compute the decoder Jacobian the instant decoder step ships (``cloning/instant_decoder.py``).

PyTorch Kokoro speaks two sentences at the average preset style (the style basis' centre) with the shipped
decoder style biases; GE2E's differentiable front end embeds them as one utterance; one backward pass per
embedding dimension gives J = d embedding / d biases (256 x 37 k). That is done for two pairs of sentences
and averaged (measured: the same held-out similarity as one pair, lower WER), and its leading singular
directions are written to ``src/voxvault/cloning/data/decoder_jacobian.npz``. Enrollment speaks the first
pair to measure where the clone stands.

    python bench/train_decoder_jacobian.py            # ~13 minutes on the 2-core CPU, ~12 GB of memory
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from voxvault.cloning.adapt.decoder import adaptable_weights
from voxvault.cloning.adapt.gradient import spoken, token_lists
from voxvault.cloning.instant import StyleBasis
from voxvault.cloning.instant_decoder import JACOBIAN_FILE, DecoderJacobian, bias_fingerprint
from voxvault.config import Settings
from voxvault.engines.kokoro_torch import KokoroTorchEngine
from voxvault.engines.registry import EngineRegistry
from voxvault.text import TextFrontend

SENTENCE_PAIRS = (
    ("The quick brown fox jumps over the lazy dog.", "Please call me back when you get this message."),
    (
        "We will meet at the station at half past nine.",
        "She sells fresh fruit and vegetables at the market on Sunday mornings.",
    ),
)
RANK = 64  # 98.6 % of J's energy; the step's sign agrees with the full J's on 99 % of the weight
STEP = 0.04  # each bias moves by this (Adam's first step is 0.03): measured best of 0.01-0.12
OUT = Path(__file__).resolve().parents[1] / "src" / "voxvault" / "voices" / "data" / JACOBIAN_FILE


def jacobian(
    tts: KokoroTorchEngine, encoder: Any, pack: np.ndarray, sentences: tuple[str, ...], names: list[str]
) -> np.ndarray:
    """d GE2E(sentences spoken in ``pack``) / d biases, one backward pass per embedding dimension."""
    frontend = TextFrontend(max_phonemes=tts.max_phonemes)
    tokens = token_lists(tts, [frontend.phonemes(s) for s in sentences])
    constants = tts.graph.constants
    params = [constants[n].detach().clone().requires_grad_(True) for n in names]
    t0 = time.perf_counter()
    with torch.enable_grad():
        emb, _ = spoken(
            tts,
            encoder,
            tokens,
            lambda n: torch.from_numpy(pack[min(n, len(pack)) - 1]),
            keep_seconds=0.0,
            weights=dict(zip(names, params, strict=True)),
        )
        rows = []
        for k in range(emb.shape[0]):
            grads = torch.autograd.grad(emb[k], params, retain_graph=True, allow_unused=True)
            flat = [
                (g if g is not None else torch.zeros_like(p)).reshape(-1)
                for g, p in zip(grads, params, strict=True)
            ]
            rows.append(torch.cat(flat).numpy())
            if k % 32 == 0:
                print(f"row {k}/{emb.shape[0]} after {time.perf_counter() - t0:.0f}s", flush=True)
    return np.stack(rows).astype(np.float64)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--rank", type=int, default=RANK)
    parser.add_argument("--step", type=float, default=STEP)
    args = parser.parse_args()

    settings = Settings().prepare()
    encoder = EngineRegistry(settings).speaker()
    tts = KokoroTorchEngine(settings.resolved_cache_dir)
    basis = StyleBasis.from_presets(tts.preset_styles())
    pack = basis.pack(np.zeros(basis.size))
    names = adaptable_weights(tts, "bias")
    t0 = time.perf_counter()
    mean = sum(jacobian(tts, encoder, pack, pair, names) for pair in SENTENCE_PAIRS) / len(SENTENCE_PAIRS)
    constants = tts.graph.constants
    DecoderJacobian.save(
        args.out,
        np.asarray(mean),
        names,
        [tuple(constants[n].shape) for n in names],
        rank=args.rank,
        sentences=SENTENCE_PAIRS[0],
        step=args.step,
        fingerprint=bias_fingerprint(tts.shipped_biases(), names),
    )
    print(f"wrote {args.out} ({args.out.stat().st_size} bytes) in {time.perf_counter() - t0:.0f}s")


if __name__ == "__main__":
    main()
