"""A small, strict SSML subset, parsed with the standard library's expat parser.

Supported: <speak>, <p>, <s>, <break time|strength>, <say-as interpret-as=characters|spell-out|cardinal|
ordinal|date|telephone [format]>, <phoneme alphabet="ipa" ph>, <prosody rate>, <sub alias>.
Anything else (an unknown element or attribute, a bad value, malformed XML, a DOCTYPE) is refused with
VoxError ``invalid_ssml`` naming the problem and where it is, instead of being half-spoken. DOCTYPEs are
refused outright, which also rules out entity-expansion attacks.
"""

from __future__ import annotations

import re
import xml.parsers.expat
from dataclasses import dataclass, field

from voxvault.errors import VoxError
from voxvault.text.lexicon import validate_ipa
from voxvault.text.normalize import (
    MONTHS,
    date_words,
    number_words,
    ordinal_words,
    spell_characters,
    telephone_words,
)

__all__ = [
    "Pause",
    "SSMLEvent",
    "SentenceEnd",
    "SpokenPhonemes",
    "SpokenText",
    "is_ssml",
    "parse_ssml",
]

MAX_BREAK_SECONDS = 10.0
MIN_RATE, MAX_RATE = 0.5, 2.0


@dataclass(frozen=True)
class SpokenText:
    text: str
    speed: float
    normalize: bool = True  # False when say-as already produced spoken words


@dataclass(frozen=True)
class SpokenPhonemes:
    text: str  # the written word, for Piece.text
    ipa: str  # Kokoro-vocabulary phonemes, validated
    speed: float


@dataclass(frozen=True)
class Pause:
    seconds: float


@dataclass(frozen=True)
class SentenceEnd:
    paragraph: bool


SSMLEvent = SpokenText | SpokenPhonemes | Pause | SentenceEnd

_ATTRIBUTES: dict[str, frozenset[str]] = {
    "speak": frozenset({"version", "xml:lang", "xmlns"}),
    "p": frozenset({"xml:lang"}),
    "s": frozenset({"xml:lang"}),
    "break": frozenset({"time", "strength"}),
    "say-as": frozenset({"interpret-as", "format"}),
    "phoneme": frozenset({"alphabet", "ph"}),
    "prosody": frozenset({"rate"}),
    "sub": frozenset({"alias"}),
}
_LEAVES = frozenset({"break", "say-as", "phoneme", "sub"})  # text only, no child elements
_STRENGTHS = {"none": 0.0, "x-weak": 0.1, "weak": 0.2, "medium": 0.4, "strong": 0.7, "x-strong": 1.2}
_RATES = {"x-slow": 0.6, "slow": 0.8, "medium": 1.0, "default": 1.0, "fast": 1.2, "x-fast": 1.4}
_INTERPRET_AS = frozenset({"characters", "spell-out", "cardinal", "ordinal", "date", "telephone"})
_DATE_FORMATS = frozenset({"mdy", "dmy", "ymd", "md", "dm", "ym", "my", "y"})


def is_ssml(text: str) -> bool:
    """SSML is recognised by its root tag (or an XML declaration) at the very start."""
    head = text.lstrip()
    return head.startswith("<speak") or head.startswith("<?xml")


@dataclass
class _Frame:
    tag: str
    speed: float
    attrs: dict[str, str]
    where: tuple[int, int]
    text: list[str] = field(default_factory=list)


class _SSMLReader:
    def __init__(self, max_breaks: int | None = None) -> None:
        self.max_breaks = max_breaks
        self.breaks = 0
        self.events: list[SSMLEvent] = []
        self.stack: list[_Frame] = []
        self.parser = xml.parsers.expat.ParserCreate()
        self.parser.StartElementHandler = self._start
        self.parser.EndElementHandler = self._end
        self.parser.CharacterDataHandler = self._text
        self.parser.StartDoctypeDeclHandler = self._doctype
        self.parser.EntityDeclHandler = self._doctype
        self.parser.SetParamEntityParsing(xml.parsers.expat.XML_PARAM_ENTITY_PARSING_NEVER)

    # -- helpers

    def _where(self) -> tuple[int, int]:
        return self.parser.CurrentLineNumber, self.parser.CurrentColumnNumber + 1

    def _fail(self, problem: str, where: tuple[int, int] | None = None) -> VoxError:
        line, column = where or self._where()
        return VoxError(
            "invalid_ssml",
            f"invalid SSML: {problem} (line {line}, column {column})",
            line=line,
            column=column,
        )

    # -- expat handlers

    def _doctype(self, *_: object) -> None:
        raise self._fail("DOCTYPE and entity declarations are not allowed")

    def _start(self, tag: str, attrs: dict[str, str]) -> None:
        where = self._where()
        parent = self.stack[-1] if self.stack else None
        if parent is None and tag != "speak":
            raise self._fail(f"the root element must be <speak>, not <{tag}>", where)
        if tag not in _ATTRIBUTES:
            raise self._fail(f"unsupported element <{tag}>", where)
        if parent is not None:
            if tag == "speak":
                raise self._fail("<speak> cannot be nested", where)
            if parent.tag in _LEAVES:
                raise self._fail(f"<{parent.tag}> cannot contain <{tag}>", where)
            if tag == "p" and any(f.tag in ("p", "s") for f in self.stack):
                raise self._fail("<p> cannot be inside <p> or <s>", where)
            if tag == "s" and any(f.tag == "s" for f in self.stack):
                raise self._fail("<s> cannot be inside <s>", where)
        for name in attrs:
            if name not in _ATTRIBUTES[tag] and not (tag == "speak" and name.startswith("xmlns:")):
                raise self._fail(f"unsupported attribute '{name}' on <{tag}>", where)
        lang = attrs.get("xml:lang")
        if lang is not None and not re.match(r"^en(?:[-_][A-Za-z]+)?$", lang):
            raise self._fail(f"unsupported language '{lang}' (English only)", where)

        speed = parent.speed if parent else 1.0
        if tag == "prosody":
            speed = self._rate(attrs, speed, where)
        elif tag == "say-as":
            self._check_say_as(attrs, where)
        elif tag == "phoneme":
            self._check_phoneme(attrs, where)
        elif tag == "sub" and not attrs.get("alias", "").strip():
            raise self._fail("<sub> needs a non-empty alias", where)
        elif tag == "break":
            self._break_seconds(attrs, where)  # validate now, so errors point at the tag
            self.breaks += 1
            if self.max_breaks is not None and self.breaks > self.max_breaks:
                # Breaks cost no input but render silence: counted, so a short text cannot ask for hours.
                raise VoxError(
                    "too_many_breaks",
                    f"the SSML has more than {self.max_breaks} <break> elements, the limit per request "
                    "(max_ssml_breaks)",
                    413,
                    limit=self.max_breaks,
                )
        self.stack.append(_Frame(tag, speed, dict(attrs), where))

    def _end(self, tag: str) -> None:
        frame = self.stack.pop()
        content = "".join(frame.text)
        if tag == "break":
            self.events.append(Pause(self._break_seconds(frame.attrs, frame.where)))
        elif tag == "say-as":
            self.events.append(SpokenText(self._say_as(frame, content), frame.speed, normalize=False))
        elif tag == "phoneme":
            self.events.append(SpokenPhonemes(" ".join(content.split()), frame.attrs["ph"], frame.speed))
        elif tag == "sub":
            self.events.append(SpokenText(frame.attrs["alias"], frame.speed))
        elif tag in ("s", "p"):
            self.events.append(SentenceEnd(paragraph=tag == "p"))

    def _text(self, data: str) -> None:
        if not self.stack:
            return
        top = self.stack[-1]
        if top.tag in _LEAVES:
            if top.tag == "break" and data.strip():
                raise self._fail("<break> must be empty")
            top.text.append(data)
            return
        last = self.events[-1] if self.events else None
        if isinstance(last, SpokenText) and last.normalize and last.speed == top.speed:
            self.events[-1] = SpokenText(last.text + data, top.speed)  # expat splits text at newlines
        else:
            self.events.append(SpokenText(data, top.speed))

    # -- element semantics

    def _rate(self, attrs: dict[str, str], speed: float, where: tuple[int, int]) -> float:
        rate = attrs.get("rate")
        if rate is None:
            raise self._fail("<prosody> needs a rate attribute", where)
        value = rate.strip().lower()
        if value in _RATES:
            result = _RATES[value]
        else:
            m = re.fullmatch(r"([+-])?(\d+(?:\.\d+)?)%", value)
            if not m:
                raise self._fail(f"prosody rate '{rate}' is not a keyword or a percentage", where)
            amount = float(m.group(2)) / 100.0
            if m.group(1) == "+":
                result = speed * (1.0 + amount)
            elif m.group(1) == "-":
                result = speed * (1.0 - amount)
            else:
                result = amount
        if not MIN_RATE <= result <= MAX_RATE:
            raise self._fail(f"prosody rate '{rate}' is outside {MIN_RATE:.0%}..{MAX_RATE:.0%}", where)
        return round(result, 4)

    def _break_seconds(self, attrs: dict[str, str], where: tuple[int, int]) -> float:
        if "time" in attrs:
            m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(ms|s)\s*", attrs["time"])
            if not m:
                raise self._fail(f"break time '{attrs['time']}' must look like '500ms' or '1.5s'", where)
            seconds = float(m.group(1)) / (1000.0 if m.group(2) == "ms" else 1.0)
            if seconds > MAX_BREAK_SECONDS:
                raise self._fail(f"break time is longer than {MAX_BREAK_SECONDS:g}s", where)
            return seconds
        strength = attrs.get("strength", "medium")
        if strength not in _STRENGTHS:
            raise self._fail(f"break strength '{strength}' is not one of {', '.join(_STRENGTHS)}", where)
        return _STRENGTHS[strength]

    def _check_say_as(self, attrs: dict[str, str], where: tuple[int, int]) -> None:
        kind = attrs.get("interpret-as")
        if kind is None:
            raise self._fail("<say-as> needs an interpret-as attribute", where)
        if kind not in _INTERPRET_AS:
            raise self._fail(
                f"say-as interpret-as '{kind}' is not one of {', '.join(sorted(_INTERPRET_AS))}", where
            )
        fmt = attrs.get("format")
        if fmt is not None and (kind != "date" or fmt not in _DATE_FORMATS):
            raise self._fail(f"say-as format '{fmt}' is not valid for interpret-as '{kind}'", where)

    def _check_phoneme(self, attrs: dict[str, str], where: tuple[int, int]) -> None:
        alphabet = attrs.get("alphabet", "ipa")
        if alphabet != "ipa":
            raise self._fail(f"phoneme alphabet '{alphabet}' is not supported (use 'ipa')", where)
        if "ph" not in attrs:
            raise self._fail("<phoneme> needs a ph attribute", where)
        try:
            attrs["ph"] = validate_ipa(attrs["ph"], code="invalid_ssml", what="<phoneme> ph")
        except VoxError as exc:
            raise self._fail(exc.message.removeprefix("<phoneme> ph: "), where) from None

    def _say_as(self, frame: _Frame, content: str) -> str:
        kind = frame.attrs["interpret-as"]
        value = " ".join(content.split())
        if not value:
            raise self._fail(f"<say-as interpret-as='{kind}'> is empty", frame.where)
        spoken: str | None = None
        if kind in ("characters", "spell-out"):
            spoken = spell_characters(value)
        elif kind == "cardinal":
            m = re.fullmatch(r"([+-])?(\d{1,3}(?:,\d{3})+|\d+)(?:\.(\d+))?", value)
            if m:
                spoken = number_words(m.group(2), m.group(3), negative=m.group(1) == "-")
        elif kind == "ordinal":
            m = re.fullmatch(r"(\d{1,3}(?:,\d{3})+|\d+)(?:st|nd|rd|th)?", value, re.IGNORECASE)
            if m:
                spoken = ordinal_words(int(m.group(1).replace(",", "")))
        elif kind == "date":
            spoken = _date(value, frame.attrs.get("format"))
        elif kind == "telephone" and re.fullmatch(r"\+?[\d\s().-]+", value) and re.search(r"\d", value):
            spoken = telephone_words(value)
        if not spoken:
            raise self._fail(f"<say-as interpret-as='{kind}'> content cannot be read as {kind}", frame.where)
        return spoken


def _date(value: str, fmt: str | None) -> str | None:
    """Numeric (or month-name) date parts in the given field order; ISO 'YYYY-MM-DD' when no format."""
    parts = [p for p in re.split(r"[-/.,\s]+", value) if p]
    if fmt is None:
        fmt = "ymd" if re.fullmatch(r"\d{4}-\d{1,2}-\d{1,2}", value) else "mdy"
    if len(parts) != len(fmt):
        return None
    fields: dict[str, int] = {}
    for letter, part in zip(fmt, parts, strict=True):
        if part.isdigit():
            number = int(part)
            if letter == "y" and len(part) == 2:
                number += 2000
            fields[letter] = number
        elif letter == "m":
            names = {name.lower(): i + 1 for i, name in enumerate(MONTHS)}
            short = {name[:3]: i for name, i in names.items()}
            key = part.rstrip(".").lower()
            if key not in names and key not in short:
                return None
            fields["m"] = names.get(key) or short[key]
        else:
            return None
    return date_words(fields.get("y"), fields.get("m"), fields.get("d"))


def parse_ssml(text: str, *, max_breaks: int | None = None) -> list[SSMLEvent]:
    """SSML document -> flat list of events in speaking order; VoxError ``invalid_ssml`` on any problem,
    ``too_many_breaks`` (413) past ``max_breaks`` ``<break>`` elements (parsing stops there)."""
    reader = _SSMLReader(max_breaks)
    source = text.lstrip() if text.lstrip().startswith("<?xml") else text
    try:
        reader.parser.Parse(source, True)
    except xml.parsers.expat.ExpatError as exc:
        message = xml.parsers.expat.ErrorString(exc.code) if exc.code is not None else str(exc)
        raise VoxError(
            "invalid_ssml",
            f"malformed SSML: {message} (line {exc.lineno}, column {exc.offset + 1})",
            line=exc.lineno,
            column=exc.offset + 1,
        ) from None
    return reader.events
