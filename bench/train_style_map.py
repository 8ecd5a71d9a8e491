"""Train the instant-clone style map (``src/voxvault/cloning/data/style_map.npz``).

Sample basis coordinates ``z`` around the shipped presets, let Kokoro speak a sentence with each, embed it
with GE2E and measure its pitch, then fit a ridge regression from those features back to ``z``.
Usage: ``python bench/train_style_map.py --samples 300 [--out PATH]`` (about 1 s per sample on 2 cores).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from voxvault.cloning.instant import StyleBasis, StyleMap
from voxvault.config import Settings
from voxvault.engines.registry import EngineRegistry
from voxvault.text import TextFrontend

SENTENCES = [
    "The rainbow divides white light into colors.",
    "She sells sea shells by the shore.",
    "Please call Stella and bring the things.",
    "We walked along the quiet river.",
    "A good cup of coffee helps a lot.",
    "The old library opens at nine.",
]
DEFAULT_OUT = Path(__file__).resolve().parents[1] / "src/voxvault/cloning/data/style_map.npz"


def sample_coords(rng: np.random.Generator, basis: StyleBasis, preset_coords: np.ndarray) -> np.ndarray:
    """Half blends of presets plus noise, half Gaussian draws inside the presets' spread."""
    if rng.random() < 0.5:
        weights = rng.dirichlet(np.full(len(preset_coords), 0.5))
        return (weights @ preset_coords + rng.normal(0, 0.35, basis.size)).astype(np.float32)
    return rng.normal(0, 0.9, basis.size).astype(np.float32)


def collect(args: argparse.Namespace) -> tuple[np.ndarray, np.ndarray, int]:
    """Synthesise, embed and measure ``args.samples`` sampled styles."""
    settings = Settings().prepare()
    engines = EngineRegistry(settings)
    tts, encoder = engines.tts(), engines.speaker()
    presets = tts.preset_styles()
    basis = StyleBasis.from_presets(presets)
    preset_coords = np.stack([basis.coords(presets[n]) for n in sorted(presets)])
    frontend = TextFrontend(max_phonemes=tts.max_phonemes)
    phonemes = [frontend.phonemes(s) for s in SENTENCES]
    rng = np.random.default_rng(args.seed)
    xs, zs = [], []
    t0 = time.perf_counter()
    for i in range(args.samples):
        z = sample_coords(rng, basis, preset_coords)
        audio = tts.synthesize(phonemes[i % len(phonemes)], basis.pack(z))
        emb = encoder.embed(audio, tts.sample_rate)
        xs.append(StyleMap.features(emb, audio, tts.sample_rate))
        zs.append(np.clip(z, -2.5, 2.5))
        if (i + 1) % 10 == 0:
            print(f"{i + 1}/{args.samples} samples, {time.perf_counter() - t0:.0f}s", flush=True)
    x, zt = np.stack(xs), np.stack(zs)
    if args.save_data:
        np.savez_compressed(args.save_data, x=x, z=zt)
    return x, zt, basis.size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--samples", type=int, default=300)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--save-data", type=Path, default=None, help="also keep the features/targets (npz)")
    parser.add_argument("--from-data", type=Path, default=None, help="refit from features saved earlier")
    args = parser.parse_args()

    if args.from_data is not None:
        with np.load(args.from_data) as saved:
            x, zt = saved["x"], saved["z"]
        basis_size = zt.shape[1]
    else:
        x, zt, basis_size = collect(args)
    final = StyleMap.fit_cv(x, zt)
    final.meta.update({"samples": float(len(x)), "basis_size": float(basis_size)})
    final.save(args.out)
    print(
        json.dumps(
            {"samples": len(x), **{k: round(v, 3) for k, v in final.meta.items()}, "out": str(args.out)}
        )
    )


if __name__ == "__main__":
    main()
