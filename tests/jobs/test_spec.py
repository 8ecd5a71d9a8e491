"""Items files: what parses, and how bad lines are reported (each one named, nothing run)."""

from __future__ import annotations

from pathlib import Path

import pytest

from voxvault.errors import VoxError
from voxvault.jobs.spec import BatchItem, detect_kind, load_items, output_key, parse_items, unsafe_id_reason


def _errors(data: bytes, kind: str) -> list[dict[str, object]]:
    with pytest.raises(VoxError) as info:
        parse_items(data, kind=kind)  # type: ignore[arg-type]
    assert info.value.code == "invalid_batch_file"
    errors: list[dict[str, object]] = info.value.details["errors"]
    assert info.value.details["error_count"] == len(errors)
    return errors


def test_jsonl_items_keep_order_and_optional_fields() -> None:
    data = (
        b'{"id": "a1", "text": "Hello there."}\n'
        b"\n"
        b'{"id": 7, "text": "<speak>Hi</speak>", "voice": "kumo", "format": "MP3", "ssml": true, '
        b'"speed": 1.5}\n'
    )
    spec = parse_items(data, kind="jsonl")
    assert spec.items == [
        BatchItem(id="a1", text="Hello there.", line=1),
        BatchItem(id="7", text="<speak>Hi</speak>", voice="kumo", format="mp3", ssml=True, speed=1.5, line=3),
    ]
    assert spec.kind == "jsonl" and len(spec.sha256) == 64


def test_csv_items_with_quoted_multiline_text_and_blank_optionals() -> None:
    data = b'id,text,voice,format,ssml\nintro,"Line one,\nline two.",,,\noutro,Goodbye.,alpha,flac,no\n'
    spec = parse_items(data, kind="csv")
    assert [(i.id, i.text, i.voice, i.format, i.ssml, i.line) for i in spec.items] == [
        ("intro", "Line one,\nline two.", None, None, None, 2),
        ("outro", "Goodbye.", "alpha", "flac", False, 4),
    ]


def test_every_bad_jsonl_line_is_named() -> None:
    data = (
        b'{"id": "ok", "text": "fine"}\n'
        b"{not json\n"
        b'["a list"]\n'
        b'{"id": "x", "txt": "typo"}\n'
        b'{"id": "y"}\n'
        b'{"id": "z", "text": "t", "format": "ogg"}\n'
        b'{"id": "OK", "text": "same id as line 1 but for case"}\n'
        b'{"id": "s", "text": "t", "speed": 9}\n'
        b'{"id": "' + b"n" * 65 + b'", "text": "t"}\n'
        b'{"id": "w", "text": "   "}\n'
    )
    errors = _errors(data, "jsonl")
    assert [(e["line"], e["code"]) for e in errors] == [
        (2, "invalid_json"),
        (3, "not_an_object"),
        (4, "unknown_field"),
        (5, "missing_field"),
        (6, "unsupported_format"),
        (7, "duplicate_id"),
        (8, "invalid_speed"),
        (9, "id_too_long"),
        (10, "empty_text"),
    ]
    assert "line 1" in str(errors[5]["message"])


def test_csv_header_and_row_problems() -> None:
    assert [e["code"] for e in _errors(b"id,words\nx,hello\n", "csv")] == ["invalid_header"]
    errors = _errors(b"id,text\na,hello\nb,hello,extra\nc,hello\n", "csv")
    assert [(e["line"], e["code"]) for e in errors] == [(3, "wrong_column_count")]


def test_non_utf8_empty_and_too_large_files_are_refused() -> None:
    assert _errors(b'{"id": "a", "text": "ok"}\n{"id": "b", "text": "\xff"}\n', "jsonl")[0]["line"] == 2
    assert _errors(b"\n\n", "jsonl")[0]["code"] == "empty_batch"
    with pytest.raises(VoxError) as info:
        parse_items(b'{"id": "a", "text": "x"}\n{"id": "b", "text": "y"}\n', kind="jsonl", max_items=1)
    assert info.value.code == "too_many_items"


def test_unsafe_ids_parse_but_are_flagged_and_safe_ids_map_to_files() -> None:
    spec = parse_items(
        b'{"id": "../etc/passwd", "text": "x"}\n{"id": ".hidden", "text": "y"}\n', kind="jsonl"
    )
    assert all(unsafe_id_reason(item.id) for item in spec.items)
    assert unsafe_id_reason("chapter-01_take.2") is None
    assert output_key("chapter-01_take.2", "mp3") == "audio/chapter-01_take.2.mp3"
    assert output_key("x", "opus") == "audio/x.opus"


def test_kind_from_suffix_or_content(tmp_path: Path) -> None:
    assert detect_kind("items.csv", b'{"id"') == "csv"
    assert detect_kind(None, b'\xef\xbb\xbf  {"id": 1}') == "jsonl"
    assert detect_kind("items.txt", b"id,text\n") == "csv"
    path = tmp_path / "items.ndjson"
    path.write_text('{"id": "a", "text": "hi"}\n')
    assert [i.id for i in load_items(path).items] == ["a"]
    with pytest.raises(VoxError) as info:
        load_items(tmp_path / "missing.jsonl")
    assert info.value.code == "items_file_unreadable"
