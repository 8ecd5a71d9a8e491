"""Compute the decoder Jacobian the instant decoder step ships (``voices/instant_decoder.py``).

PyTorch Kokoro speaks the two sentences at the average preset style (the style basis' centre) with the
shipped decoder style biases; GE2E's differentiable front end embeds them as one utterance; one backward
pass per embedding dimension gives J = d embedding / d biases (256 x 37 k). Its leading singular
directions are written to ``src/voxvault/voices/data/decoder_jacobian.npz``.

    python bench/train_decoder_jacobian.py            # ~6-7 minutes on the 2-core CPU, ~12 GB of memory
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from voxvault.config import Settings
from voxvault.engines.kokoro_torch import KokoroTorchEngine
from voxvault.engines.registry import EngineRegistry
from voxvault.text import TextFrontend
from voxvault.voices.decoder_adaptation import adaptable_weights
from voxvault.voices.instant import StyleBasis
from voxvault.voices.instant_decoder import JACOBIAN_FILE, DecoderJacobian, bias_fingerprint
from voxvault.voices.style_gradient import spoken, token_lists

SENTENCES = (
    "The quick brown fox jumps over the lazy dog.",
    "Please call me back when you get this message.",
)
RANK = 64  # 98.6 % of J's energy; the step's sign agrees with the full J's on 99 % of the weight
STEP = 0.04  # each bias moves by this (Adam's first step is 0.03): measured best of 0.01-0.12
OUT = Path(__file__).resolve().parents[1] / "src" / "voxvault" / "voices" / "data" / JACOBIAN_FILE


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
    frontend = TextFrontend(max_phonemes=tts.max_phonemes)
    tokens = token_lists(tts, ["".join(p.phonemes for p in frontend.plan(s)) for s in SENTENCES])
    names = adaptable_weights(tts, "bias")
    constants = tts.graph.constants
    params = [constants[n].detach().clone().requires_grad_(True) for n in names]
    t0 = time.perf_counter()
    with torch.enable_grad():
        emb, _ = spoken(
            tts,
            encoder,  # type: ignore[arg-type]  # GE2EEncoder: embed_differentiable
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
    shipped = tts.shipped_biases()
    DecoderJacobian.save(
        args.out,
        np.stack(rows),
        names,
        [tuple(p.shape) for p in params],
        rank=args.rank,
        sentences=SENTENCES,
        step=args.step,
        fingerprint=bias_fingerprint(shipped, names),
    )
    print(f"wrote {args.out} ({args.out.stat().st_size} bytes) in {time.perf_counter() - t0:.0f}s")


if __name__ == "__main__":
    main()
