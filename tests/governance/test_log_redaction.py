"""The log record factory scrubs keys and WebSocket payloads before any handler sees them."""

from __future__ import annotations

import logging

import pytest

from voxvault.governance.redaction import install_log_redaction, redact

KEY = "vv_1a2b3c4d_Zk3-9xQ_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        (f"GET /v1/keys?xi_api_key={KEY}&x=1", "GET /v1/keys?xi_api_key=***&x=1"),
        ("GET /a?api_key=supersecretvalue HTTP/1.1", "GET /a?api_key=*** HTTP/1.1"),
        ("/ws?authorization=Bearer%20abc", "/ws?authorization=***"),
        (f"header Authorization: Bearer {KEY}", "header Authorization: Bearer ***"),
        (f"key {KEY} used", "key vv_1a2b3c4d_*** used"),
        ("nothing secret here, 42 chars", "nothing secret here, 42 chars"),
    ],
)
def test_redact(raw: str, clean: str) -> None:
    assert redact(raw) == clean


class _Frame:
    class opcode:  # noqa: N801 - mimics websockets' Opcode enum member
        name = "TEXT"

    data = b'{"text": "the words to be spoken"}'


def test_records_are_scrubbed_at_creation(caplog: pytest.LogCaptureFixture) -> None:
    install_log_redaction()
    install_log_redaction()  # idempotent
    log = logging.getLogger("voxvault.test.redaction")
    with caplog.at_level(logging.DEBUG):
        log.info("request %s took %d ms", f"/v1/x?xi_api_key={KEY}", 12)
        log.debug("< %s", _Frame())
        log.warning(f"inline {KEY}")
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert KEY not in text and "words to be spoken" not in text
    assert "took 12 ms" in text and "TEXT [34 bytes]" in text and "vv_1a2b3c4d_***" in text
