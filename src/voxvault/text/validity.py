"""Text that cannot be spoken or stored: lone UTF-16 surrogates and NUL characters.

JSON can carry both (``"\\ud800"``, ``"\\u0000"``), and so can Python strings (a command-line argument
with bytes that are not UTF-8 arrives with surrogate escapes). Such text cannot be encoded as UTF-8, so it
cannot be hashed, phonemised or stored (PostgreSQL refuses NUL in text), and used to surface as a 500
(security audit, finding 8). It is refused up front with 400 ``invalid_text`` instead.
"""

from __future__ import annotations

from typing import Any

from voxvault.errors import VoxError

__all__ = ["check_text", "find_invalid_text", "invalid_text_reason"]


def invalid_text_reason(text: str) -> str | None:
    """Why ``text`` cannot be used, or None when it can."""
    if "\x00" in text:
        return "contains a NUL character (U+0000)"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        return f"contains a lone surrogate (U+{ord(text[exc.start]):04X}), which is not a character"
    return None


def check_text(text: str, what: str = "text") -> None:
    """VoxError ``invalid_text`` (400) when ``text`` cannot be spoken or stored."""
    reason = invalid_text_reason(text)
    if reason is not None:
        raise VoxError("invalid_text", f"{what} {reason}", 400)


def find_invalid_text(value: Any, where: str = "") -> str | None:
    """The first problem in any string (key or value) of a parsed JSON value, with its place."""
    if isinstance(value, str):
        reason = invalid_text_reason(value)
        return f"{where or 'a string'} {reason}" if reason else None
    if isinstance(value, dict):
        for key, item in value.items():
            problem = find_invalid_text(key, "a field name") or find_invalid_text(item, str(key)[:40])
            if problem:
                return problem
    elif isinstance(value, list):
        for item in value:
            problem = find_invalid_text(item, where)
            if problem:
                return problem
    return None
