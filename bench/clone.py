"""Cloning fidelity benchmark: ``make bench-clone`` -> ``bench/results/clone.json`` + an HTML report.

Runs ``voxvault eval clone`` on the speaker clips and draws per-speaker SECS by each judge (CAM++, GE2E)
and WER for the nearest preset, the instant clone and the fine-tuned clone (plots embedded as base64 PNG).
"""

from __future__ import annotations

import argparse
import base64
import html
import io
import json
from pathlib import Path
from typing import Any

from voxvault.cli_eval import run_clone_eval
from voxvault.cloning.evaluation import interval_text

ROOT = Path(__file__).resolve().parents[1]
METHODS = ("preset", "instant", "finetuned")


def plot(report: dict[str, Any]) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    rows = report["speakers"]
    names = [r["speaker"] for r in rows]
    methods = [m for m in METHODS if any(m in r for r in rows)]
    judges = sorted({j for r in rows for j in r.get("own", {})}, key=lambda j: j != "campp")
    panels = [(j, f"SECS by {j} (higher is better)") for j in judges] or [("", "SECS (higher is better)")]
    panels.append(("wer", "WER (lower is better)"))
    fig, axes = plt.subplots(1, len(panels), figsize=(6 * len(panels), 4))
    x = np.arange(len(names))
    width = 0.8 / max(len(methods), 1)
    for ax, (metric, title) in zip(axes, panels, strict=True):
        for i, method in enumerate(methods):
            values = [_value(r, method, metric) for r in rows]
            ax.bar(x + i * width, values, width, label=method)
        if metric != "wer":
            real = [r["own"][metric]["secs"] if metric else r["enrol_vs_heldout_secs"] for r in rows]
            ax.plot(x + 0.4 - width / 2, real, "k_", markersize=18, label="real vs real")
            threshold = report.get("judges", {}).get(metric, {}).get("threshold")
            if threshold is not None:
                ax.axhline(threshold, color="grey", linestyle=":", label="EER threshold")
        ax.set_xticks(x + 0.4 - width / 2, names, rotation=30, ha="right")
        ax.set_title(title)
        ax.legend(fontsize=8)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode()


def _value(row: dict[str, Any], method: str, metric: str) -> float:
    """A method's WER, or its SECS by one judge ("" = the clone-making encoder's), NaN where not run."""
    import math

    if method not in row:
        return math.nan
    if metric == "wer":
        return float(row[method]["wer"])
    if not metric:
        return float(row[method]["secs"])
    return float(row[method]["judges"][metric]["secs"])


def _share(rate: float | None) -> str:
    return "-" if rate is None else f"{rate:.0%}"


def write_html(report: dict[str, Any], path: Path) -> None:
    """The summary as the CLI prints it (one row per method and judge, CAM++ first) and the plots."""
    summary = report["summary"]
    lines = [
        "<tr><th>method</th><th>judge</th><th>SECS mean</th><th>95% CI</th><th>minus own (95% CI)</th>"
        "<th>accepted</th><th>closest</th><th>WER mean</th><th>F0 distance (st)</th><th>time (s)</th></tr>"
    ]
    for method in METHODS:
        s = summary.get(method)
        if not s:
            continue
        judged = s.get("judges") or {"": {**s, "accept_rate": None, "closest_rate": None}}
        for judge, j in sorted(judged.items(), key=lambda kv: kv[0] != "campp"):
            minus = (
                f"{j['secs_minus_own_mean']:+.3f} ({interval_text(j['secs_minus_own_ci95'])})"
                if "secs_minus_own_mean" in j
                else "-"
            )
            lines.append(
                f"<tr><td>{method}</td><td>{html.escape(judge)}</td><td>{j['secs_mean']:.3f}</td>"
                f"<td>{interval_text(j['secs_ci95'])}</td><td>{minus}</td>"
                f"<td>{_share(j['accept_rate'])}</td><td>{_share(j['closest_rate'])}</td>"
                f"<td>{s['wer_mean']:.3f}</td>"
                f"<td>{s['f0_distance_mean']}</td><td>{s['time_s_mean']:.2f}</td></tr>"
            )
    own = summary.get("own", {})
    own_text = "; ".join(
        f"{html.escape(j)}: SECS {v['secs_mean']:.3f}, accepted {_share(v['accept_rate'])}"
        f" (threshold {report.get('judges', {}).get(j, {}).get('threshold')})"
        for j, v in own.items()
    )
    doc = f"""<!doctype html><html><head><meta charset="utf-8"><title>voxvault clone benchmark</title>
<style>body{{font-family:sans-serif;margin:2em}}
td,th{{padding:4px 10px;border-bottom:1px solid #ddd}}</style></head>
<body><h1>Cloning fidelity</h1>
<p>Real enrolment part vs held-out part of the same clip, by each judge: {own_text} (the ceiling for a
clone made from the enrolment; "minus own" is each clone's SECS minus its speaker's, by the same judge).
The clones are made with {html.escape(str(report["options"].get("clones_made_with", "ge2e")))}; CAM++ is
a judge they were not fitted to. "accepted": the clone's cosine to its speaker reaches the judge's
equal-error-rate threshold (bench/results/sv_calibration.json); "closest": the clone is closer to its own
speaker than to every other speaker of the set.</p>
<table>{"".join(lines)}</table>
<img alt="per-speaker SECS and WER" src="data:image/png;base64,{plot(report)}">
<pre>{html.escape(json.dumps(report["options"], indent=2))}</pre></body></html>
"""
    path.write_text(doc)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared/testdata/speakers")
    parser.add_argument("--out", type=Path, default=ROOT / "bench/results/clone.json")
    parser.add_argument("--html", type=Path, default=ROOT / "bench/results/clone.html")
    parser.add_argument("--skip-finetune", action="store_true")
    parser.add_argument("--audio-dir", type=Path, help="write DIR/<speaker>/<method>.wav (what each spoke)")
    parser.add_argument("--no-variants", action="store_true", help="skip the instant clone's parts")
    # The adapt job's own budget, and its closest method (docs/cloning.md): what a user's voice gets
    parser.add_argument("--finetune-seconds", type=float, default=600.0)
    parser.add_argument("--finetune-iterations", type=int, default=24)
    parser.add_argument(
        "--method",
        action="append",
        choices=("search", "gradient", "decoder"),
        help="repeat to compare; first = finetuned (default: decoder)",
    )
    args = parser.parse_args()
    report = run_clone_eval(
        args.data,
        finetune=not args.skip_finetune,
        finetune_seconds=args.finetune_seconds,
        finetune_iterations=args.finetune_iterations,
        methods=tuple(dict.fromkeys(args.method or ["decoder"])),
        audio_dir=args.audio_dir,
        variants=not args.no_variants,
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    write_html(report, args.html)
    print(json.dumps(report["summary"], indent=2))


if __name__ == "__main__":
    main()
