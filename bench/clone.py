"""Cloning fidelity benchmark: ``make bench-clone`` -> ``bench/results/clone.json`` + an HTML report.

Runs ``voxvault eval clone`` on the speaker clips and draws per-speaker SECS and WER for the nearest
preset, the instant clone and the fine-tuned clone (plots embedded as base64 PNG).
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
from voxvault.eval.clone import interval_text

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
    fig, axes = plt.subplots(1, 2, figsize=(12, 4))
    x = np.arange(len(names))
    width = 0.8 / max(len(methods), 1)
    for ax, metric, title in (
        (axes[0], "secs", "SECS (higher is better)"),
        (axes[1], "wer", "WER (lower is better)"),
    ):
        for i, method in enumerate(methods):
            values = [r[method][metric] if method in r else np.nan for r in rows]
            ax.bar(x + i * width, values, width, label=method)
        if metric == "secs":
            real = [r["enrol_vs_heldout_secs"] for r in rows]
            ax.plot(x + 0.4 - width / 2, real, "k_", markersize=18, label="real vs real")
        ax.set_xticks(x + 0.4 - width / 2, names, rotation=30, ha="right")
        ax.set_title(title)
        ax.legend(fontsize=8)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode()


def write_html(report: dict[str, Any], path: Path) -> None:
    summary = report["summary"]
    lines = [
        "<tr><th>method</th><th>SECS mean</th><th>95% CI</th><th>minus own (95% CI)</th><th>SECS of own</th>"
        "<th>WER mean</th>"
        "<th>F0 distance (st)</th><th>time (s)</th></tr>"
    ]
    for method in METHODS:
        s = summary.get(method)
        if s:
            lines.append(
                f"<tr><td>{method}</td><td>{s['secs_mean']:.3f}</td><td>{interval_text(s['secs_ci95'])}</td>"
                f"<td>{s['secs_minus_own_mean']:+.3f} ({interval_text(s['secs_minus_own_ci95'])})</td>"
                f"<td>{s['secs_of_own_mean']:.2f}</td>"
                f"<td>{s['wer_mean']:.3f}</td>"
                f"<td>{s['f0_distance_mean']}</td><td>{s['time_s_mean']:.2f}</td></tr>"
            )
    doc = f"""<!doctype html><html><head><meta charset="utf-8"><title>voxvault clone benchmark</title>
<style>body{{font-family:sans-serif;margin:2em}}
td,th{{padding:4px 10px;border-bottom:1px solid #ddd}}</style></head>
<body><h1>Cloning fidelity</h1>
<p>Real enrolment part vs held-out part of the same clip: mean SECS
{summary.get("real_enrol_vs_heldout_secs_mean")} (the ceiling for a clone made from the enrolment;
"SECS of own" is each clone's SECS divided by its speaker's).</p>
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
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    write_html(report, args.html)
    print(json.dumps(report["summary"], indent=2))


if __name__ == "__main__":
    main()
