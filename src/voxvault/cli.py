"""``voxvault`` command line: serve the API, speak text, list voices, check the install.

Errors a user can cause print one red line with their code and exit 2; never a traceback.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.panel import Panel
from rich.table import Table

from voxvault.cli_batch import batch_app
from voxvault.cli_common import console, err_console, fail
from voxvault.cli_eval import eval_app
from voxvault.cli_governance import audit_app, keys_app
from voxvault.cli_transcribe import register as register_transcribe_command
from voxvault.cli_voices import register as register_voice_commands
from voxvault.config import Settings
from voxvault.errors import VoxError

app = typer.Typer(
    help="voxvault: consent-first voice cloning, offline.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.add_typer(keys_app, name="keys")
app.add_typer(audit_app, name="audit")
app.add_typer(batch_app, name="batch")
app.add_typer(eval_app, name="eval")


def _vv() -> object:
    from voxvault.service import VoxVault

    return VoxVault(Settings())


@app.command()
def serve(
    host: Annotated[
        str | None, typer.Option(help="Bind address (default VOXVAULT_HOST or 127.0.0.1).")
    ] = None,
    port: Annotated[int | None, typer.Option(help="Port (default VOXVAULT_PORT or 8000).")] = None,
) -> None:
    """Run the HTTP API (OpenAPI docs at /docs)."""
    import uvicorn

    from voxvault.api.app import create_app
    from voxvault.service import VoxVault

    settings = Settings()
    _mmap_threshold(settings.malloc_mmap_threshold_kb)
    if host:
        settings.host = host
    if port:
        settings.port = port
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    vv = VoxVault(settings)
    try:
        created = vv.bootstrap()
        _ = vv.blobs  # open the blob store now: a missing boto3 or a bad URL is one line here, not at warm-up
        _ = vv.envelope  # load the master key now (the app warns at start when it sits in the data dir)
    except VoxError as exc:
        fail(exc)
    if created is not None and settings.bootstrap_key is None:
        # Printed once to the terminal, never logged: only its SHA-256 is stored. Framed, so it stands out
        # from the migration and server log lines around it.
        console.print(
            Panel.fit(
                f"[bold]{created.secret}[/]\n\n"
                "Send it as: Authorization: Bearer <key>\n"
                "Only its hash is kept. Lost it? Make another (server running or not):\n"
                "  voxvault keys create --scope admin --name me",
                title="[bold yellow]Admin API key: shown once, store it now[/]",
                border_style="yellow",
            ),
            highlight=False,
        )
    console.print(
        f"voxvault serving on http://{settings.host}:{settings.port}  (docs: /docs, console: /; "
        f"data in {settings.data_dir})",
        highlight=False,
    )
    uvicorn.run(create_app(vv=vv), host=settings.host, port=settings.port, log_level=settings.log_level)


def _mmap_threshold(kb: int) -> None:
    """Fix glibc's mmap threshold (settings.malloc_mmap_threshold_kb) before the models load: a long-running
    server's RSS otherwise keeps the freed buffers of its busiest moment (docs/benchmarks.md, issue 28).
    Other C libraries have no such knob; then nothing happens."""
    if kb <= 0:
        return
    import ctypes

    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return
    m_mmap_threshold = -3  # from glibc's malloc.h
    if not mallopt(m_mmap_threshold, kb * 1024):
        logging.getLogger(__name__).warning("mallopt(M_MMAP_THRESHOLD, %d kB) refused", kb)


@app.command()
def say(
    text: Annotated[str, typer.Argument(help="Text or SSML to speak; '-' reads standard input.")],
    voice: Annotated[
        str | None, typer.Option("--voice", "-v", help="Voice id (a preset by default).")
    ] = None,
    output: Annotated[
        Path, typer.Option("--output", "-o", help="Output file; format from its suffix.")
    ] = Path("out.wav"),
    fmt: Annotated[
        str | None, typer.Option("--format", "-f", help="mp3, opus, aac, flac, wav or pcm.")
    ] = None,
    speed: Annotated[float, typer.Option(help="0.25 to 4.0")] = 1.0,
) -> None:
    """Speak text into an audio file."""
    from voxvault.synthesis.pipeline import check_request

    if text == "-":
        text = sys.stdin.read()
    fmt = fmt or (output.suffix.lstrip(".").lower() or "wav")
    fmt = {"ogg": "opus", "raw": "pcm", "m4a": "aac"}.get(fmt, fmt)
    try:
        check_request(text, fmt, speed)  # a bad flag answers before the model loads (seconds)
    except VoxError as exc:
        fail(exc)
    from voxvault.service import VoxVault

    try:
        with console.status("synthesising…"):
            speech = VoxVault(Settings()).speak(text, voice=voice, format=fmt, speed=speed)
    except VoxError as exc:
        fail(exc)
    tmp = output.with_name(output.name + ".part")
    tmp.write_bytes(speech.audio)
    tmp.replace(output)
    console.print(
        f"wrote {output} ({speech.duration:.2f} s of audio, {len(speech.audio)} bytes, "
        f"synthesised in {speech.timings['total_s']:.2f} s)"
    )


# `voxvault voices [show|revoke|renew|rm]`, `voxvault consent start`, `voxvault enroll` (cli_voices.py).
register_voice_commands(app)
register_transcribe_command(app)


@app.command()
def detect(
    file: Annotated[Path, typer.Argument(help="Audio file to check (any common format).")],
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Look for the voxvault watermark in FILE and trace it to its generation record."""
    if not file.is_file():
        fail(VoxError("file_not_found", f"no such file: {file}"))
    from voxvault.service import VoxVault

    vv = VoxVault(Settings())
    try:
        data = file.read_bytes()
        if len(data) > vv.settings.max_upload_bytes:
            raise VoxError("upload_too_large", f"{file} is larger than {vv.settings.max_upload_bytes} bytes")
        result = vv.provenance.detect_bytes(data)
    except VoxError as exc:
        fail(exc)
    result["generation"] = vv.provenance.generation(int(result["payload"])) if result["present"] else None
    vv.provenance.record_detection(result, None)
    if as_json:
        print(json.dumps(result, default=str))
        return
    if result["present"]:
        console.print(
            f"[bold green]watermark present[/] payload={result['payload']} "
            f"confidence={result['confidence']:.2f}"
        )
        if result["generation"]:
            g = result["generation"]
            console.print(
                f"generation {g['generation_id']}: voice {g['voice_id']}, key {g['key_id']}, "
                f"{g['created_at']}, {g['duration_s']:.2f} s {g['format']}"
            )
    else:
        console.print("[bold]no voxvault watermark found[/]")


@app.command()
def doctor(as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """Load every engine, time it and print versions."""
    from voxvault.service import VoxVault

    with console.status("loading engines…"):
        vv = VoxVault(Settings())
        report = vv.doctor()
    report["loaded_engines"] = [dataclasses.asdict(state) for state in vv.engines.status()]
    if as_json:
        print(json.dumps(report, indent=2, default=str))
    else:
        table = Table("engine", "name", "ok", "load s", "detail")
        for kind, info in report["engines"].items():
            detail = info.get("error") or (json.dumps(info["sample"]) if "sample" in info else "")
            table.add_row(
                kind,
                str(info.get("name", "")),
                "yes" if info["ok"] else "[red]no[/]",
                str(info.get("load_s", "")),
                detail,
            )
        console.print(table)
        loaded = Table("loaded engine", "load s", "idle s", "in use", "unloaded when idle")
        for state in report["loaded_engines"]:
            ttl = "never" if state["pinned"] or vv.engines.idle_ttl_s <= 0 else f"{vv.engines.idle_ttl_s:g} s"
            loaded.add_row(
                f"{state['kind']}:{state['name']}",
                str(state["load_s"]),
                str(state["idle_s"]),
                str(state["in_use"]),
                ttl,
            )
        console.print(loaded)
        console.print({k: v for k, v in report["versions"].items()})
        key_warning = report["master_key"]["warning"]
        if key_warning:
            err_console.print(f"[yellow]warning[/] {escape(key_warning)}", highlight=False)
    if not all(info["ok"] for info in report["engines"].values()):
        raise typer.Exit(1)


def main() -> None:
    """Console entry: an error a command did not catch (a missing extra, a bad setting) is still one line."""
    try:
        app()
    except VoxError as exc:
        err_console.print(f"[bold red]error[/] {escape(f'[{exc.code}] {exc.message}')}", highlight=False)
        raise SystemExit(2) from None


if __name__ == "__main__":  # pragma: no cover
    main()
