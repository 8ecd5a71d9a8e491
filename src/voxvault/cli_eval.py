"""``voxvault eval clone DIR``: cloning fidelity on a folder of real speaker clips (docs/cloning.md)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from voxvault.cli_common import console, err_console
from voxvault.errors import VoxError

eval_app = typer.Typer(help="Evaluations: clone (cloning fidelity).", no_args_is_help=True)


def run_clone_eval(
    directory: Path,
    *,
    finetune: bool,
    finetune_seconds: float,
    finetune_iterations: int,
    methods: tuple[str, ...] | None = None,
    quiet: bool = False,
    instant_decoder: bool = True,
    audio_dir: Path | None = None,
    variants: bool = True,
) -> dict[str, Any]:
    """Load the engines (each once) and evaluate every clip; shared with ``bench/clone.py``. The clones are
    made with the configured speaker encoder (GE2E); CAM++ judges them beside it."""
    from voxvault.cloning.adapt.state import DEFAULT_METHOD
    from voxvault.cloning.evaluation import CloneEvalOptions, CloneEvaluator, evaluate_directory
    from voxvault.cloning.instant import StyleMap
    from voxvault.config import Settings
    from voxvault.engines.campp import CamppEncoder
    from voxvault.engines.registry import EngineRegistry

    engines = EngineRegistry(Settings().prepare())
    options = CloneEvalOptions(
        finetune=finetune,
        finetune_seconds=finetune_seconds,
        finetune_iterations=finetune_iterations,
        finetune_methods=methods or (DEFAULT_METHOD,),
        instant_decoder=instant_decoder,
        audio_dir=audio_dir,
        variants=variants,
    )
    judges = [CamppEncoder(device=engines.settings.device)]
    evaluator = CloneEvaluator(
        engines.tts(), engines.speaker(), engines.asr(), StyleMap.load(), options, judges=judges
    )

    def show(name: str, row: dict[str, Any]) -> None:
        if not quiet:
            parts = [
                f"{m} "
                + " ".join(f"{j}={v['secs']:.3f}" for j, v in row[m].get("judges", {}).items())
                + f" wer={row[m]['wer']:.2f}"
                for m in row
                if m in ("preset", "instant") or m.startswith("finetuned")
            ]
            console.print(f"{escape(name)}: " + "; ".join(parts), highlight=False)

    return evaluate_directory(evaluator, directory, on_clip=show)


def _methods(given: list[str] | None) -> tuple[str, ...]:
    from voxvault.cloning.adapt.state import DEFAULT_METHOD, METHODS

    known = METHODS
    methods = tuple(dict.fromkeys(given or [DEFAULT_METHOD]))
    unknown = [m for m in methods if m not in known]
    if unknown:
        raise VoxError("invalid_options", f"unknown method {unknown[0]!r}; use {', '.join(known)}")
    return methods


def _share(rate: float | None) -> str:
    return "-" if rate is None else f"{rate:.0%}"


def summary_table(report: dict[str, Any]) -> Table:
    """One row per method and judge (CAM++ first: the judge no clone is fitted to), WER and time beside."""
    from voxvault.cloning.evaluation import interval_text

    table = Table(
        "method", "judge", "SECS", "95% CI", "minus own", "95% CI", "accepted", "closest", "WER",
        "F0 dist (st)", "time (s)",
    )  # fmt: skip
    thresholds = {j: v.get("threshold") for j, v in report.get("judges", {}).items()}
    for name, s in report["summary"].items():
        if not isinstance(s, dict) or "secs_mean" not in s:
            continue
        f0 = "-" if s["f0_distance_mean"] is None else f"{s['f0_distance_mean']:.2f}"
        judged = s.get("judges") or {"": {**s, "accept_rate": None, "closest_rate": None}}
        for i, (judge, j) in enumerate(sorted(judged.items(), key=lambda kv: kv[0] != "campp")):
            label = judge if thresholds.get(judge) is None else f"{judge} (>= {thresholds[judge]:.3f})"
            table.add_row(
                name if i == 0 else "",
                label,
                f"{j['secs_mean']:.3f}",
                interval_text(j["secs_ci95"]),
                f"{j['secs_minus_own_mean']:+.3f}" if "secs_minus_own_mean" in j else "-",
                interval_text(j.get("secs_minus_own_ci95")),
                _share(j["accept_rate"]),
                _share(j["closest_rate"]),
                f"{s['wer_mean']:.3f}" if i == 0 else "",
                f0 if i == 0 else "",
                f"{s['time_s_mean']:.2f}" if i == 0 else "",
            )
    return table


@eval_app.command("clone")
def eval_clone(
    directory: Annotated[Path, typer.Argument(help="Folder of speaker clips (one speaker per file).")],
    json_out: Annotated[Path | None, typer.Option("--json", help="Write the full results here.")] = None,
    skip_finetune: Annotated[bool, typer.Option("--skip-finetune", help="Only preset and instant.")] = False,
    finetune_seconds: Annotated[
        float, typer.Option("--finetune-seconds", help="Time cap per speaker.")
    ] = 120.0,
    finetune_iterations: Annotated[
        int, typer.Option("--finetune-iterations", help="Iterations at most.")
    ] = 12,
    method: Annotated[
        list[str] | None,
        typer.Option(
            "--method",
            help="decoder (style projections; default), search or gradient (the style); repeat to compare.",
        ),
    ] = None,
    instant_decoder: Annotated[
        bool,
        typer.Option(
            "--instant-decoder/--no-instant-decoder",
            help="Give the instant clone its decoder step, as enrollment does (default).",
        ),
    ] = True,
    audio_dir: Annotated[
        Path | None,
        typer.Option("--audio-dir", help="Write what each method spoke to DIR/<speaker>/<method>.wav."),
    ] = None,
    variants: Annotated[
        bool,
        typer.Option("--variants/--no-variants", help="Also judge the instant clone's parts (default)."),
    ] = True,
) -> None:
    """Enrol from part of each clip, speak held-out sentences; report SECS by GE2E and CAM++ against the
    speaker's own, verification accepts, closest-speaker rate, WER, F0 distance and time."""
    try:
        report = run_clone_eval(
            directory,
            finetune=not skip_finetune,
            finetune_seconds=finetune_seconds,
            finetune_iterations=finetune_iterations,
            methods=_methods(method),
            instant_decoder=instant_decoder,
            audio_dir=audio_dir,
            variants=variants,
        )
    except VoxError as exc:
        err_console.print(f"[bold red]error[/] {escape(f'[{exc.code}] {exc.message}')}", highlight=False)
        raise typer.Exit(2) from None
    console.print(summary_table(report))
    own = report["summary"].get("own", {})
    if own:
        console.print(
            "speakers' own enrolment vs held-out: "
            + ", ".join(
                f"{j} SECS {v['secs_mean']:.3f} (accepted {_share(v['accept_rate'])})" for j, v in own.items()
            )
            + ". 'minus own' compares each clone with its speaker's by the same judge; 'accepted': "
            "cosine at or above the judge's equal-error-rate threshold; 'closest': closer to its speaker "
            "than to every other speaker of the set; 95% CI: bootstrap over the speakers."
        )
    if json_out is not None:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(json.dumps(report, indent=2) + "\n")
        console.print(f"wrote {escape(str(json_out))}", highlight=False)
