"""``voxvault batch``: make many clips from a JSONL/CSV file into a folder or an S3 prefix, resumably.

Running the same command again resumes: the job is keyed by its output, finished items are skipped,
failed ones retried. Exit status: 0 all items made, 1 some items failed (listed), 2 the job could not run.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from voxvault.cli_common import console, err_console, fail
from voxvault.config import Settings
from voxvault.errors import VoxError

if TYPE_CHECKING:
    from voxvault.jobs.batch import BatchCounts, BatchResult

batch_app = typer.Typer(help="Batch synthesis: many clips, resumable after a crash.", no_args_is_help=True)


@batch_app.command("run")
def run(
    items: Annotated[Path, typer.Argument(help="JSONL or CSV: id, text[, voice, format, ssml, speed].")],
    out: Annotated[str, typer.Option("--out", "-o", help="Output folder, or s3://bucket/prefix.")],
    executor: Annotated[str, typer.Option(help="local (a pool in this process) or ray.")] = "local",
    address: Annotated[
        str | None, typer.Option(help="Ray cluster address (host:port or 'auto'); none starts Ray here.")
    ] = None,
    workers: Annotated[int, typer.Option(min=1, help="Parallel workers (threads, or Ray actors).")] = 1,
    voice: Annotated[
        str | None, typer.Option(help="Voice for items without one (a preset by default).")
    ] = None,
    fmt: Annotated[str, typer.Option("--format", "-f", help="Format for items without one.")] = "wav",
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
) -> None:
    """Make every item of ITEMS into OUT, skipping items a previous run finished."""
    from voxvault.audio import FORMATS
    from voxvault.jobs.spec import load_items

    settings = Settings()
    if executor == "local" and workers > 1 and settings.threads == 0:
        # N workers share the cores: N model calls of all-cores each would oversubscribe them.
        settings.threads = max(1, (os.cpu_count() or 1) // workers)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    try:
        if fmt not in FORMATS:
            raise VoxError("unsupported_format", f"format {fmt!r} is not one of {', '.join(FORMATS)}")
        spec = load_items(items, max_items=settings.batch_max_items)
        # Imported once the items file is known good: a bad file is reported without loading the service.
        from voxvault.jobs.batch import run_batch
        from voxvault.jobs.executors import make_executor
        from voxvault.jobs.sinks import open_sink_for
        from voxvault.jobs.worker import WorkerOptions
        from voxvault.service import VoxVault

        vv = VoxVault(settings)
        sink = open_sink_for(vv, out)  # sealed only inside the blob store; a folder of your own is an export
        chosen = make_executor(executor, workers=workers, address=address)
        options = WorkerOptions(default_voice=voice or settings.default_voice, default_format=fmt)
    except VoxError as exc:
        fail(exc)
    result = _run_with_progress(
        len(spec.items),
        quiet,
        lambda show: run_batch(
            vv,
            spec,
            sink,
            executor=chosen,
            options=options,
            progress=show,
            info={"items_file": str(items.resolve())},
        ),
    )
    _report(result, sink.url)


def _run_with_progress(
    total: int, quiet: bool, run: Callable[[Callable[[Any], None]], BatchResult]
) -> BatchResult:
    """``run(show)`` under a progress bar ``show(counts)`` moves; a VoxError or Ctrl-C ends the command."""
    progress = Progress(
        TextColumn("[bold]batch[/]"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[detail]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        disable=quiet,
    )
    task = progress.add_task("items", total=total, detail="starting workers…")

    def show(counts: BatchCounts) -> None:
        detail = f"[green]{counts.done} done[/] ({counts.skipped} skipped)"
        if counts.failed:
            detail += f" [red]{counts.failed} failed[/]"
        progress.update(task, completed=counts.done + counts.failed, detail=detail)

    try:
        with progress:
            return run(show)
    except VoxError as exc:
        fail(exc)
    except KeyboardInterrupt:
        err_console.print("interrupted: run the same command again to resume")
        raise typer.Exit(130) from None


def _report(result: BatchResult, url: str) -> None:
    """The result line; failed items listed and exit status 1 when there are any."""
    c = result.counts
    console.print(
        f"{result.status}: {c.done}/{c.total} done ({c.skipped} skipped, {c.done - c.skipped} made, "
        f"{result.audio_seconds:.1f} s of audio in {result.processing_s:.1f} s), {c.failed} failed "
        f"-> {url}",
        highlight=False,
    )
    if result.failures:
        table = Table("id", "code", "message", title="failed items (re-run to retry)")
        for failure in result.failures[:50]:
            table.add_row(escape(failure["id"]), failure["code"], escape(failure["message"]))
        err_console.print(table)
        raise typer.Exit(1)


@batch_app.command("transcribe")
def transcribe(
    inputs: Annotated[
        list[Path], typer.Argument(help="Audio files, or folders (their audio files); ids are file stems.")
    ],
    out: Annotated[str, typer.Option("--out", "-o", help="Output folder, or s3://bucket/prefix.")],
    executor: Annotated[str, typer.Option(help="local (threads in this process) or ray.")] = "local",
    address: Annotated[
        str | None, typer.Option(help="Ray cluster address (host:port or 'auto'); none starts Ray here.")
    ] = None,
    workers: Annotated[
        int, typer.Option(min=1, help="Files transcribed at once (threads, or Ray actors).")
    ] = 1,
    model: Annotated[str | None, typer.Option(help="base or tiny.en; VOXVAULT_ASR_MODEL if unset.")] = None,
    language: Annotated[str | None, typer.Option(help="ISO 639-1 code; detected per file if unset.")] = None,
    diarize: Annotated[bool, typer.Option(help="Label speakers (JSON words, RTTM turns).")] = True,
    num_speakers: Annotated[
        int | None, typer.Option(min=1, max=32, help="Speakers per file; estimated if unset.")
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
) -> None:
    """Transcribe every input into OUT (transcripts/<id>.json, .srt, .rttm), skipping finished files."""
    from voxvault.jobs.transcribe_items import TranscribeJobOptions, items_from_paths

    settings = Settings()
    if executor == "local" and workers > 1 and settings.threads == 0:
        settings.threads = max(1, (os.cpu_count() or 1) // workers)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    try:
        if executor not in ("local", "ray") or (address and executor != "ray"):
            raise VoxError("invalid_executor", "--executor is local or ray; --address only applies to ray")
        spec = items_from_paths(inputs)
        options = TranscribeJobOptions(
            model=model, language=language, diarize=diarize, num_speakers=num_speakers
        ).check()
        from voxvault.jobs.sinks import open_sink_for
        from voxvault.jobs.transcribe_items import transcribe_batch
        from voxvault.service import VoxVault

        vv = VoxVault(settings)
        sink = open_sink_for(vv, out)
    except VoxError as exc:
        for problem in exc.details.get("problems", [])[1:20]:
            err_console.print(f"  {escape(problem)}", highlight=False)
        fail(exc)
    result = _run_with_progress(
        len(spec.items),
        quiet,
        lambda show: transcribe_batch(
            vv,
            spec,
            sink,
            options=options,
            workers=workers,
            executor=executor,
            address=address,
            progress=show,
            info={"inputs": len(spec.items)},
        ),
    )
    _report(result, sink.url)


@batch_app.command("status")
def status(
    out: Annotated[str, typer.Argument(help="The output folder or s3://bucket/prefix of a run.")],
) -> None:
    """Counts of the job that writes to OUT."""
    from voxvault.jobs.batch import JobRecords, batch_job_id
    from voxvault.jobs.sinks import open_sink
    from voxvault.service import VoxVault
    from voxvault.store.models import Job

    settings = Settings()
    try:
        sink = open_sink(out, s3_endpoint_url=settings.s3_endpoint_url)
    except VoxError as exc:
        fail(exc)
    vv = VoxVault(settings)
    job_id = batch_job_id(sink.url)
    with vv.db.session() as s:
        job = s.get(Job, job_id)
    if job is None:
        fail(
            VoxError("not_found", f"no batch job writes to {sink.url} (in {settings.resolved_database_url})")
        )
    by_status = JobRecords(vv.db).status_counts(job_id)
    done, failed = by_status.get("done", 0), by_status.get("failed", 0)
    pending = max(0, job.total - done - failed)
    console.print(
        f"{job.status}: {done}/{job.total} done, {failed} failed, {pending} pending",
        highlight=False,
    )
