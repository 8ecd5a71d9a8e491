"""``voxvault eval clone DIR``: cloning fidelity on a folder of real speaker clips (docs/cloning.md)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from voxvault.errors import VoxError

eval_app = typer.Typer(help="Evaluations: clone (cloning fidelity).", no_args_is_help=True)
console = Console(soft_wrap=True)
err_console = Console(stderr=True, soft_wrap=True)


def run_clone_eval(
    directory: Path,
    *,
    finetune: bool,
    finetune_seconds: float,
    finetune_iterations: int,
    methods: tuple[str, ...] | None = None,
    quiet: bool = False,
    instant_decoder: bool = True,
) -> dict[str, Any]:
    """Load the engines and evaluate every clip; shared with ``bench/clone.py``."""
    from voxvault.config import Settings
    from voxvault.engines.registry import EngineRegistry
    from voxvault.eval.clone import CloneEvalOptions, CloneEvaluator, evaluate_directory
    from voxvault.voices.finetune import DEFAULT_METHOD
    from voxvault.voices.instant import StyleMap

    engines = EngineRegistry(Settings().prepare())
    options = CloneEvalOptions(
        finetune=finetune,
        finetune_seconds=finetune_seconds,
        finetune_iterations=finetune_iterations,
        finetune_methods=methods or (DEFAULT_METHOD,),
        instant_decoder=instant_decoder,
    )
    evaluator = CloneEvaluator(engines.tts(), engines.speaker(), engines.asr(), StyleMap.load(), options)

    def show(name: str, row: dict[str, Any]) -> None:
        if not quiet:
            parts = [
                f"{m} secs={row[m]['secs']:.3f} wer={row[m]['wer']:.2f}"
                for m in row
                if m in ("preset", "instant") or m.startswith("finetuned")
            ]
            console.print(f"{escape(name)}: " + "; ".join(parts), highlight=False)

    return evaluate_directory(evaluator, directory, on_clip=show)


def _methods(given: list[str] | None) -> tuple[str, ...]:
    from voxvault.voices.finetune import DEFAULT_METHOD, METHODS

    known = METHODS
    methods = tuple(dict.fromkeys(given or [DEFAULT_METHOD]))
    unknown = [m for m in methods if m not in known]
    if unknown:
        raise VoxError("invalid_options", f"unknown method {unknown[0]!r}; use {', '.join(known)}")
    return methods


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
) -> None:
    """Enrol from part of each clip, speak held-out sentences, report SECS, WER, F0 distance and time."""
    try:
        report = run_clone_eval(
            directory,
            finetune=not skip_finetune,
            finetune_seconds=finetune_seconds,
            finetune_iterations=finetune_iterations,
            methods=_methods(method),
            instant_decoder=instant_decoder,
        )
    except VoxError as exc:
        err_console.print(f"[bold red]error[/] {escape(f'[{exc.code}] {exc.message}')}", highlight=False)
        raise typer.Exit(2) from None
    from voxvault.eval.clone import interval_text

    table = Table(
        "method", "SECS", "95% CI", "minus own", "95% CI", "of own", "WER", "F0 dist (st)", "time (s)"
    )
    for name, s in report["summary"].items():
        if isinstance(s, dict):
            f0 = "-" if s["f0_distance_mean"] is None else f"{s['f0_distance_mean']:.2f}"
            table.add_row(
                name,
                f"{s['secs_mean']:.3f}",
                interval_text(s["secs_ci95"]),
                f"{s['secs_minus_own_mean']:+.3f}",
                interval_text(s["secs_minus_own_ci95"]),
                f"{s['secs_of_own_mean']:.2f}",
                f"{s['wer_mean']:.3f}",
                f0,
                f"{s['time_s_mean']:.2f}",
            )
    console.print(table)
    own = report["summary"].get("real_enrol_vs_heldout_secs_mean")
    if own is not None:
        console.print(
            f"speakers' own enrolment vs held-out SECS: {own:.3f} ('minus own' and 'of own' compare each "
            "clone with its speaker's; 95% CI: bootstrap over the speakers)"
        )
    if json_out is not None:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(json.dumps(report, indent=2) + "\n")
        console.print(f"wrote {escape(str(json_out))}", highlight=False)
