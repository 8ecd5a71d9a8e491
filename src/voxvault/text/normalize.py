"""English text normalisation: turn written forms (numbers, money, dates, URLs...) into speakable words.

espeak would read "$3.50" as "dollar three point five zero" and "2026-11-22" as a subtraction, so every
written form a reader expands in their head is expanded here first. The passes run in a fixed order (each
one sees the output of the previous), use no locale or clock, and are therefore deterministic.

Spelled letters are written hyphen-joined ("W-W-W", "P-M"): espeak then reads letter names, whereas a
lone "A" between spaces would come out as the article.
"""

from __future__ import annotations

import calendar
import re
import unicodedata
from collections.abc import Callable

from num2words import num2words

__all__ = [
    "MONTHS",
    "cardinal_words",
    "date_words",
    "digit_words",
    "normalize_text",
    "number_words",
    "ordinal_words",
    "spell_characters",
    "telephone_words",
    "year_words",
]

_DIGITS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
MONTHS = list(calendar.month_name)[1:]
_MONTH_INDEX = {name.lower(): i + 1 for i, name in enumerate(MONTHS)}
_MONTH_ABBREVIATIONS = {
    "jan": 1,
    "feb": 2,
    "mar": 3,
    "apr": 4,
    "jun": 6,
    "jul": 7,
    "aug": 8,
    "sep": 9,
    "sept": 9,
    "oct": 10,
    "nov": 11,
    "dec": 12,
}
_MONTH_NAMES_RE = "|".join(MONTHS)
_MONTH_ABBR_RE = "Jan|Feb|Mar|Apr|Jun|Jul|Aug|Sept|Sep|Oct|Nov|Dec"
_MAX_SPOKEN_INTEGER_DIGITS = 15  # beyond this, numbers are read digit by digit


# --------------------------------------------------------------------------------------------- numbers


def _american(words: str) -> str:
    """num2words writes British "one hundred and five, ..."; American speech drops the "and" and commas."""
    return words.replace(",", "").replace(" and ", " ")


def digit_words(digits: str) -> str:
    """ "907" -> "nine zero seven"."""
    return " ".join(_DIGITS[int(d)] for d in digits if d.isdigit())


def cardinal_words(value: int) -> str:
    """1234 -> "one thousand two hundred thirty-four"; very long numbers are read digit by digit."""
    if len(str(abs(value))) > _MAX_SPOKEN_INTEGER_DIGITS:
        spoken = digit_words(str(abs(value)))
        return f"minus {spoken}" if value < 0 else spoken
    return _american(num2words(value, lang="en"))


def ordinal_words(value: int) -> str:
    """21 -> "twenty-first"."""
    if value < 0 or len(str(value)) > _MAX_SPOKEN_INTEGER_DIGITS:
        return cardinal_words(value)
    return _american(num2words(value, lang="en", to="ordinal"))


def year_words(value: int) -> str:
    """1990 -> "nineteen ninety", 2026 -> "twenty twenty-six", 2005 -> "two thousand five"."""
    if not 0 < value < 10000:
        return cardinal_words(value)
    return _american(num2words(value, lang="en", to="year")).replace("oh-", "oh ")


def number_words(integer_part: str, fraction: str | None = None, negative: bool = False) -> str:
    """Digits as written ("1,234", "56") plus optional decimals -> words ("... point five six")."""
    digits = integer_part.replace(",", "")
    if digits:
        spoken = (
            digit_words(digits) if len(digits) > _MAX_SPOKEN_INTEGER_DIGITS else cardinal_words(int(digits))
        )
    else:
        spoken = "zero" if fraction is None else ""
    if fraction:
        spoken = f"{spoken} point {digit_words(fraction)}".strip()
    return f"minus {spoken}" if negative else spoken


def _int_or_year(digits: str) -> str:
    """A bare integer as a reader says it: 4-digit 1100..2099 like a year, the rest as a cardinal."""
    value = int(digits)
    if len(digits) == 4 and 1100 <= value <= 2099:
        return year_words(value)
    return number_words(digits)


def _plural(words: str) -> str:
    """ "nineteen ninety" -> "nineteen nineties" (pluralise the last word, for decades)."""
    head, _, last = words.rpartition(" ")
    if last.endswith("y"):
        last = last[:-1] + "ies"
    else:
        last += "s"
    return f"{head} {last}".strip()


# ----------------------------------------------------------------------------------- letters & dates

_SPELL_SYMBOLS = {
    "+": "plus",
    "-": "dash",
    ".": "dot",
    "_": "underscore",
    "@": "at",
    "&": "and",
    "/": "slash",
    "#": "hash",
    "*": "star",
    "%": "percent",
    "=": "equals",
    ":": "colon",
    "?": "question mark",
    "~": "tilde",
}


def spell_characters(text: str) -> str:
    """ "R2-D2" -> "R two dash D two": letters hyphen-joined so espeak says their names."""
    out: list[str] = []
    letters: list[str] = []

    def flush() -> None:
        if letters:
            out.append("-".join(letters))
            letters.clear()

    for ch in text:
        if ch.isalpha():
            letters.append(ch.upper())
            continue
        flush()
        if ch.isdigit():
            out.append(_DIGITS[int(ch)] if ch in "0123456789" else ch)
        elif ch in _SPELL_SYMBOLS:
            out.append(_SPELL_SYMBOLS[ch])
    flush()
    # A lone "A" would be read as the article; a trailing hyphen makes espeak say the letter.
    return " ".join("A-" if token == "A" else token for token in out)


def telephone_words(text: str) -> str:
    """ "+1 (555) 123-4567" -> "plus one, five five five, one two three, four five six seven"."""
    groups = re.findall(r"\d+", text)
    spoken = ", ".join(digit_words(group) for group in groups)
    if text.strip().startswith("+") and spoken:
        spoken = f"plus {spoken}"
    return spoken


def _valid_date(year: int | None, month: int | None, day: int | None) -> bool:
    if month is not None and not 1 <= month <= 12:
        return False
    if day is not None:
        if month is None:
            return False
        last = calendar.monthrange(year if year is not None else 2000, month)[1]
        if not 1 <= day <= last:
            return False
    return year is None or 0 < year < 10000


def date_words(year: int | None, month: int | None, day: int | None) -> str | None:
    """Any of year/month/day -> "November twenty-second, twenty twenty-six"; None when not a real date."""
    if (year, month, day) == (None, None, None) or not _valid_date(year, month, day):
        return None
    parts: list[str] = []
    if month is not None:
        parts.append(MONTHS[month - 1])
    if day is not None:
        parts.append(ordinal_words(day))
    spoken = " ".join(parts)
    if year is not None:
        spoken = f"{spoken}, {year_words(year)}" if day is not None else f"{spoken} {year_words(year)}"
    return spoken.strip()


# ------------------------------------------------------------------------------------------- helpers


def _sentence_continues(text: str, end: int) -> bool:
    """Whether an abbreviation's period at ``end`` also closes a sentence (text ends or a capital follows)."""
    rest = text[end:]
    return bool(re.match(r"\s*$", rest) or re.match(r"\s+[\"“(]?[A-Z]", rest))


def _sub(
    pattern: str | re.Pattern[str], repl: Callable[[re.Match[str]], str], text: str, flags: int = 0
) -> str:
    compiled = pattern if isinstance(pattern, re.Pattern) else re.compile(pattern, flags)
    return compiled.sub(repl, text)


# ------------------------------------------------------------------------------------------- passes


def _prepare(text: str) -> str:
    """Unicode clean-up and line structure: lines without final punctuation end a sentence."""
    text = unicodedata.normalize("NFC", text)
    text = text.translate(
        {
            0x2018: "'",
            0x2019: "'",
            0x02BC: "'",
            0x201C: '"',
            0x201D: '"',
            0x00A0: " ",
            0x2009: " ",
            0x202F: " ",
            0x2212: "-",  # minus sign
            0x2011: "-",  # non-breaking hyphen
            0x2013: "–",
            0x2014: "—",
            0x2015: "—",
            0x00BD: " one half",
            0x00BC: " one quarter",
            0x00BE: " three quarters",
        }
    )
    text = text.replace("...", "…")
    lines = [line.strip() for line in re.split(r"[\r\n\u2028\u2029]+", text)]
    lines = [re.sub(r"^(?:[-*•#>]+\s+)+", "", line) for line in lines if line]  # list bullets, headings
    closed = [line if re.search(r"[.!?…:;,]\W*$", line) else f"{line}." for line in lines[:-1]]
    text = " ".join([*closed, *lines[-1:]])
    text = re.sub(r"\s*(?:--+|—)\s*", " — ", text)  # dashes become a spaced em dash (a clause break)
    text = re.sub(r"(?<=\D)\s*–\s*(?=\D)|\s+–\s+(?=\D)|(?<=\D)\s+–\s+", " — ", text)
    text = re.sub(r"\s+-\s+", " — ", text)
    return re.sub(r"[ \t\f\v]+", " ", text).strip()


def _spell_address(address: str) -> str:
    """ "www.example.com/docs" -> "W-W-W dot example dot com slash docs"."""
    special = {"www": "W-W-W", "io": "I-O", "ai": "A-I", "uk": "U-K", "us": "U-S", "tv": "T-V", "fm": "F-M"}
    spoken: list[str] = []
    for chunk in re.findall(r"[^\W\d_]+|\d+|\S", address):
        lowered = chunk.lower()
        if lowered in special:
            spoken.append(special[lowered])
        elif chunk.isdigit():
            spoken.append(number_words(chunk) if len(chunk) <= 4 else digit_words(chunk))
        elif chunk.isalpha():
            if re.search(r"[aeiouy]", lowered) and len(chunk) > 1:
                spoken.append(lowered)
            else:
                spoken.append(spell_characters(chunk))
        elif chunk in _SPELL_SYMBOLS:
            spoken.append(_SPELL_SYMBOLS[chunk])
    return " ".join(spoken)


_TRAILING_ADDRESS_PUNCT = ".,;:!?)]}'\""

_EMAIL_RE = re.compile(r"(?<![\w.+-])[\w.+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+")
_URL_RE = re.compile(
    r"(?<![\w@])(?:(?:https?|ftp)://|www\.)[^\s<>\"]+"
    r"|(?<![\w@.-])[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\."
    r"(?:com|org|net|io|dev|ai|app|edu|gov|info|co\.uk|uk|de|fr|tv|xyz|me)\b(?:/[^\s<>\"]*)?",
    re.IGNORECASE,
)


def _emails_and_urls(text: str) -> str:
    def email(m: re.Match[str]) -> str:
        user, _, domain = m.group(0).partition("@")
        return f" {_spell_address(user)} at {_spell_address(domain)} "

    def url(m: re.Match[str]) -> str:
        raw = m.group(0)
        body = raw.rstrip(_TRAILING_ADDRESS_PUNCT)
        trailing = raw[len(body) :]
        body = re.sub(r"^[A-Za-z]+://", "", body).rstrip("/")
        return f" {_spell_address(body)}{trailing} "

    text = _EMAIL_RE.sub(email, text)
    return _URL_RE.sub(url, text)


_TITLES = {
    "Mr": "Mister",
    "Mrs": "Missus",
    "Ms": "Miz",
    "Prof": "Professor",
    "Mt": "Mount",
    "Gen": "General",
    "Capt": "Captain",
    "Sgt": "Sergeant",
    "Rev": "Reverend",
    "Gov": "Governor",
    "Sen": "Senator",
    "Lt": "Lieutenant",
    "Col": "Colonel",
    "Hon": "Honorable",
    "Pres": "President",
}
_TITLE_OR_STREET = {"Dr": ("Doctor", "Drive"), "St": ("Saint", "Street")}
_ABBREVIATIONS = {  # abbreviation (with its period) -> expansion; True: may close a sentence
    "e.g.": ("for example", False),
    "i.e.": ("that is", False),
    "a.k.a.": ("also known as", False),
    "vs.": ("versus", False),
    "cf.": ("compare", False),
    "approx.": ("approximately", True),
    "etc.": ("et cetera", True),
    "Inc.": ("Incorporated", True),
    "Ltd.": ("Limited", True),
    "Corp.": ("Corporation", True),
    "Co.": ("Company", True),
    "Dept.": ("Department", True),
    "Ave.": ("Avenue", True),
    "Rd.": ("Road", True),
    "Blvd.": ("Boulevard", True),
    "Jr.": ("Junior", True),
    "Sr.": ("Senior", True),
}


def _previous_word_is_name(text: str, start: int) -> bool:
    """Whether the word before ``start`` is capitalised and not itself sentence-initial ("Elm St.")."""
    m = re.search(r"(\S+)\s+[A-Z][\w'-]*\s+$", text[:start])
    return bool(m and not m.group(1).endswith((".", "!", "?", "…")))


def _abbreviations(text: str) -> str:
    def title(m: re.Match[str]) -> str:
        return f"{_TITLES[m.group(1)]} "

    text = _sub(r"\b(Mr|Mrs|Ms)(?:\.\s*|\s+(?=[A-Z]))", title, text)  # these are only ever titles
    text = _sub(
        r"\b(" + "|".join(k for k in _TITLES if k not in ("Mr", "Mrs", "Ms")) + r")\.\s+(?=[A-Z])",
        title,
        text,
    )

    def title_or_street(m: re.Match[str]) -> str:
        as_title, as_street = _TITLE_OR_STREET[m.group(1)]
        if not _previous_word_is_name(m.string, m.start()):
            return as_title  # "Dr. Smith", "St. Louis", "I saw the Dr."
        if m.group(2) and _sentence_continues(m.string, m.end()):
            return f"{as_street}."  # "Elm St. He..." closes the sentence too
        return as_street

    text = _sub(r"\b(Dr|St)(\.)?(?=\s|$|[,;:!?])", title_or_street, text)
    text = _sub(r"\b[Nn]o\.\s?(?=\d)", lambda m: "number ", text)

    def abbreviation(m: re.Match[str]) -> str:
        key = next(k for k in _ABBREVIATIONS if k.lower() == m.group(0).lower())
        expansion, may_end = _ABBREVIATIONS[key]
        return f"{expansion}." if may_end and _sentence_continues(m.string, m.end()) else expansion

    pattern = "|".join(re.escape(k) for k in sorted(_ABBREVIATIONS, key=len, reverse=True))
    text = _sub(r"(?<![\w.])(?:" + pattern + r")(?!\w)", abbreviation, text, re.IGNORECASE)
    text = _sub(r"\bvs\b", lambda m: "versus", text)
    return text


_CURRENCIES = {  # symbol -> (unit, units, subunit, subunits)
    "$": ("dollar", "dollars", "cent", "cents"),
    "£": ("pound", "pounds", "penny", "pence"),
    "€": ("euro", "euros", "cent", "cents"),
}
_SCALES = {
    "thousand": "thousand",
    "k": "thousand",
    "million": "million",
    "m": "million",
    "mn": "million",
    "billion": "billion",
    "bn": "billion",
    "b": "billion",
    "trillion": "trillion",
}
_NUMBER = r"(\d{1,3}(?:,\d{3})+|\d+)(?:\.(\d+))?"


def _money(text: str) -> str:
    def money(m: re.Match[str]) -> str:
        negative, symbol, integer, fraction, scale = (
            m.group(1),
            m.group(2),
            m.group(3),
            m.group(4),
            m.group(5),
        )
        unit, units, sub, subs = _CURRENCIES[symbol]
        prefix = "minus " if negative else ""
        if scale:
            return f"{prefix}{number_words(integer, fraction)} {_SCALES[scale.lower()]} {units}"
        whole = int(integer.replace(",", ""))
        if fraction is not None and len(fraction) > 2:
            return f"{prefix}{number_words(integer, fraction)} {units}"
        cents = int(fraction.ljust(2, "0")) if fraction else 0
        parts = []
        if whole or not cents:
            parts.append(f"{number_words(integer)} {unit if whole == 1 else units}")
        if cents:
            parts.append(f"{cardinal_words(cents)} {sub if cents == 1 else subs}")
        return prefix + " and ".join(parts)

    scale = r"(?:\s?(thousand|million|billion|trillion|bn|mn|[kKmMbB])\b)?"
    return _sub(r"(?<![\w.])(-)?([$£€])\s?" + _NUMBER + scale, money, text)


def _dates(text: str) -> str:
    def iso(m: re.Match[str]) -> str:
        spoken = date_words(int(m.group(1)), int(m.group(2)), int(m.group(3)))
        return spoken if spoken else m.group(0)

    text = _sub(r"(?<![\w.-])(\d{4})-(\d{1,2})-(\d{1,2})(?![\w-]|\.\d)", iso, text)

    def slashed(m: re.Match[str]) -> str:
        first, second, year_text = int(m.group(1)), int(m.group(2)), m.group(3)
        year = int(year_text) if len(year_text) == 4 else 2000 + int(year_text)
        spoken = date_words(year, first, second) or date_words(year, second, first)  # US order first
        return spoken if spoken else m.group(0)

    text = _sub(r"(?<![\w/.])(\d{1,2})/(\d{1,2})/(\d{4}|\d{2})(?![\w/]|\.\d)", slashed, text)

    def month_day(m: re.Match[str]) -> str:
        month = _month_number(m.group(1))
        year = int(m.group(3)) if m.group(3) else None
        spoken = date_words(year, month, int(m.group(2)))
        return spoken if spoken else m.group(0)

    months = rf"({_MONTH_NAMES_RE}|(?:{_MONTH_ABBR_RE})\.?)"
    text = _sub(r"(?<!\w)" + months + r"\s+(\d{1,2})(?:st|nd|rd|th)?\b(?:,?\s+(\d{4})\b)?", month_day, text)

    def day_month(m: re.Match[str]) -> str:
        month = _month_number(m.group(2))
        year = int(m.group(3)) if m.group(3) else None
        spoken = date_words(year, month, int(m.group(1)))
        return spoken if spoken else m.group(0)

    return _sub(
        rf"(?<![\w.,])(\d{{1,2}})\s+({_MONTH_NAMES_RE}|(?:{_MONTH_ABBR_RE})\.?)(?![\w])(?:,?\s+(\d{{4}})\b)?",
        day_month,
        text,
    )


def _month_number(name: str) -> int:
    """ "November", "Nov." or "Nov" -> 11."""
    key = name.rstrip(".").lower()
    return _MONTH_INDEX.get(key) or _MONTH_ABBREVIATIONS[key]


def _meridiem(letter: str) -> str:
    return "A-M" if letter.lower() == "a" else "P-M"


def _times(text: str) -> str:
    suffix = r"(?:\s?([AaPp])\.?[Mm](\.)?(?![\w]))?"

    def clock(m: re.Match[str]) -> str:
        hour, minute = int(m.group(1)), int(m.group(2))
        seconds = m.group(3)
        meridiem, period = m.group(4), m.group(5)
        words: list[str] = []
        if hour == 0 and not meridiem:
            words.append("twelve")
            meridiem = "a"
        else:
            words.append(cardinal_words(hour))
        if minute == 0:
            if meridiem is None:
                words.append("o'clock" if hour <= 12 else "hundred")
        elif minute < 10:
            words.append(f"oh {cardinal_words(minute)}")
        else:
            words.append(cardinal_words(minute))
        if seconds and int(seconds):
            count = int(seconds)
            words.append(f"and {cardinal_words(count)} {'second' if count == 1 else 'seconds'}")
        if meridiem:
            words.append(_meridiem(meridiem))
        spoken = " ".join(words)
        if period and _sentence_continues(m.string, m.end()):
            spoken += "."
        return spoken

    text = _sub(r"(?<![\w:.])([01]?\d|2[0-3]):([0-5]\d)(?::([0-5]\d))?(?![\w:]|\.\d)" + suffix, clock, text)

    def hour_only(m: re.Match[str]) -> str:
        spoken = f"{cardinal_words(int(m.group(1)))} {_meridiem(m.group(2))}"
        if m.group(3) and _sentence_continues(m.string, m.end()):
            spoken += "."
        return spoken

    return _sub(r"(?<![\w.:])(1[0-2]|0?[1-9])\s?([AaPp])\.?[Mm](\.)?(?![\w])", hour_only, text)


def _dotted_acronyms(text: str) -> str:
    def acronym(m: re.Match[str]) -> str:
        spoken = "-".join(m.group(0).replace(".", "").upper())
        return f"{spoken}." if _sentence_continues(m.string, m.end()) else spoken

    return _sub(r"(?<![\w.])(?:[A-Za-z]\.){2,}(?!\w)", acronym, text)


def _telephones(text: str) -> str:
    text = _sub(
        r"(?<![\w+])(\+?1[-. ])?\(?(\d{3})\)?[-. ](\d{3})[-. ](\d{4})(?![\w]|[-.]\d)",
        lambda m: f" {telephone_words(m.group(0))} ",
        text,
    )
    return _sub(r"(?<![\w.,-])(\d{3})-(\d{4})(?![\w]|[-.]\d)", lambda m: telephone_words(m.group(0)), text)


def _percent(text: str) -> str:
    def percent(m: re.Match[str]) -> str:
        return f"{number_words(m.group(2), m.group(3), bool(m.group(1)))} percent"

    return _sub(r"(?<![\w.])(-)?" + _NUMBER + r"\s?%", percent, text)


_UNITS = {  # symbol -> (singular, plural)
    "km/h": ("kilometer per hour", "kilometers per hour"),
    "kph": ("kilometer per hour", "kilometers per hour"),
    "mph": ("mile per hour", "miles per hour"),
    "km": ("kilometer", "kilometers"),
    "cm": ("centimeter", "centimeters"),
    "mm": ("millimeter", "millimeters"),
    "kg": ("kilogram", "kilograms"),
    "mg": ("milligram", "milligrams"),
    "ml": ("milliliter", "milliliters"),
    "mL": ("milliliter", "milliliters"),
    "kB": ("kilobyte", "kilobytes"),
    "KB": ("kilobyte", "kilobytes"),
    "MB": ("megabyte", "megabytes"),
    "GB": ("gigabyte", "gigabytes"),
    "TB": ("terabyte", "terabytes"),
    "Hz": ("hertz", "hertz"),
    "kHz": ("kilohertz", "kilohertz"),
    "MHz": ("megahertz", "megahertz"),
    "GHz": ("gigahertz", "gigahertz"),
    "ms": ("millisecond", "milliseconds"),
    "min": ("minute", "minutes"),
    "ft": ("foot", "feet"),
    "lb": ("pound", "pounds"),
    "lbs": ("pound", "pounds"),
    "oz": ("ounce", "ounces"),
    "°C": ("degree Celsius", "degrees Celsius"),
    "°F": ("degree Fahrenheit", "degrees Fahrenheit"),
    "°": ("degree", "degrees"),
}


def _units(text: str) -> str:
    def unit(m: re.Match[str]) -> str:
        negative, integer, fraction, symbol = bool(m.group(1)), m.group(2), m.group(3), m.group(4)
        singular, plural = _UNITS[symbol]
        is_one = integer == "1" and not fraction and not negative
        return f"{number_words(integer, fraction, negative)} {singular if is_one else plural}"

    symbols = "|".join(re.escape(k) for k in sorted(_UNITS, key=len, reverse=True))
    return _sub(r"(?<![\w.])(-)?" + _NUMBER + r"\s?(" + symbols + r")(?![\w/])", unit, text)


def _ordinals(text: str) -> str:
    return _sub(
        r"(?<![\w.])(\d{1,3}(?:,\d{3})+|\d+)(st|nd|rd|th)\b",
        lambda m: ordinal_words(int(m.group(1).replace(",", ""))),
        text,
        re.IGNORECASE,
    )


def _decades(text: str) -> str:
    text = _sub(r"(?<![\w.])(1[1-9]\d0|20\d0)'?s\b", lambda m: _plural(year_words(int(m.group(1)))), text)
    return _sub(r"(?<![\w.])'?([2-9]0)'?s\b", lambda m: _plural(cardinal_words(int(m.group(1)))), text)


def _ranges(text: str) -> str:
    return _sub(
        r"(?<![\w.,-])(\d+)(?:-|\s?–\s?)(\d+)(?![\w]|[.,]\d)",
        lambda m: f"{_int_or_year(m.group(1))} to {_int_or_year(m.group(2))}",
        text,
    )


_FRACTIONS = {
    (1, 2): "one half",
    (1, 3): "one third",
    (2, 3): "two thirds",
    (1, 4): "one quarter",
    (3, 4): "three quarters",
}


def _fractions(text: str) -> str:
    def fraction(m: re.Match[str]) -> str:
        numerator, denominator = int(m.group(1)), int(m.group(2))
        if (numerator, denominator) == (24, 7):
            return "twenty-four seven"
        if (numerator, denominator) in _FRACTIONS:
            return _FRACTIONS[(numerator, denominator)]
        return f"{cardinal_words(numerator)} over {cardinal_words(denominator)}"

    text = _sub(r"(?<![\w./])(\d+)/(\d+)(?![\w/]|\.\d)", fraction, text)
    text = re.sub(r"(\d)\s+(one half|one quarter|three quarters)\b", r"\1 and \2", text)
    return text


def _years(text: str) -> str:
    return _sub(
        r"(?<![\w.,-])(1[1-9]\d\d|20\d\d)(?![\w]|[.,]\d)",
        lambda m: year_words(int(m.group(1))),
        text,
    )


def _symbols(text: str) -> str:
    text = re.sub(r"\band/or\b", "and or", text)
    text = re.sub(r"\bw/(?=\s)", "with", text)
    text = re.sub(r"#(?=\d)", " number ", text)
    text = re.sub(r"~(?=\s?\d)", " about ", text)
    text = text.replace("+", " plus ")
    text = re.sub(r"\s<\s|(?<=\d)<(?=\d)", " less than ", text)
    text = re.sub(r"\s>\s|(?<=\d)>(?=\d)", " greater than ", text)
    text = re.sub(r"(?<=\w)/(?=\w)", " slash ", text)
    replacements = {
        "&": " and ",
        "@": " at ",
        "=": " equals ",
        "×": " times ",
        "÷": " divided by ",
        "%": " percent ",
        "°": " degrees ",
    }
    for symbol, spoken in replacements.items():
        text = text.replace(symbol, spoken)
    return text


def _numbers(text: str) -> str:
    # "mp3" -> "mp 3", "4G" -> "4 G": digits glued to letters are read separately.
    text = re.sub(r"(?<=[^\W\d_])(?=\d)|(?<=\d)(?=[^\W\d_])", " ", text)
    text = _sub(  # version-like "1.2.3"
        r"(?<![\w.])\d+(?:\.\d+){2,}(?![\w]|\.\d)",
        lambda m: " point ".join(number_words(part) for part in m.group(0).split(".")),
        text,
    )
    text = _sub(
        r"(?<![\w.,])(?:(?<![\w])(-))?" + _NUMBER,
        lambda m: number_words(m.group(2), m.group(3), bool(m.group(1))),
        text,
    )
    text = _sub(r"(?<![\w])\.(\d+)", lambda m: f"point {digit_words(m.group(1))}", text)
    return _sub(r"\d+", lambda m: digit_words(m.group(0)), text)  # anything left (e.g. "1,2")


def _is_speakable_letter(ch: str) -> bool:
    return ch.isalpha() and ("LATIN" in unicodedata.name(ch, ""))


_KEPT_PUNCTUATION = set(".,!?;:…—\"()'-")


def _cleanup(text: str) -> str:
    """Keep Latin letters and the punctuation Kokoro knows; tidy spacing around punctuation."""
    text = "".join(
        ch if _is_speakable_letter(ch) or ch in _KEPT_PUNCTUATION or ch.isspace() else " " for ch in text
    )
    # Hyphens only inside words, plus the spelled letter "A-" (see spell_characters).
    text = re.sub(r"(?<![^\W\d_])-|(?<!\bA)-(?![^\W\d_])", " ", text)
    text = re.sub(r"(?<![^\W\d_])'(?![^\W\d_])", " ", text)  # apostrophes only next to letters
    text = re.sub(r"\(\s*\)", " ", text)
    text = re.sub(r"\s+", " ", text)
    text = re.sub(r"\s+([.,!?;:…)])", r"\1", text)
    text = re.sub(r"([(])\s+", r"\1", text)
    text = re.sub(r"([.,!?;:])\1+", r"\1", text)
    text = re.sub(r"[,;:]+(?=[.!?])", "", text)
    text = re.sub(r"([.!?;:,…])(?=[^\s.,!?;:…)\"])", r"\1 ", text)
    text = re.sub(r"^[\s.,!?;:…—]+", "", text)
    return text.strip()


def normalize_text(text: str) -> str:
    """Written English -> speakable words with sentence punctuation kept (no digits or symbols remain)."""
    for step in (
        _prepare,
        _emails_and_urls,
        _abbreviations,
        _money,
        _dates,
        _times,
        _dotted_acronyms,
        _telephones,
        _percent,
        _units,
        _ordinals,
        _decades,
        _ranges,
        _fractions,
        _years,
        _symbols,
        _numbers,
        _cleanup,
    ):
        text = step(text)
    return text
