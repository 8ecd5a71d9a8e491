"""``JsonTextScanner``: the same verdict however a body is cut into chunks (audit finding 8)."""

from __future__ import annotations

import json

import pytest

from voxvault.api.text_guard import JsonTextScanner
from voxvault.text.validity import find_invalid_text, invalid_text_reason

GOOD = [
    b'{"input": "Hello there."}',
    b'{"input": "emoji \\ud83d\\ude00 ok"}',
    b'{"input": "a\\\\ud800"}',  # an escaped backslash, then the letters ud800
    b'{"input": "\\\\\\\\ud800 \\u00e9 \\n"}',
    '{"input": "caf\u00e9 \U0001f600"}'.encode(),
    b"\xef\xbb\xbf{}",
]
BAD = [
    b'{"input": "\\ud800"}',
    b'{"input": "\\uDBFF x"}',
    b'{"input": "\\udc00"}',
    b'{"input": "\\ud800\\ud800"}',
    b'{"input": "\\ud800\\n\\udc00"}',
    b'{"input": "\\\\\\ud800"}',  # an escaped backslash, then a real lone escape
    b'{"input": "a\\u0000b"}',
    b'{"input": "\xed\xa0\x80"}',
    b'{"input": "\\ud800',  # the body ends right after a high surrogate
    json.dumps({"input": "hi"}).encode("utf-16"),
    json.dumps({"input": "hi"}).encode("utf-32-le"),
]


def verdict(body: bytes, size: int) -> str | None:
    scanner = JsonTextScanner()
    chunks = [body[i : i + size] for i in range(0, len(body), size)] or [b""]
    for i, chunk in enumerate(chunks):
        problem = scanner.feed(chunk, i == len(chunks) - 1)
        if problem:
            return problem
    return None


@pytest.mark.parametrize("body", GOOD)
@pytest.mark.parametrize("size", [1, 2, 3, 5, 7, 13, 10_000])
def test_valid_json_text_passes_in_any_chunking(body: bytes, size: int) -> None:
    assert verdict(body, size) is None


@pytest.mark.parametrize("body", BAD)
@pytest.mark.parametrize("size", [1, 2, 3, 5, 7, 13, 10_000])
def test_lone_surrogates_and_nul_are_found_in_any_chunking(body: bytes, size: int) -> None:
    assert verdict(body, size) is not None


def test_agrees_with_what_json_loads_would_produce() -> None:
    """What the scanner passes decodes to usable text; what it refuses (UTF-8 bodies) decodes to text
    that ``invalid_text_reason`` refuses as well."""
    for body in GOOD:
        assert find_invalid_text(json.loads(body.decode("utf-8-sig"))) is None
    for body in BAD[:8]:
        assert invalid_text_reason(json.loads(body)["input"]) is not None
