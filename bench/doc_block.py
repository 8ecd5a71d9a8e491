"""Rewrite one benchmark's block in a Markdown file, between its begin and end markers.

Every bench script records its table in ``docs/*.md`` the same way: replace the text between the markers
when they are there, else append the block (under ``heading`` when given).
"""

from __future__ import annotations

from pathlib import Path


def replace_block(path: Path, block: str, begin: str, end: str, heading: str | None = None) -> None:
    """``block`` must start with ``begin`` and end with ``end``, so the next run finds it again."""
    text = path.read_text() if path.exists() else ""
    if begin in text and end in text:
        head, rest = text.split(begin, 1)
        text = head + block + rest.split(end, 1)[1]
    else:
        section = f"{heading}\n\n{block}" if heading else block
        text = (text.rstrip() + "\n\n" if text.strip() else "") + section + "\n"
    path.write_text(text)
