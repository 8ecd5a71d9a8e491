"""``voxvault consent start``, ``voxvault enroll`` and ``voxvault voices ...`` on the local install.

These act on the configured database and blob store directly (no server needed), in the default project,
audited with the actor ``cli``. ``consent start`` prints the script to read and writes a ticket file
(consent id and one-time code, mode 0600) that ``enroll`` and ``voices renew`` read back, so the code
never has to be typed.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from voxvault.cli_common import console, fail
from voxvault.config import Settings
from voxvault.errors import VoxError

if TYPE_CHECKING:
    from voxvault.service import VoxVault
    from voxvault.voices.enrollment import Upload

CLI_ACTOR = "cli"
DEFAULT_TICKET = Path("voxvault-consent.json")

consent_app = typer.Typer(help="Consent scripts: start one, show one.", no_args_is_help=True)
voices_app = typer.Typer(
    help="Voices: list (no subcommand), show, revoke, renew, rm (erase), sweep.", invoke_without_command=True
)

TicketOption = Annotated[Path, typer.Option("--ticket", "-t", help="Ticket file written by 'consent start'.")]


def _vv() -> VoxVault:
    from voxvault.service import VoxVault

    return VoxVault(Settings())


def _has_database(settings: Settings) -> bool:
    """False only for the default SQLite file before anything created it (a server URL: assume so)."""
    path = settings.default_database_file
    return path is None or path.exists()


def _project(vv: VoxVault) -> str:
    return vv.keys.ensure_default_project()[1]


def _upload(path: Path) -> Upload:
    from voxvault.voices.enrollment import Upload

    try:
        size = path.stat().st_size
    except OSError:
        raise VoxError("invalid_audio", f"{path}: cannot read the file", 422) from None
    limit = Settings().max_upload_bytes
    if size > limit:
        raise VoxError("upload_too_large", f"{path}: {size} bytes; the limit is {limit} bytes", 413)
    return Upload(filename=path.name, data=path.read_bytes())


def _read_ticket(path: Path) -> dict[str, Any]:
    try:
        ticket = json.loads(path.read_text())
    except (OSError, ValueError):
        raise VoxError(
            "invalid_ticket", f"{path}: no consent ticket here; run 'voxvault consent start'", 2
        ) from None
    if not isinstance(ticket, dict) or not {"consent_id", "challenge"} <= ticket.keys():
        raise VoxError("invalid_ticket", f"{path}: not a consent ticket", 2)
    return ticket


def _print_json(data: Any) -> None:
    print(json.dumps(data, indent=2, default=str))


@consent_app.command("start")
def consent_start(
    speaker: Annotated[str, typer.Option("--speaker", "-s", help="The speaker's name, as they will say it.")],
    organization: Annotated[str, typer.Option("--org", "-o", help="Who will use the voice.")],
    purpose: Annotated[str, typer.Option("--purpose", "-p", help="What the voice is for.")],
    days: Annotated[float, typer.Option("--days", help="How long the consent lasts.")] = 365.0,
    ticket: TicketOption = DEFAULT_TICKET,
) -> None:
    """Create a consent: prints the script to read (valid 10 minutes) and writes the ticket file."""
    try:
        vv = _vv()
        created = vv.consents.create(
            project_id=_project(vv),
            speaker_name=speaker,
            organization=organization,
            purpose=purpose,
            expires_in_days=days,
            actor=CLI_ACTOR,
        )
    except VoxError as exc:
        fail(exc)
    data = {
        "consent_id": created.consent_id,
        "challenge": created.challenge,
        "script": created.script,
        "challenge_expires_at": created.challenge_expires_at.isoformat(),
        "expires_at": created.expires_at.isoformat(),
    }
    fd = os.open(ticket, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(data, handle, indent=2)
    console.print("[bold]Have the speaker read this aloud, live, and record it:[/]\n")
    console.print(f"  {escape(created.script)}\n", highlight=False)
    console.print(
        f"consent {created.consent_id}; the code is valid until {created.challenge_expires_at:%H:%M:%S} UTC. "
        f"Ticket written to {ticket}.\nThen: voxvault enroll --consent recording.wav samples/*.wav"
    )


@consent_app.command("show")
def consent_show(consent_id: Annotated[str, typer.Argument(help="Consent id.")]) -> None:
    """A consent's state, scores and refusal reason."""
    try:
        _print_json(_vv().consents.view(consent_id, None).to_json())
    except VoxError as exc:
        fail(exc)


def enroll(
    samples: Annotated[
        list[Path], typer.Argument(help="Voice sample files (at least 10 s of speech in all).")
    ],
    consent: Annotated[
        Path, typer.Option("--consent", "-c", help="The consent recording (the script read).")
    ],
    name: Annotated[str | None, typer.Option("--name", "-n", help="Name of the new voice.")] = None,
    ticket: TicketOption = DEFAULT_TICKET,
    as_json: Annotated[bool, typer.Option("--json", help="Print the voice as JSON.")] = False,
) -> None:
    """Verify the consent recording and the samples, then create the voice."""
    try:
        data = _read_ticket(ticket)
        vv = _vv()
        with console.status("verifying consent and samples…"):
            voice = vv.enrollment.enroll(
                consent_id=data["consent_id"],
                project_id=None,
                challenge=data["challenge"],
                recording=_upload(consent),
                samples=[_upload(p) for p in samples],
                name=name,
                actor=CLI_ACTOR,
            )
    except VoxError as exc:
        fail(exc)
    ticket.unlink(missing_ok=True)  # the code is spent either way
    if as_json:
        _print_json(voice.to_json())
        return
    console.print(
        f"voice [bold]{voice.voice_id}[/] created ({voice.name}); consent expires "
        f"{voice.expires_at:%Y-%m-%d}. Try: voxvault say 'Hello.' --voice {voice.voice_id}",
        highlight=False,
    )


@voices_app.callback()
def voices_list(
    ctx: typer.Context, as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False
) -> None:
    """List the voices that can speak (presets and cloned voices)."""
    if ctx.invoked_subcommand is not None:
        return
    try:
        from voxvault.voices.presets import PRESETS

        # The presets the model package ships, listed without loading the model (a second or two).
        presets: list[dict[str, Any]] = [
            {
                "id": pid,
                "name": pid,
                "kind": "preset",
                "status": "active",
                "description": desc,
                "expires_at": None,
            }
            for pid, (_, desc) in PRESETS.items()
        ]
        # No database yet: no cloned voices either, and SQLAlchemy and the migrations stay unloaded.
        vv = _vv() if _has_database(Settings()) else None
        cloned = [
            {
                "id": v.voice_id,
                "name": v.name,
                "kind": "cloned",
                "status": v.status,
                "description": "",
                "expires_at": v.expires_at,
            }
            for v in (vv.voice_registry.list(None) if vv is not None else [])
        ]
    except VoxError as exc:
        fail(exc)
    items = presets + cloned
    if as_json:
        _print_json(items)
        return
    table = Table("id", "name", "kind", "status", "expires", "description")
    for v in items:
        expires = f"{v['expires_at']:%Y-%m-%d}" if v["expires_at"] else ""
        table.add_row(v["id"], v["name"], v["kind"], v["status"], expires, v["description"])
    console.print(table)


@voices_app.command("show")
def voices_show(voice_id: Annotated[str, typer.Argument(help="Cloned voice id.")]) -> None:
    """A cloned voice: status, consent, retention and enrollment scores."""
    try:
        _print_json(_vv().voice_registry.get(voice_id, None).to_json())
    except VoxError as exc:
        fail(exc)


@voices_app.command("revoke")
def voices_revoke(voice_id: Annotated[str, typer.Argument(help="Cloned voice id.")]) -> None:
    """Withdraw consent: the voice stops speaking at once (its data stays until 'rm')."""
    try:
        _vv().voice_registry.revoke(voice_id, None, actor=CLI_ACTOR)
    except VoxError as exc:
        fail(exc)
    console.print(f"voice {voice_id} revoked", highlight=False)


@voices_app.command("renew")
def voices_renew(
    voice_id: Annotated[str, typer.Argument(help="Cloned voice id.")],
    consent: Annotated[
        Path, typer.Option("--consent", "-c", help="A new consent recording (the script read).")
    ],
    ticket: TicketOption = DEFAULT_TICKET,
) -> None:
    """Renew a voice's consent with a new recording of a new script ('consent start' first)."""
    try:
        data = _read_ticket(ticket)
        vv = _vv()
        with console.status("verifying the new consent…"):
            vv.enrollment.verify_for_voice(
                consent_id=data["consent_id"],
                project_id=None,
                challenge=data["challenge"],
                recording=_upload(consent),
                voice_id=voice_id,
                actor=CLI_ACTOR,
            )
        voice = vv.voice_registry.renew(voice_id, None, data["consent_id"], actor=CLI_ACTOR)
    except VoxError as exc:
        fail(exc)
    ticket.unlink(missing_ok=True)
    console.print(f"voice {voice_id} renewed until {voice.expires_at:%Y-%m-%d}", highlight=False)


@voices_app.command("rm")
def voices_rm(
    voice_id: Annotated[str, typer.Argument(help="Cloned voice id.")],
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
) -> None:
    """Erase a voice: embedding, style, samples and consent audio are deleted for good."""
    if not yes:
        typer.confirm(f"Erase voice {voice_id} and all its data? This cannot be undone", abort=True)
    try:
        result = _vv().voice_registry.erase(voice_id, None, actor=CLI_ACTOR)
    except VoxError as exc:
        fail(exc)
    console.print(
        f"voice {voice_id} erased ({result.blobs_deleted} stored objects and "
        f"{result.outputs_deleted} batch outputs deleted; {result.exported_outputs_left} exported "
        "outputs in your own folders left)",
        highlight=False,
    )


@voices_app.command("adapt")
def voices_adapt(
    voice_id: Annotated[str, typer.Argument(help="Cloned voice id.")],
    iterations: Annotated[int, typer.Option("--iterations", "-n", help="Search iterations at most.")] = 24,
    max_seconds: Annotated[float, typer.Option("--max-seconds", help="Time cap for the search.")] = 600.0,
    resume: Annotated[str | None, typer.Option("--resume", help="Resume this unfinished job id.")] = None,
    method: Annotated[
        str, typer.Option("--method", help="decoder (closest; default), search or gradient (style only).")
    ] = "decoder",
) -> None:
    """Fine-tune the voice toward its speaker (progress bar); 'voices rollback' undoes it."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from voxvault.jobs.adapt import AdaptService, JobStatus

    vv = _vv()
    service = AdaptService(vv)
    try:
        job_id = resume or service.submit(
            voice_id,
            None,
            key_id=None,
            options={"max_iterations": iterations, "max_seconds": max_seconds, "method": method},
        )
        with Progress(
            TextColumn("adapting"),
            BarColumn(),
            TextColumn("{task.percentage:>3.0f}% {task.description}"),
            TimeElapsedColumn(),
            console=console,
        ) as bar:
            task = bar.add_task("", total=1.0)

            def show(status: JobStatus) -> None:
                best = status.best or {}
                bar.update(
                    task,
                    completed=status.progress,
                    description=f"similarity {best.get('similarity', 0):.3f}",
                )

            status = service.run(job_id, on_progress=show)
        final = service.status(job_id, None)
    except VoxError as exc:
        fail(exc)
    shown = ("job_id", "status", "iteration", "best", "start", "stop_reason", "error")
    _print_json({k: v for k, v in final.to_json().items() if k in shown})
    if status != "succeeded":
        raise typer.Exit(1)


@voices_app.command("rollback")
def voices_rollback(voice_id: Annotated[str, typer.Argument(help="Cloned voice id.")]) -> None:
    """Swap back to the style the voice had before its last adaptation."""
    from voxvault.jobs.adapt import AdaptService

    try:
        AdaptService(_vv()).rollback(voice_id, None, actor=CLI_ACTOR)
    except VoxError as exc:
        fail(exc)
    console.print(f"voice {voice_id} rolled back to its previous style", highlight=False)


@voices_app.command("sweep")
def voices_sweep() -> None:
    """Housekeeping (run daily): mark voices past their consent's end, delete samples kept past their date."""
    try:
        result = _vv().voice_registry.sweep()
    except VoxError as exc:
        fail(exc)
    console.print(
        f"{result.expired} voice(s) marked expired; samples of {result.samples_deleted} voice(s) deleted",
        highlight=False,
    )


def register(app: typer.Typer) -> None:
    """Add these commands to the main CLI (``voxvault voices`` becomes a group; its default lists)."""
    app.add_typer(consent_app, name="consent")
    app.add_typer(voices_app, name="voices")
    app.command("enroll")(enroll)
