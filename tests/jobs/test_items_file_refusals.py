"""The items-file mistakes test_spec.py leaves out, each named by line and code as ``voxvault batch run`` and
``POST /v1/batches`` print them: bad ids, voices, ssml flags and speeds in JSONL; CSV headers, ragged rows
and broken quoting; an empty file."""

from __future__ import annotations

import pytest

from voxvault.errors import VoxError
from voxvault.jobs.spec import parse_items


def _errors(data: bytes, kind: str) -> list[tuple[object, object]]:
    with pytest.raises(VoxError) as info:
        parse_items(data, kind=kind)  # type: ignore[arg-type]
    assert info.value.code == "invalid_batch_file"
    return [(e["line"], e["code"]) for e in info.value.details["errors"]]


def test_every_bad_value_in_jsonl_is_named_with_its_line() -> None:
    data = (
        b'{"id": true, "text": "a boolean is no id"}\n'
        b'{"id": [1], "text": "nor a list"}\n'
        b'{"id": "   ", "text": "blank id"}\n'
        b'{"id": "v", "text": "t", "voice": ""}\n'
        b'{"id": "w", "text": "t", "voice": 3}\n'
        b'{"id": "x", "text": "t", "ssml": "maybe"}\n'
        b'{"id": "y", "text": "t", "ssml": 1}\n'
        b'{"id": "z", "text": "t", "speed": "fast"}\n'
        b'{"id": "z2", "text": "t", "speed": true}\n'
        b'{"id": "z3", "text": "t", "speed": NaN}\n'
        b'{"id": "ok", "text": "t", "ssml": "yes", "speed": "0.5"}\n'
    )
    assert _errors(data, "jsonl") == [
        (1, "invalid_id"),
        (2, "invalid_id"),
        (3, "invalid_id"),
        (4, "invalid_voice"),
        (5, "invalid_voice"),
        (6, "invalid_ssml_flag"),
        (7, "invalid_ssml_flag"),
        (8, "invalid_speed"),
        (9, "invalid_speed"),
        (10, "invalid_speed"),
    ]


def test_flags_and_speeds_in_their_written_forms_are_read() -> None:
    data = b"id,text,ssml,speed\na,One.,yes,0.5\nb,Two.,FALSE,\nc,Three.,,2\n"
    items = parse_items(data, kind="csv").items
    assert [(i.id, i.ssml, i.speed) for i in items] == [
        ("a", True, 0.5),
        ("b", False, None),
        ("c", None, 2.0),
    ]


@pytest.mark.parametrize(
    ("data", "expected", "words"),
    [
        (b"id,text,id\na,b,c\n", [(1, "invalid_header")], "repeated column names"),
        (b"id,words\na,b\n", [(1, "invalid_header")], "missing column(s) text"),
        (b"id,text,colour\na,b,red\n", [(1, "invalid_header")], "unknown column(s) 'colour'"),
        (
            b"id,text\na,Fine.\nb\n\nc,x,y\n",
            [(3, "wrong_column_count"), (5, "wrong_column_count")],
            "1 values",
        ),
        # one cell over the csv module's field limit (131072 characters) ends the parse at its line
        (
            b"id,text\na,Fine.\nb," + b"x" * 140_000 + b"\n",
            [(3, "invalid_csv")],
            "field larger than field limit",
        ),
        (b"x" * 140_000 + b"\n", [(1, "invalid_csv")], "field larger than field limit"),
        # a quote never closed would otherwise swallow every later line into one item's text
        (
            b'id,text\na,Fine.\nb,"He said hi.\nc,Third.\nd,Fourth.\n',
            [(3, "invalid_csv")],
            "never closed",
        ),
    ],
)
def test_csv_mistakes_are_named_by_line(data: bytes, expected: list[tuple[int, str]], words: str) -> None:
    with pytest.raises(VoxError) as info:
        parse_items(data, kind="csv")
    errors = info.value.details["errors"]
    assert [(e["line"], e["code"]) for e in errors] == expected
    assert words in errors[0]["message"]


@pytest.mark.parametrize("kind", ["csv", "jsonl"])
def test_an_empty_file_is_refused(kind: str) -> None:
    with pytest.raises(VoxError) as info:
        parse_items(b"", kind=kind)  # type: ignore[arg-type]
    assert info.value.code == "invalid_batch_file" and "the file has no items" in info.value.message
