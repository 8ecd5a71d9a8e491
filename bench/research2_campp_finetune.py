"""Issue 22 research round 2 (a): decoder adaptation with CAM++ as the objective, GE2E as the judge.

For each clip (enrol on the first 60 %, judge on the rest, as ``voxvault eval clone``) the instant clone
enrollment makes is fine-tuned from its own deltas (the adapt job's decoder method: Adam on the decoder's 58
style biases, the two fine-tuning sentences, the best step by similarity + 0.3 recall - 0.05 drift) in
variants that differ only in the encoder of the similarity term:

- ``ft_ge2e``: GE2E, as the adapt job does today (the baseline; CAM++ is then the honest judge);
- ``ft_campp``: CAM++ alone (GE2E is then the honest judge);
- ``ft_campp_aug``: CAM++ alone, hearing each step's speech through a random degradation (noise at 15-30 dB
  SNR, +-6 dB gain, a smooth +-3 dB EQ, and half the time an Opus 24 kb/s round trip passed straight
  through), so the fit has to hold for many versions of the sound, not one (against an adversarial fit).

Every variant starts from the same instant deltas and runs the same number of steps; each is judged as the
service speaks it (onnxruntime with the fused graph) on the two held-out sentences by both judges, plus
PocketSphinx WER. The instant clone itself is judged in the same run (``instant``).

    python bench/research2_campp_finetune.py --speakers en_andrew,en_ashley \
        --iterations 8 --out bench/results/research2_test.json
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from voxvault.audio.io import decode, encode
from voxvault.cloning.adapt.decoder import DecoderTuner, adapt_decoder
from voxvault.cloning.evaluation import (
    FINETUNE_SENTENCES,
    CloneEvalOptions,
    CloneEvaluator,
    Target,
    f0_stats,
    speaker_clips,
    summarise_judges,
)
from voxvault.cloning.instant import StyleMap, instant_style
from voxvault.cloning.pitch import median_f0
from voxvault.engines.base import AdaptedWeights
from voxvault.engines.speaker import unit

ROOT = Path(__file__).resolve().parents[1]


class Augmented:
    """An encoder's differentiable embedding of a randomly degraded copy of the speech (see the docstring)."""

    def __init__(self, embed: Any, seed: int, codec_share: float = 0.5) -> None:
        self.embed, self.rng, self.codec_share = embed, np.random.default_rng(seed), codec_share

    def embed_differentiable(self, audio: torch.Tensor, sample_rate: int) -> torch.Tensor:
        rng = self.rng
        x = audio.reshape(-1)
        if rng.random() < self.codec_share:  # Opus round trip, straight-through for the gradient
            raw = x.detach().numpy().astype(np.float32)
            back = decode(
                encode(raw, sample_rate, "opus", bitrate=24_000),
                max_bytes=50_000_000,
                max_seconds=120.0,
                target_sr=sample_rate,
            ).samples
            coded = np.zeros_like(raw)
            coded[: min(len(raw), len(back))] = back[: len(raw)]
            x = x + torch.from_numpy(coded - raw)
        # a smooth random EQ: +-3 dB at 6 log-spaced points, interpolated over the spectrum
        spec = torch.fft.rfft(x)
        freqs = np.fft.rfftfreq(x.numel(), 1.0 / sample_rate)
        points = np.geomspace(100.0, sample_rate / 2, 6)
        gains_db = np.interp(np.log(np.maximum(freqs, 50.0)), np.log(points), rng.uniform(-3, 3, 6))
        x = torch.fft.irfft(spec * torch.from_numpy(10 ** (gains_db / 20)).to(spec.dtype), n=x.numel())
        x = x * float(10 ** (rng.uniform(-6, 6) / 20))
        rms = float(x.detach().pow(2).mean().sqrt())
        snr = rng.uniform(15, 30)
        noise = torch.from_numpy(rng.standard_normal(x.numel()).astype(np.float32))
        x = x.float() + noise * rms * float(10 ** (-snr / 20))
        return self.embed(x, sample_rate)


class Plain:
    def __init__(self, embed: Any) -> None:
        self.embed = embed

    def embed_differentiable(self, audio: torch.Tensor, sample_rate: int) -> torch.Tensor:
        return self.embed(audio, sample_rate)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared/testdata/speakers")
    parser.add_argument("--speakers", default="", help="comma-separated stems (default: all)")
    parser.add_argument("--variants", default="ft_ge2e,ft_campp_aug,ft_campp")
    parser.add_argument("--iterations", type=int, default=8)
    parser.add_argument("--max-seconds", type=float, default=900.0)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--audio-dir", type=Path)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    variants = args.variants.split(",")

    from voxvault.config import Settings
    from voxvault.engines.campp import CamppEncoder
    from voxvault.engines.registry import EngineRegistry

    engines = EngineRegistry(Settings().prepare())
    options = CloneEvalOptions(finetune=False, variants=False, audio_dir=args.audio_dir)
    campp = CamppEncoder(device=engines.settings.device)
    ev = CloneEvaluator(
        engines.tts(), engines.speaker(), engines.asr(), StyleMap.load(), options, judges=[campp]
    )
    assert ev.instant_decoder is not None
    torch_tts = ev.torch_tts()
    ge2e: Any = ev.encoder
    phonemes = [ev._frontend.phonemes(s) for s in FINETUNE_SENTENCES]
    clips = {p.stem: decode(p, max_bytes=50_000_000, max_seconds=120.0) for p in speaker_clips(args.data)}
    speaker_set: dict[str, dict[str, Any]] = {name: {} for name in ev.judges}
    for name, d in clips.items():
        for judge, e in ev.held_out_references(d.samples, d.sample_rate).items():
            speaker_set[judge][name] = e
    wanted = [s for s in args.speakers.split(",") if s] or list(clips)
    rows: list[dict[str, Any]] = []
    loads = [round(os.getloadavg()[0], 2)]
    t_start = time.perf_counter()
    for si, name in enumerate(wanted):
        d = clips[name]
        audio, rate = d.samples, d.sample_rate
        enrol = audio[: int(len(audio) * options.enrol_share)]
        enrol_emb = unit(ev.encoder.embed(enrol, rate))
        enrol_campp = unit(campp.embed(enrol, rate))
        target = Target(name, {j: speaker_set[j][name] for j in ev.judges}, speaker_set)
        real_f0 = f0_stats(audio, rate)
        own = {
            j: ev._verdict(j, enrol_emb if j == ev.encoder.name else unit(enc.embed(enrol, rate)), target)
            for j, enc in ev.judges.items()
        }
        row: dict[str, Any] = {"speaker": name, "own": own, "load_start": round(os.getloadavg()[0], 2)}
        pack, _ = instant_style(ev.basis, ev.style_map, enrol_emb, enrol, rate)
        instant = AdaptedWeights(
            "instant", ev.instant_decoder.deltas(pack, enrol_emb, median_f0(enrol, rate))
        )
        row["instant"] = ev.judge(
            pack, target, real_f0, speak=ev._speaker(ev.tts, instant), save_as="instant"
        )
        for variant in variants:
            if variant == "ft_ge2e":
                encoder: Any = ge2e
                goal = enrol_emb
            elif variant == "ft_campp_aug":
                encoder, goal = Augmented(campp.embed_torch, seed=1000 + si), enrol_campp
            elif variant == "ft_campp":
                encoder, goal = Plain(campp.embed_torch), enrol_campp
            else:
                raise SystemExit(f"unknown variant {variant}")
            torch.manual_seed(si)
            t0 = time.perf_counter()
            tuner = DecoderTuner(
                torch_tts, encoder, ev.asr, pack, goal, FINETUNE_SENTENCES, phonemes, start=instant
            )
            adapted, history = adapt_decoder(tuner, steps=args.iterations, max_seconds=args.max_seconds)
            out: dict[str, Any] = {
                "time_s": round(time.perf_counter() - t0, 1),
                "iterations": len(history),
                "train_similarity": [round(h.similarity, 4) for h in history],
                "train_recall": [round(h.recall, 3) for h in history],
                "load": round(os.getloadavg()[0], 2),
            }
            out.update(ev.judge(pack, target, real_f0, speak=ev._speaker(ev.tts, adapted), save_as=variant))
            row[variant] = out
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.with_suffix(".partial.json").write_text(json.dumps([*rows, row], indent=1))
            print(
                name,
                variant,
                f"{out['time_s']}s",
                f"campp {out['judges']['campp']['secs']:.3f} ge2e {out['judges']['ge2e']['secs']:.3f}",
                f"wer {out['wer']:.2f}",
                "train",
                out["train_similarity"],
                flush=True,
            )
        print(
            name,
            "instant",
            f"campp {row['instant']['judges']['campp']['secs']:.3f}",
            f"ge2e {row['instant']['judges']['ge2e']['secs']:.3f} wer {row['instant']['wer']:.2f}",
            flush=True,
        )
        loads.append(round(os.getloadavg()[0], 2))
        rows.append(row)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.with_suffix(".partial.json").write_text(json.dumps(rows, indent=1))
    summary: dict[str, Any] = {"own": summarise_judges(rows, "own")}
    for v in ("instant", *variants):
        summary[v] = {
            "judges": summarise_judges(rows, v),
            "wer_mean": round(float(np.mean([r[v]["wer"] for r in rows])), 4),
        }
    report = {
        "speakers": rows,
        "summary": summary,
        "iterations": args.iterations,
        "asr": engines.settings.asr_engine,
        "load_average_1m": loads,
        "total_seconds": round(time.perf_counter() - t_start, 1),
        "data": str(args.data),
    }
    args.out.write_text(json.dumps(report, indent=1))
    for v in ("own", "instant", *variants):
        j = summary[v]["judges"] if v != "own" else summary["own"]
        print(
            f"{v:14s}",
            "  ".join(
                f"{k} {j[k]['secs_mean']:.3f} acc {j[k]['accept_rate']} closest {j[k]['closest_rate']}"
                for k in ("campp", "ge2e")
            ),
            "" if v == "own" else f"wer {summary[v]['wer_mean']:.3f}",
        )


if __name__ == "__main__":
    main()
