"""Train the synthetic-speech detector (``voxvault/voices/data/spoof_detector.npz``, issue 25).

Material: ``bench/spoof_material.py`` (16 kHz utterances named ``<real|synthetic>__<group>__<who>__<n>``).
Speakers are split, never utterances:

- train: real German clips (``de``) and the six English test speakers (``test``); synthetic: the presets,
  their blends, the instant clones of German speakers (some without the decoder step: ``styleclone``) and
  of the test speakers, espeak-ng's first three voices;
- judged (never seen): the 15 unseen English speakers (real clips, and their instant clones reading a
  sentence and a consent script), Debian pocketsphinx-testdata's real clips (another source and
  channel), espeak-ng's other voices, and fine-tuned clones when the folder holds them (``finetuned``).

Every utterance is judged clean and after what an attacker (or a phone) does to it: MP3 at 32 kbit/s,
Opus at 24 kbit/s, white noise at 30, 20 and 15 dB SNR, a 4 kHz low-pass (the features hold no
loudness); training uses the same variants plus random crops (2.5-8 s). The threshold is set so that at
most ``--max-train-fr`` of the real training variants are refused (out of fold: 5-fold by speaker),
then reported on the judged sets.

    python bench/train_spoof_detector.py --material /tmp/spoof_material --crops 1 --cache /tmp/spoof_feat \
        --out src/voxvault/voices/data/spoof_detector.npz --report bench/results/spoof_detector.json
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import platform
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import torch

from voxvault.audio.io import decode, encode
from voxvault.voices.spoof import RATE, SpoofDetector, features

TRAIN_GROUPS = {"de", "test", "preset", "blend", "clone_de", "styleclone_de", "clone_test", "espeak_train"}
VARIANTS = ("clean", "mp3_32k", "opus_24k", "noise_30db", "noise_20db", "noise_15db", "lowpass_4k")


def variant(x: np.ndarray, name: str, rng: np.random.Generator) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    if name == "clean":
        return x
    if name.startswith("mp3") or name.startswith("opus"):
        fmt, kbps = name.split("_")
        data = encode(x, RATE, fmt, bitrate=int(kbps[:-1]) * 1000)
        return decode(data, max_bytes=10**8, max_seconds=600, target_sr=RATE).samples
    if name.startswith("noise_"):
        snr_db = float(name[6:-2])
        power = np.mean(x**2)
        return (x + rng.normal(0, np.sqrt(power / 10 ** (snr_db / 10)), len(x))).astype(np.float32)
    if name == "lowpass_4k":
        spec = np.fft.rfft(x)
        spec[np.fft.rfftfreq(len(x), 1 / RATE) > 4000] = 0
        return np.fft.irfft(spec, len(x)).astype(np.float32)
    if name == "gain_-20db":
        return x * 0.1
    raise ValueError(name)


def load(folder: Path) -> list[dict[str, Any]]:
    items = []
    for p in sorted(folder.glob("*.npz")):
        kind, group, who, n = p.stem.split("__")
        if group == "espeak":
            group = "espeak_train" if int(n) < 3 else "espeak_judged"
        items.append({"kind": kind, "group": group, "who": who, "n": int(n), "audio": np.load(p)["audio"]})
    return items


def crops(x: np.ndarray, rng: np.random.Generator, k: int) -> list[np.ndarray]:
    out = [x]
    for _ in range(k):
        n = int(rng.uniform(2.5, 8.0) * RATE)
        if len(x) > n + RATE // 2:
            s = int(rng.integers(0, len(x) - n))
            out.append(x[s : s + n])
    return out


def table(
    items: list[dict[str, Any]], rng: np.random.Generator, k_crops: int, cache: Path | None
) -> tuple[np.ndarray, list[dict[str, Any]]]:
    """Feature rows of every utterance's variants (and crops, for training groups); cached per file."""
    rows, meta = [], []
    for it in items:
        name = f"{it['kind']}__{it['group']}__{it['who']}__{it['n']}__{k_crops}.npz"
        if cache is not None and (cache / name).exists():
            z = np.load(cache / name, allow_pickle=True)
            rows += list(z["x"])
            meta += list(z["meta"])
            continue
        mine_x, mine_m = [], []
        pieces = crops(it["audio"], rng, k_crops) if it["group"] in TRAIN_GROUPS else [it["audio"]]
        for c, piece in enumerate(pieces):
            for v in VARIANTS:
                f = features(variant(piece, v, rng))
                if f is None:
                    continue
                mine_x.append(f)
                mine_m.append({**{k: it[k] for k in ("kind", "group", "who", "n")}, "crop": c, "variant": v})
        if cache is not None:
            cache.mkdir(parents=True, exist_ok=True)
            np.savez(cache / name, x=np.array(mine_x), meta=np.array(mine_m, dtype=object))
        rows += mine_x
        meta += mine_m
    return np.stack(rows), meta


def fit(
    x: np.ndarray, y: np.ndarray, hidden: int, decay: float, seed: int, epochs: int = 400
) -> dict[str, np.ndarray]:
    torch.manual_seed(seed)
    mean, scale = x.mean(axis=0), x.std(axis=0) + 1e-6
    xt = torch.tensor((x - mean) / scale, dtype=torch.float32)
    yt = torch.tensor(y, dtype=torch.float32)
    pos = float(y.mean())
    weight = torch.where(yt > 0.5, 0.5 / pos, 0.5 / (1 - pos))
    l1, l2 = torch.nn.Linear(x.shape[1], hidden), torch.nn.Linear(hidden, 1)
    opt = torch.optim.Adam([*l1.parameters(), *l2.parameters()], lr=1e-2, weight_decay=decay)
    for _ in range(epochs):
        opt.zero_grad()
        logit = l2(torch.tanh(l1(xt))).squeeze(1)
        loss = (
            torch.nn.functional.binary_cross_entropy_with_logits(logit, yt, reduction="none") * weight
        ).mean()
        loss.backward()
        opt.step()
    return {
        "mean": mean,
        "scale": scale,
        "w1": l1.weight.detach().numpy().T.astype(np.float64),
        "b1": l1.bias.detach().numpy().astype(np.float64),
        "w2": l2.weight.detach().numpy().T.astype(np.float64),
        "b2": l2.bias.detach().numpy().astype(np.float64),
    }


def rates(p: np.ndarray, meta: list[dict[str, Any]], threshold: float, mask: np.ndarray) -> dict[str, Any]:
    out: dict[str, Any] = {}
    by: dict[tuple[str, str, str], list[float]] = defaultdict(list)
    for i in np.flatnonzero(mask):
        m = meta[i]
        by[(m["kind"], m["group"], m["variant"])].append(float(p[i]))
    for (kind, group, v), ps in sorted(by.items()):
        arr = np.array(ps)
        flagged = int((arr >= threshold).sum())
        out.setdefault(f"{kind}/{group}", {})[v] = {
            "n": len(arr),
            "refused": flagged,
            "min": round(float(arr.min()), 4),
            "max": round(float(arr.max()), 4),
        }
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--material", type=Path, required=True)
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--report", type=Path, default=None)
    ap.add_argument("--hidden", type=int, default=16)
    ap.add_argument("--decay", type=float, default=1e-3)
    ap.add_argument("--crops", type=int, default=2)
    ap.add_argument("--max-train-fr", type=float, default=0.01)
    ap.add_argument("--cache", type=Path, default=None, help="a folder: feature rows kept per utterance")
    ap.add_argument("--features-only", action="store_true")
    ap.add_argument("--evaluate", type=Path, default=None, help="judge with these weights, no training")
    ap.add_argument(
        "--shard", default="0/1", help="i/n: only every n-th utterance from i (features-only runs)"
    )
    args = ap.parse_args()
    t0, load0 = time.perf_counter(), os.getloadavg()[0]
    rng = np.random.default_rng(25)
    items = load(args.material)
    i_shard, n_shard = (int(v) for v in args.shard.split("/"))
    items = items[i_shard::n_shard]
    x, meta = table(items, rng, args.crops, args.cache)
    if args.features_only:
        return
    y = np.array([m["kind"] == "synthetic" for m in meta], dtype=np.float32)
    train = np.array([m["group"] in TRAIN_GROUPS for m in meta])
    if args.evaluate is not None:  # the shipped weights on the judged sets (material made since)
        det = SpoofDetector.load(args.evaluate, sha256="")
        report = {
            "meta": {"weights": hashlib.sha256(args.evaluate.read_bytes()).hexdigest(), "load_before": load0},
            "judged": rates(det.probability(x), meta, det.threshold, ~train),
        }
        print(json.dumps(report, indent=1))
        if args.report is not None:
            args.report.write_text(json.dumps(report, indent=1) + "\n")
        return
    # out-of-fold scores for the threshold: 5 folds by speaker
    speakers = sorted({m["who"] for m, t in zip(meta, train, strict=True) if t})
    fold_of = {s: i % 5 for i, s in enumerate(np.random.default_rng(0).permutation(speakers))}
    oof = np.zeros(len(meta))
    for k in range(5):
        test = train & np.array([fold_of.get(m["who"], -1) == k for m in meta])
        params = fit(x[train & ~test], y[train & ~test], args.hidden, args.decay, seed=k)
        oof[test] = SpoofDetector(params, 0.5).probability(x[test])
    real_oof = np.sort(oof[train & (y == 0)])
    threshold = float(real_oof[int(np.ceil((1 - args.max_train_fr) * len(real_oof))) - 1]) + 1e-4
    params = fit(x[train], y[train], args.hidden, args.decay, seed=99)
    det = SpoofDetector(params, threshold)
    p = det.probability(x)
    report = {
        "meta": {
            "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "machine": platform.platform(),
            "load_before": round(load0, 1),
            "seconds": round(time.perf_counter() - t0, 1),
            "features": int(x.shape[1]),
            "rows_train": int(train.sum()),
            "rows_judged": int((~train).sum()),
            "hidden": args.hidden,
            "decay": args.decay,
            "threshold": round(threshold, 4),
            "max_train_fr": args.max_train_fr,
            "variants": list(VARIANTS),
        },
        "train_out_of_fold": rates(oof, meta, threshold, train),
        "judged": rates(p, meta, threshold, ~train),
    }
    if args.out is not None:
        buf = io.BytesIO()
        np.savez(buf, threshold=np.array(threshold), **{k: v.astype(np.float32) for k, v in params.items()})
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_bytes(buf.getvalue())
        report["meta"]["sha256"] = hashlib.sha256(buf.getvalue()).hexdigest()
        report["meta"]["bytes"] = len(buf.getvalue())
    text = json.dumps(report, indent=1)
    if args.report is not None:
        args.report.write_text(text + "\n")
    for section in ("train_out_of_fold", "judged"):
        print(section)
        for key, vs in report[section].items():
            cells = " ".join(f"{v}:{d['refused']}/{d['n']}" for v, d in vs.items())
            print(f"  {key:28s} {cells}")
    print(json.dumps(report["meta"]))


if __name__ == "__main__":
    main()
