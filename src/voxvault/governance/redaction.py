"""Keep API keys and spoken text out of logs, whoever writes them (our code, uvicorn, libraries).

Clients sometimes put a key in a URL (``?xi_api_key=...`` is how browsers authenticate ElevenLabs-style
WebSockets) and access logs print URLs; at DEBUG the websockets library prints every frame, and text
frames carry the words to be spoken. ``install_log_redaction`` wraps the process's log record factory so
every record's message and arguments are scrubbed when the record is created, before any handler,
formatter or test capture sees them: keys become ``vv_<prefix>_***``, frames become ``TEXT [79 bytes]``.
Idempotent.
"""

from __future__ import annotations

import logging
import re
from typing import Any

_PATTERNS = (
    # Credentials in query strings.
    (re.compile(r"(?i)\b((?:xi_)?api[_-]?key|authorization|access_token|token)=([^&\s\"']+)"), r"\1=***"),
    # Authorization header values that end up in a message.
    (re.compile(r"(?i)\b(bearer)\s+[A-Za-z0-9._~+/=-]{8,}"), r"\1 ***"),
    # Our own key format anywhere else: keep the visible prefix so people can tell which key it was.
    (re.compile(r"\b(vv_[0-9a-f]{8})_[A-Za-z0-9_-]{8,}"), r"\1_***"),
)
_installed = False


def redact(text: str) -> str:
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


def _scrub(value: Any) -> Any:
    if isinstance(value, str):
        return redact(value)
    if value is None or isinstance(value, int | float | bytes):
        return value  # keeps %d/%f formatting intact
    if hasattr(value, "opcode") and hasattr(value, "data"):
        # A WebSocket frame, printed by the websockets library at DEBUG: its payload is the spoken text.
        data = value.data
        return f"{getattr(value.opcode, 'name', value.opcode)} [{len(data) if data is not None else 0} bytes]"
    text = str(value)  # URLs, headers and other objects that print their contents
    cleaned = redact(text)
    return cleaned if cleaned != text else value


def install_log_redaction() -> None:
    """Scrub API keys from every log record created from now on in this process."""
    global _installed
    if _installed:
        return
    previous = logging.getLogRecordFactory()

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        if isinstance(record.msg, str):
            record.msg = redact(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(_scrub(a) for a in record.args)
        elif isinstance(record.args, dict):
            record.args = {k: _scrub(v) for k, v in record.args.items()}
        return record

    logging.setLogRecordFactory(factory)
    _installed = True
