"""What every CLI module shares: the two consoles and the one way a refusal is printed (one line, exit 2).

The command modules import this, never ``cli.py`` (which imports them to register their commands).
"""

from __future__ import annotations

from typing import NoReturn

import typer
from rich.console import Console
from rich.markup import escape

from voxvault.errors import VoxError

console = Console(soft_wrap=True)  # long paths and keys stay on one line (copyable), never wrapped
err_console = Console(stderr=True, soft_wrap=True)


def fail(exc: VoxError) -> NoReturn:
    """Print ``error [code] message`` (and a batch file's line errors, at most 20) and exit with 2."""
    err_console.print(f"[bold red]error[/] {escape(f'[{exc.code}]')} {escape(exc.message)}", highlight=False)
    for line in (exc.details.get("errors") or [])[:20]:
        text = f"  line {line['line']}: [{line['code']}] {line['message']}"
        err_console.print(escape(text), highlight=False)
    if exc.details.get("error_count", 0) > 20:
        err_console.print(f"  … and {exc.details['error_count'] - 20} more", highlight=False)
    raise typer.Exit(2)
