"""Batch items files: JSONL or CSV rows of ``id, text[, voice, format, ssml, speed]``.

Everything that can be checked without a model is checked here, for every line, before a job starts:
one upload with a typo on line 40 000 is refused at once with the line named, instead of failing hours
later. Ids that parse but are unsafe as file names are not refused here: they become per-item errors,
so one odd id does not block a whole job.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from voxvault.audio import FILE_EXTENSIONS, FORMATS
from voxvault.errors import VoxError

FileKind = Literal["jsonl", "csv"]

MAX_ID_LENGTH = 64  # job_items.item_id
MAX_REPORTED_ERRORS = 100
FIELDS = ("id", "text", "voice", "format", "ssml", "speed")
REQUIRED = ("id", "text")
MIN_SPEED, MAX_SPEED = 0.25, 4.0
_SAFE_ID = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]*")
_TRUE = {"true", "1", "yes", "y"}
_FALSE = {"false", "0", "no", "n", ""}


@dataclass(frozen=True)
class BatchItem:
    """One clip to make. ``voice``/``format`` None mean the job's defaults; ``ssml`` None means detect."""

    id: str
    text: str
    voice: str | None = None
    format: str | None = None
    ssml: bool | None = None
    speed: float | None = None
    line: int = 0


@dataclass(frozen=True)
class LineError:
    line: int
    code: str
    message: str

    def to_dict(self) -> dict[str, Any]:
        return {"line": self.line, "code": self.code, "message": self.message}


@dataclass(frozen=True)
class BatchSpec:
    """A parsed items file: its items in file order and the SHA-256 of the bytes they came from."""

    items: list[BatchItem]
    kind: FileKind
    sha256: str


def unsafe_id_reason(item_id: str) -> str | None:
    """Why ``item_id`` cannot name an output file, or None when it can (it is used verbatim, never mangled,
    so two ids can never map to the same file)."""
    if not _SAFE_ID.fullmatch(item_id):
        return "ids name output files: use letters, digits, '.', '_' and '-', not starting with '.'"
    return None


def output_key(item_id: str, fmt: str) -> str:
    """Where an item's audio lives, relative to the output root (the manifest's ``path``)."""
    return f"audio/{item_id}{FILE_EXTENSIONS[fmt]}"


def detect_kind(name: str | None, data: bytes) -> FileKind:
    """By file name suffix, else by content: a JSONL file's first non-blank byte is ``{``."""
    suffix = Path(name).suffix.lower() if name else ""
    if suffix in (".jsonl", ".ndjson", ".json"):
        return "jsonl"
    if suffix in (".csv", ".tsv"):
        return "csv"
    head = data.lstrip(b"\xef\xbb\xbf \t\r\n")[:1]
    return "jsonl" if head == b"{" else "csv"


def load_items(path: Path, *, max_items: int = 1_000_000) -> BatchSpec:
    """Parse an items file from disk; the kind comes from its suffix (or its content)."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise VoxError("items_file_unreadable", f"cannot read {path}: {exc.strerror or exc}") from None
    return parse_items(data, kind=detect_kind(path.name, data), max_items=max_items)


def parse_items(data: bytes, *, kind: FileKind, max_items: int = 1_000_000) -> BatchSpec:
    """All items of a JSONL or CSV file, or ``VoxError('invalid_batch_file')`` listing every bad line."""
    text = _decode(data)
    errors: list[LineError] = []
    items: list[BatchItem] = []
    rows = _jsonl_rows(text, errors) if kind == "jsonl" else _csv_rows(text, errors)
    seen: dict[str, int] = {}
    for line, row in rows:
        item = _item(line, row, errors)
        if item is None:
            continue
        folded = item.id.casefold()
        first = seen.get(folded)
        if first is not None:
            errors.append(
                LineError(
                    line,
                    "duplicate_id",
                    f"id {item.id!r} is already used on line {first}"
                    " (ids are compared ignoring case: they name files)",
                )
            )
            continue
        seen[folded] = line
        items.append(item)
        if len(items) > max_items:
            raise VoxError("too_many_items", f"a batch holds at most {max_items} items", 413)
    if not items and not errors:
        errors.append(LineError(1, "empty_batch", "the file has no items"))
    if errors:
        errors.sort(key=lambda e: e.line)
        first_error = errors[0]
        raise VoxError(
            "invalid_batch_file",
            f"{len(errors)} problem(s) in the items file; "
            f"first: line {first_error.line}: {first_error.message}",
            errors=[e.to_dict() for e in errors[:MAX_REPORTED_ERRORS]],
            error_count=len(errors),
        )
    return BatchSpec(items=items, kind=kind, sha256=hashlib.sha256(data).hexdigest())


def _decode(data: bytes) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise VoxError(
            "invalid_batch_file",
            f"line {line}: the file is not UTF-8",
            errors=[{"line": line, "code": "not_utf8", "message": "the file is not UTF-8"}],
            error_count=1,
        ) from None


def _jsonl_rows(text: str, errors: list[LineError]) -> list[tuple[int, dict[str, Any]]]:
    rows: list[tuple[int, dict[str, Any]]] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            value = json.loads(raw)
        except json.JSONDecodeError as exc:
            errors.append(LineError(number, "invalid_json", f"not valid JSON ({exc.msg})"))
            continue
        if not isinstance(value, dict):
            errors.append(LineError(number, "not_an_object", "each line must be a JSON object"))
            continue
        rows.append((number, value))
    return rows


def _csv_rows(text: str, errors: list[LineError]) -> list[tuple[int, dict[str, Any]]]:
    # strict: a quote opened and never closed is an error, not a cell that swallows the rest of the file
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        header = next(reader)
    except StopIteration:
        return []
    except csv.Error as exc:
        errors.append(LineError(1, "invalid_csv", str(exc)))
        return []
    names = [h.strip().lower() for h in header]
    missing = [f for f in REQUIRED if f not in names]
    unknown = [n for n in names if n not in FIELDS]
    if missing or unknown or len(set(names)) != len(names):
        problems = []
        if missing:
            problems.append(f"missing column(s) {', '.join(missing)}")
        if unknown:
            problems.append(f"unknown column(s) {', '.join(map(repr, unknown))}")
        if len(set(names)) != len(names):
            problems.append("repeated column names")
        errors.append(
            LineError(1, "invalid_header", "; ".join(problems) + f" (columns: {', '.join(FIELDS)})")
        )
        return []
    rows: list[tuple[int, dict[str, Any]]] = []
    start = reader.line_num + 1
    while True:
        try:
            record = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            message = str(exc)
            if message == "unexpected end of data":
                message = 'a quoted value that starts on this line is never closed (")'
            errors.append(LineError(start, "invalid_csv", message))
            break
        line, start = start, reader.line_num + 1
        if not any(cell.strip() for cell in record):
            continue
        if len(record) != len(names):
            errors.append(
                LineError(line, "wrong_column_count", f"{len(record)} values for {len(names)} columns")
            )
            continue
        rows.append(
            (line, {n: (v if v != "" or n in REQUIRED else None) for n, v in zip(names, record, strict=True)})
        )
    return rows


def _item(line: int, row: dict[str, Any], errors: list[LineError]) -> BatchItem | None:
    def bad(code: str, message: str) -> None:
        errors.append(LineError(line, code, message))

    unknown = sorted(set(row) - set(FIELDS))
    if unknown:
        bad("unknown_field", f"unknown field(s) {', '.join(map(repr, unknown))} (known: {', '.join(FIELDS)})")
        return None
    missing = [f for f in REQUIRED if row.get(f) is None]
    if missing:
        bad("missing_field", f"missing {' and '.join(missing)}")
        return None
    raw_id = row["id"]
    if isinstance(raw_id, bool) or not isinstance(raw_id, str | int):
        bad("invalid_id", "id must be a string")
        return None
    item_id = str(raw_id).strip() if isinstance(raw_id, str) else str(raw_id)
    if not item_id:
        bad("invalid_id", "id is empty")
        return None
    if len(item_id) > MAX_ID_LENGTH:
        bad("id_too_long", f"id is {len(item_id)} characters; the limit is {MAX_ID_LENGTH}")
        return None
    text = row["text"]
    if not isinstance(text, str) or not text.strip():
        bad("empty_text", "text must be a non-empty string")
        return None
    voice = row.get("voice")
    if voice is not None and (not isinstance(voice, str) or not voice.strip()):
        bad("invalid_voice", "voice must be a non-empty string when given")
        return None
    fmt = row.get("format")
    if fmt is not None:
        fmt = str(fmt).strip().lower()
        if fmt not in FORMATS:
            bad("unsupported_format", f"format {row['format']!r} is not one of {', '.join(FORMATS)}")
            return None
    ssml = _flag(row.get("ssml"))
    if ssml == "invalid":
        bad("invalid_ssml_flag", "ssml must be true or false")
        return None
    speed = _speed(row.get("speed"))
    if speed == "invalid":
        bad("invalid_speed", f"speed must be a number between {MIN_SPEED} and {MAX_SPEED}")
        return None
    return BatchItem(
        id=item_id,
        text=text,
        voice=voice.strip() if voice else None,
        format=fmt,
        ssml=ssml,
        speed=speed,
        line=line,
    )


def _flag(value: Any) -> bool | None | Literal["invalid"]:
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str):
        lowered = value.strip().lower()
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False if lowered else None
    return "invalid"


def _speed(value: Any) -> float | None | Literal["invalid"]:
    if value is None:
        return None
    if isinstance(value, bool):
        return "invalid"
    try:
        speed = float(value)
    except (TypeError, ValueError):
        return "invalid"
    if not math.isfinite(speed) or not (MIN_SPEED <= speed <= MAX_SPEED):
        return "invalid"
    return speed
