"""``voxvault keys ...`` and ``voxvault audit ...``: governance from the command line.

These work directly on the configured database, blob store and key file (``VOXVAULT_*`` settings), so
an operator can manage keys and check the audit log with no server running. Actions are audited with
the actor ``cli``.
"""

from __future__ import annotations

import base64
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape
from rich.table import Table

from voxvault.cli_common import console, err_console, fail
from voxvault.config import Settings
from voxvault.errors import VoxError

if TYPE_CHECKING:
    from voxvault.service import VoxVault

CLI_ACTOR = "cli"

keys_app = typer.Typer(help="API keys (create, list, revoke) and the master key.", no_args_is_help=True)
audit_app = typer.Typer(help="The tamper-evident audit log: verify and export.", no_args_is_help=True)


def _vv(*, key_warning: bool = False) -> VoxVault:
    """The service; ``key_warning``: say (once, on stderr) when the master key sits in the data dir."""
    from voxvault.service import VoxVault

    vv = VoxVault(Settings())
    if key_warning and (warning := vv.key_location.warning):
        err_console.print(f"[yellow]warning[/] {escape(warning)}", highlight=False)
    return vv


def _when(value: object) -> str:
    return value.isoformat(timespec="seconds") if hasattr(value, "isoformat") else ""


# -- keys ------------------------------------------------------------------------------------------------
@keys_app.command("create")
def keys_create(
    scope: Annotated[
        list[str],
        typer.Option(
            "--scope",
            "-s",
            help="voices:read, voices:write, consent:manage, speech:create, speech:transcribe, "
            "audit:read or admin; repeat for several.",
        ),
    ],
    voice: Annotated[
        list[str] | None, typer.Option("--voice", help="Limit the key to this voice; repeatable.")
    ] = None,
    expires: Annotated[str | None, typer.Option(help="30d, 12h, 2w, or an ISO date (UTC).")] = None,
    name: Annotated[str, typer.Option(help="A label for people.")] = "",
    project: Annotated[str | None, typer.Option(help="Project id (default: the first project).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Create an API key and print it once (only its SHA-256 is stored)."""
    from voxvault.governance.keys import parse_expiry

    vv = _vv(key_warning=True)
    try:
        if project is None:
            org_id, project_id = vv.keys.ensure_default_project()
        else:
            found = vv.keys.project_org(project)
            if found is None:
                raise VoxError("project_not_found", f"no project {project!r}", 404)
            org_id, project_id = found, project
        created = vv.keys.create(
            org_id=org_id,
            project_id=project_id,
            scopes=[s.strip() for item in scope for s in item.split(",") if s.strip()],
            name=name,
            voice_ids=list(voice) if voice else None,
            expires_at=parse_expiry(expires) if expires else None,
            actor=CLI_ACTOR,
        )
    except VoxError as exc:
        fail(exc)
    if as_json:
        print(
            json.dumps(
                {
                    "id": created.id,
                    "key": created.secret,
                    "prefix": created.prefix,
                    "scopes": created.scopes,
                    "project_id": created.project_id,
                    "voice_ids": created.voice_ids,
                    "expires_at": _when(created.expires_at) or None,
                }
            )
        )
        return
    err_console.print("[bold yellow]API key (shown once; store it now):[/]", highlight=False)
    print(created.secret)
    err_console.print(
        f"id {created.id}  prefix {created.prefix}  scopes {','.join(created.scopes)}"
        + (f"  voices {','.join(created.voice_ids)}" if created.voice_ids else "")
        + (f"  expires {_when(created.expires_at)}" if created.expires_at else ""),
        highlight=False,
    )


@keys_app.command("list")
def keys_list(as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """Every API key (never a secret): prefix, scopes, voices, state, dates."""
    vv = _vv(key_warning=True)
    try:
        keys = vv.keys.list()
    except VoxError as exc:
        fail(exc)
    if as_json:
        print(
            json.dumps(
                [
                    {
                        "id": k.id,
                        "prefix": k.prefix,
                        "name": k.name,
                        "org_id": k.org_id,
                        "project_id": k.project_id,
                        "scopes": k.scopes,
                        "voice_ids": k.voice_ids,
                        "state": k.state,
                        "created_at": _when(k.created_at),
                        "expires_at": _when(k.expires_at) or None,
                        "last_used_at": _when(k.last_used_at) or None,
                    }
                    for k in keys
                ],
                indent=2,
            )
        )
        return
    rows = [
        (
            k.id,
            k.prefix,
            k.name,
            ",".join(k.scopes),
            ",".join(k.voice_ids or []) or "all",
            k.state,
            _when(k.created_at),
            _when(k.expires_at),
            _when(k.last_used_at),
        )
        for k in keys
    ]
    table = Table("id", "prefix", "name", "scopes", "voices", "state", "created", "expires", "last used")
    for row in rows:
        table.add_row(*row)
    if console.measure(table, options=console.options.update_width(10_000)).maximum <= console.width:
        console.print(table)
        return
    # Too narrow for the table (an 80-column terminal): one block per key, so that the id, which is what
    # `keys revoke` takes, is never cut short.
    for kid, prefix, name, scopes, voices, state, created, expires, used in rows:
        console.print(f"{kid}  {escape(name)}  {state}", highlight=False)
        console.print(f"  prefix {prefix} · scopes {scopes} · voices {escape(voices)}", highlight=False)
        dates = f"  created {created} · expires {expires or 'never'} · last used {used or 'never'}"
        console.print(dates, highlight=False)


@keys_app.command("revoke")
def keys_revoke(key_id: Annotated[str, typer.Argument(help="The key's id (see 'keys list').")]) -> None:
    """Revoke a key at once: it is refused (401) from the next request on."""
    vv = _vv(key_warning=True)
    try:
        info = vv.keys.revoke(key_id, None, actor=CLI_ACTOR)
    except VoxError as exc:
        fail(exc)
    console.print(f"revoked {info.id} (prefix {info.prefix})", highlight=False)


@keys_app.command("rotate-master")
def keys_rotate_master(
    rewrap_only: Annotated[
        bool,
        typer.Option("--rewrap-only", help="Do not add a key; re-wrap everything under the current one."),
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Add a new master key and re-wrap every stored object's data key under it.

    With the key in a file (the default), the new key is appended to it and becomes current. With
    VOXVAULT_MASTER_KEY, a new key is printed to add to the variable; restart, then run --rewrap-only.
    """
    from voxvault.governance.crypto import new_master_key
    from voxvault.governance.rotation import rotate_master_key

    vv = _vv(key_warning=True)
    try:
        if vv.key_manager.source is None and not rewrap_only:
            kid, key = new_master_key()
            err_console.print(
                "The master key comes from VOXVAULT_MASTER_KEY. Append this pair to it (comma-separated; "
                "the last pair is current), restart every voxvault process, then run "
                "'voxvault keys rotate-master --rewrap-only':",
                highlight=False,
            )
            print(f"{kid}:{base64.b64encode(key).decode()}")
            return
        rotation = rotate_master_key(
            vv.key_manager,
            vv.envelope,
            vv.blobs,
            vv.audit,
            rewrap_only=rewrap_only,
            actor=CLI_ACTOR,
            db=vv.db,
        )
    except VoxError as exc:
        fail(exc)
    report = rotation.report.as_dict()
    if as_json:
        print(json.dumps({"new_kid": rotation.new_kid, **report}))
    else:
        if rotation.new_kid:
            console.print(
                f"new master key {rotation.new_kid} appended to {vv.key_manager.source}", highlight=False
            )
        console.print(
            f"re-wrapped {report['rewrapped']}, already current {report['already_current']}, "
            f"not sealed {report['not_sealed']}, failed {report['failed']}",
            highlight=False,
        )
        if report["remaining_kids"]:
            console.print(f"[red]still under old keys:[/] {report['remaining_kids']}", highlight=False)
        else:
            console.print(
                "every sealed object uses the current key; older keys may be removed from the key "
                "file once every process has restarted",
                highlight=False,
            )
    if rotation.report.failed:
        raise typer.Exit(1)


# -- audit -----------------------------------------------------------------------------------------------
@audit_app.command("verify")
def audit_verify(
    anchor: Annotated[
        list[str] | None,
        typer.Option(
            "--anchor", help="seq:hash printed by an earlier verify and kept elsewhere; repeatable."
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Check the hash chain; exit 1 and name every edited, deleted, inserted or reordered entry."""
    from voxvault.governance.audit import parse_anchor

    anchors: dict[int, str] = {}
    for a in anchor or []:
        try:
            seq, digest = parse_anchor(a)
        except ValueError as exc:
            fail(VoxError("invalid_anchor", str(exc)))
        anchors[seq] = digest
    try:
        result = _vv().audit.verify(anchors or None)
    except VoxError as exc:
        fail(exc)
    if as_json:
        print(json.dumps(result.as_dict()))
    elif result.ok:
        console.print(f"audit log intact: {result.checked} entries", highlight=False)
        console.print(f"anchor (keep it somewhere else): {result.anchor}", highlight=False)
    else:
        console.print(
            f"[bold red]audit log damaged:[/] {len(result.problems)} problem(s) in {result.checked} entries",
            highlight=False,
        )
        for p in result.problems:
            console.print(f"  seq {p.seq}: {p.kind}: {p.message}", highlight=False)
    if not result.ok:
        raise typer.Exit(1)


@audit_app.command("reanchor")
def audit_reanchor(
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
) -> None:
    """After investigating a missing or forged checkpoint: anchor the chain at its current head (audited)."""
    if not yes:
        typer.confirm("Accept the audit log as it is now and anchor it anew", abort=True)
    try:
        result = _vv().audit.reanchor(actor=CLI_ACTOR)
    except VoxError as exc:
        fail(exc)
    console.print(f"audit log anchored at {result.anchor} ({result.checked} entries)", highlight=False)


@audit_app.command("export")
def audit_export(
    since: Annotated[str | None, typer.Option(help="A sequence number (after it) or an ISO time.")] = None,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="File to write (default stdout).")
    ] = None,
) -> None:
    """Write the audit log as JSON Lines (one entry per line, oldest first)."""
    from voxvault.governance.audit import parse_since

    try:
        since_seq, since_ts = parse_since(since)
        entries = _vv().audit.entries(since_seq=since_seq, since_ts=since_ts)
        out = output.open("w", encoding="utf-8") if output else sys.stdout
        try:
            n = 0
            for entry in entries:
                out.write(json.dumps(entry, sort_keys=True, ensure_ascii=False) + "\n")
                n += 1
        finally:
            if output:
                out.close()
    except VoxError as exc:
        fail(exc)
    if output:
        err_console.print(f"wrote {n} entries to {output}", highlight=False)
