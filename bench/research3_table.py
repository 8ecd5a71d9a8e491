"""Issue 22 research round 3: the paired table of ``research2_campp_finetune.py``'s report (one or more files
of rows, e.g. a run and its ``.partial.json``): per speaker and mean, each variant's held-out SECS by both
judges, WER, accepted and closest, and the paired change of each variant against the instant clone and of
``--new`` against ``--base`` with 95 % bootstrap intervals over the speakers.

    python bench/research3_table.py --runs bench/results/research3_unseen.json \
        --out bench/results/research3_unseen_table.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np

from voxvault.cloning.evaluation import mean_ci95

JUDGES = ("ge2e", "campp")
#: Which encoder each variant's objective used (its figure by that encoder is fitted, not evidence).
FITTED = {"instant": "ge2e", "ft_ge2e": "ge2e", "ft_campp_aug": "campp", "ft_campp": "campp"}


def rows_of(path: Path) -> list[dict[str, Any]]:
    data = json.loads(path.read_text())
    return list(data["speakers"] if isinstance(data, dict) else data)


def paired(new: list[float], base: list[float]) -> dict[str, Any]:
    diff = list(np.subtract(new, base))
    return {
        "mean": round(float(np.mean(diff)), 4),
        "ci95": mean_ci95(diff),
        "up": int(np.sum(np.asarray(diff) > 0)),
        "down": int(np.sum(np.asarray(diff) < 0)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=Path, nargs="+", required=True)
    parser.add_argument("--variants", default="ft_ge2e,ft_campp_aug")
    parser.add_argument("--base", default="ft_ge2e")
    parser.add_argument("--new", default="ft_campp_aug")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    variants = ["instant", *args.variants.split(",")]
    rows: dict[str, dict[str, Any]] = {}
    for path in args.runs:
        for r in rows_of(path):
            if all(v in r for v in variants):
                rows[r["speaker"]] = r
    speakers = sorted(rows)

    def col(v: str, judge: str | None, key: str) -> list[float]:
        if judge is None:
            return [float(rows[s][v][key]) for s in speakers]
        return [float(rows[s][v]["judges"][judge][key]) for s in speakers]

    per_speaker = {
        s: {
            "own": {j: rows[s]["own"][j]["secs"] for j in JUDGES},
            **{
                v: {
                    **{
                        j: {k: rows[s][v]["judges"][j][k] for k in ("secs", "accepted", "closest")}
                        for j in JUDGES
                    },
                    "wer": rows[s][v]["wer"],
                    "fitted": FITTED.get(v),
                    **(
                        {"time_s": rows[s][v]["time_s"], "load": rows[s][v]["load"]}
                        if "time_s" in rows[s][v]
                        else {}
                    ),
                    **(
                        {
                            "train_similarity": rows[s][v]["train_similarity"],
                            "train_recall": rows[s][v]["train_recall"],
                        }
                        if "train_similarity" in rows[s][v]
                        else {}
                    ),
                }
                for v in variants
            },
        }
        for s in speakers
    }
    own = {j: [float(rows[s]["own"][j]["secs"]) for s in speakers] for j in JUDGES}
    summary: dict[str, Any] = {"own": {j: round(float(np.mean(own[j])), 4) for j in JUDGES}}
    for v in variants:
        summary[v] = {
            "fitted": FITTED.get(v),
            **{
                j: {
                    "secs_mean": round(float(np.mean(col(v, j, "secs"))), 4),
                    "secs_ci95": mean_ci95(col(v, j, "secs")),
                    "accept_rate": round(float(np.mean(col(v, j, "accepted"))), 4),
                    "closest_rate": round(float(np.mean(col(v, j, "closest"))), 4),
                }
                for j in JUDGES
            },
            "wer_mean": round(float(np.mean(col(v, None, "wer"))), 4),
        }
        if v != "instant":
            summary[v]["vs_instant"] = {
                **{j: paired(col(v, j, "secs"), col("instant", j, "secs")) for j in JUDGES},
                "wer": paired(col(v, None, "wer"), col("instant", None, "wer")),
            }
    summary[f"{args.new}_minus_{args.base}"] = {
        **{j: paired(col(args.new, j, "secs"), col(args.base, j, "secs")) for j in JUDGES},
        "wer": paired(col(args.new, None, "wer"), col(args.base, None, "wer")),
    }
    out = {
        "speakers": speakers,
        "runs": [str(p) for p in args.runs],
        "per_speaker": per_speaker,
        "summary": summary,
    }
    args.out.write_text(json.dumps(out, indent=1))
    for s in speakers:
        print(
            f"{s:18s} own {per_speaker[s]['own']['ge2e']:.3f}/{per_speaker[s]['own']['campp']:.3f}  "
            + "  ".join(
                f"{v} {rows[s][v]['judges']['ge2e']['secs']:.3f}/{rows[s][v]['judges']['campp']['secs']:.3f}"
                f" wer {rows[s][v]['wer']:.2f}"
                for v in variants
            )
        )
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
