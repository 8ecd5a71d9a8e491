"""Issue 22 research round 1: one table from the runs' JSON (``clone_research.py`` rows, possibly split over
several files, and a ``voxvault eval clone`` report for the shipped instant clone as the paired baseline).

    python bench/research1_table.py --baseline bench/results/clone_campp_unseen_instant.json \
        --runs bench/results/research1_warp_unseen.json ... --out bench/results/research1_unseen.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np

from voxvault.cloning.evaluation import mean_ci95


def rows_of(path: Path) -> list[dict[str, Any]]:
    data = json.loads(path.read_text())
    return list(data["speakers"] if isinstance(data, dict) else data)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--baseline", type=Path, required=True, help="eval clone report (its instant rows)")
    parser.add_argument("--runs", type=Path, nargs="+", required=True)
    parser.add_argument("--variant", default="sel_ge2e")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    base = {r["speaker"]: r for r in rows_of(args.baseline)}
    runs: dict[str, dict[str, Any]] = {}
    for path in args.runs:
        for r in rows_of(path):
            if args.variant in r:
                runs[r["speaker"]] = r
    speakers = sorted(set(base) & set(runs))
    out: dict[str, Any] = {"speakers": speakers, "variant": args.variant, "per_speaker": {}, "summary": {}}
    for s in speakers:
        out["per_speaker"][s] = {
            "ratio": runs[s].get("ratio_" + args.variant.removeprefix("sel_")),
            **{
                f"{j}_{k}": {
                    "base": base[s]["instant"]["judges"][j][k],
                    "new": runs[s][args.variant]["judges"][j][k],
                }
                for j in ("campp", "ge2e")
                for k in ("secs", "accepted", "closest")
            },
            "wer": {"base": base[s]["instant"]["wer"], "new": runs[s][args.variant]["wer"]},
        }
    for j in ("campp", "ge2e"):
        b = [base[s]["instant"]["judges"][j]["secs"] for s in speakers]
        n = [runs[s][args.variant]["judges"][j]["secs"] for s in speakers]
        own = [base[s]["own"][j]["secs"] for s in speakers]
        out["summary"][j] = {
            "own_mean": round(float(np.mean(own)), 4),
            "base_mean": round(float(np.mean(b)), 4),
            "new_mean": round(float(np.mean(n)), 4),
            "gain_mean": round(float(np.mean(np.subtract(n, b))), 4),
            "gain_ci95": mean_ci95(list(np.subtract(n, b))),
            "gained": int(np.sum(np.subtract(n, b) > 0)),
            "base_accept": round(
                float(np.mean([base[s]["instant"]["judges"][j]["accepted"] for s in speakers])), 4
            ),
            "new_accept": round(
                float(np.mean([runs[s][args.variant]["judges"][j]["accepted"] for s in speakers])), 4
            ),
            "base_closest": round(
                float(np.mean([base[s]["instant"]["judges"][j]["closest"] for s in speakers])), 4
            ),
            "new_closest": round(
                float(np.mean([runs[s][args.variant]["judges"][j]["closest"] for s in speakers])), 4
            ),
        }
    out["summary"]["wer"] = {
        "base_mean": round(float(np.mean([base[s]["instant"]["wer"] for s in speakers])), 4),
        "new_mean": round(float(np.mean([runs[s][args.variant]["wer"] for s in speakers])), 4),
    }
    out["summary"]["speakers"] = len(speakers)
    args.out.write_text(json.dumps(out, indent=1))
    print(json.dumps(out["summary"], indent=1))


if __name__ == "__main__":
    main()
