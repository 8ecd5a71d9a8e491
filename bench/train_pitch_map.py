"""Train the pitch map pitch matching uses (``cloning/data/pitch_map.npz``, ``cloning/pitch.py``).

A voice's pitch factor is the speaker's median F0 over its clone's. The clone's is predicted from the
instant style ``z`` instead of spoken: this script samples ``z`` as ``bench/train_clone_embedding_map.py``
does (the instant styles real speakers' clips get, each played at five speeds; random styles around the
presets; styles near the real ones), speaks the instant decoder's two sentences at pitch factor 1, measures
their median F0 with the tracker enrollment uses for the speaker, and fits a ridge regression from
``[z, z_i z_j, 1]`` to its log, the penalty chosen by cross-validation on the real and near-real styles.

    python bench/train_pitch_map.py --clips /tmp/zv/de --samples 300 --near-real 150   # ~1.3 s each

Samples are saved to ``--data`` every ten (a stopped run resumes; ``--fit-only`` refits).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from train_clone_embedding_map import (  # the same styles as the clone embedding map (bench/)
    RANDOM,
    SPEEDS,
    sampling_args,
    speaker_coords,
    style_plan,
)

from voxvault.cloning.clone_embedding import basis_fingerprint
from voxvault.cloning.instant import StyleBasis
from voxvault.cloning.instant_decoder import DecoderJacobian
from voxvault.cloning.pitch import PITCH_MAP_FILE, PitchMap, median_f0
from voxvault.config import Settings
from voxvault.engines.registry import EngineRegistry
from voxvault.engines.speaker import join_sentences
from voxvault.text import TextFrontend

DEFAULT_OUT = Path(__file__).resolve().parents[1] / "src/voxvault/voices/data" / PITCH_MAP_FILE


def collect(args: argparse.Namespace) -> None:
    engines = EngineRegistry(Settings().prepare())
    tts, encoder = engines.tts(), engines.speaker()
    presets = tts.preset_styles()
    basis = StyleBasis.from_presets(presets)
    preset_coords = np.stack([basis.coords(presets[n]) for n in sorted(presets)])
    frontend = TextFrontend(max_phonemes=tts.max_phonemes)
    phonemes = [frontend.phonemes(s) for s in DecoderJacobian.load().sentences]
    zs: list[np.ndarray] = []
    logs: list[float] = []
    if args.data.exists():
        with np.load(args.data) as saved:
            zs, logs = list(saved["z"]), list(saved["log_f0"])
    real = [z for z, _, _ in speaker_coords(args.clips, basis, encoder, SPEEDS)] if args.clips else []
    plan, _, kinds = style_plan(real, args, basis, preset_coords, np.random.default_rng(args.seed))
    t0 = time.perf_counter()
    for i, z in enumerate(plan[len(zs) :], start=len(zs)):
        pack = basis.pack(z)
        speech = join_sentences([tts.synthesize(p, pack) for p in phonemes], tts.sample_rate)
        f0 = median_f0(speech, tts.sample_rate)
        zs.append(np.asarray(z, np.float32))
        logs.append(float(np.log(f0)) if f0 is not None else float("nan"))
        if (i + 1) % 10 == 0 or i + 1 == len(plan):
            np.savez(args.data, z=np.stack(zs), log_f0=np.array(logs), kind=kinds[: len(zs)])
            print(f"{i + 1}/{len(plan)} samples, {time.perf_counter() - t0:.0f}s", flush=True)


def fit(args: argparse.Namespace) -> None:
    with np.load(args.data) as saved:
        z, log_f0, kind = saved["z"].astype(np.float64), saved["log_f0"], saved["kind"]
    ok = np.isfinite(log_f0)  # a style whose speech had too few voiced frames to measure
    fitted, report = PitchMap.fit_cv(z[ok], log_f0[ok], judged=kind[ok] != RANDOM)
    engines = EngineRegistry(Settings().prepare())
    basis = StyleBasis.from_presets(engines.tts().preset_styles())
    fitted.with_fingerprint(basis_fingerprint(basis)).save(args.out)
    print(
        json.dumps({"samples": int(ok.sum()), "unmeasured": int((~ok).sum()), **report, "out": str(args.out)})
    )


def main() -> None:
    args = sampling_args(
        __doc__.splitlines()[0],
        samples=300,
        near_real=150,
        seed=13,
        data="pitch_samples.npz",
        out=DEFAULT_OUT,
    )
    if not args.fit_only:
        collect(args)
    fit(args)


if __name__ == "__main__":
    main()
