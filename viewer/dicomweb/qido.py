"""QIDO-RS query parameters (PS3.18 8.3.4) parsed into a `QidoQuery`, or a 400.

Keys are attribute keywords (`PatientID`) or tags (`00100020`), plus `limit`,
`offset`, `fuzzymatching` and `includefield`. Anything else, a key that cannot
be matched at the requested level, a repeated key or a malformed value is
refused with `QidoError` naming the problem; this module raises nothing else.

Matching rules (documented for clients):
- UIDs, codes (Modality, ModalitiesInStudy, PatientSex, BodyPartExamined): a
  list separated by commas or backslashes; any of them matches.
- Text (PatientID, AccessionNumber, StudyID): exact, or with `*` (any run) and
  `?` (one character) wildcards; case-sensitive.
- Descriptions (StudyDescription, SeriesDescription): the same, case-insensitive.
- Person names: the same, case-insensitive. With `fuzzymatching=true` the
  value is split into words (at spaces, `^`, commas) and a name matches when
  every word is the beginning of one of its components, in any order:
  "jo do" matches "Doe^John".
- Dates: `20240101`, `20240101-20241231`, `-20241231`, `20240101-`.
- Times: the same with HHMMSS.FFFFFF prefixes; an upper bound covers its
  whole precision (`-12` is up to 12:59:59.999999).
- Numbers (SeriesNumber, InstanceNumber): exact.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from pydicom.datadict import keyword_for_tag, tag_for_keyword

from viewer.dicomweb.http import BadRequest
from viewer.store import is_valid_uid

LEVELS = ("study", "series", "instance")
MAX_LIMIT = 1000
MAX_OFFSET = 10_000_000
MAX_PARAMETERS = 64
MAX_VALUE_LENGTH = 400
MAX_LIST_LENGTH = 200
_HEX_TAG = re.compile(r"^[0-9A-Fa-f]{8}$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_CODE = re.compile(r"^[A-Z0-9 _]{1,16}$")
_DATE = re.compile(r"^[0-9]{8}$")
_TIME = re.compile(r"^([01][0-9]|2[0-3])([0-5][0-9]([0-5][0-9](\.[0-9]{1,6})?)?)?$")
_NUMBER = re.compile(r"^-?[0-9]{1,9}$")


class QidoError(BadRequest):
    """A QIDO-RS query the server refuses (400), with the reason."""


@dataclass(frozen=True)
class MatchKey:
    keyword: str
    level: str  # the lowest query level it belongs to: study < series < instance
    kind: str  # uid, code, text, ci_text, person, date, time, number


@dataclass(frozen=True)
class Pattern:
    text: str

    @property
    def has_wildcards(self) -> bool:
        return "*" in self.text or "?" in self.text


@dataclass(frozen=True)
class DateRange:
    start: dt.date | None
    end: dt.date | None


@dataclass(frozen=True)
class TimeRange:
    start: str | None
    end: str | None


Value = tuple[str, ...] | Pattern | DateRange | TimeRange | int


@dataclass(frozen=True)
class Criterion:
    key: MatchKey
    value: Value


@dataclass(frozen=True)
class QidoQuery:
    level: str
    criteria: tuple[Criterion, ...] = ()
    include_tags: frozenset[str] = frozenset()  # 8 upper-case hex digits each
    include_all: bool = False
    fuzzy: bool = False
    limit: int = MAX_LIMIT
    offset: int = 0


MATCH_KEYS = {
    key.keyword: key
    for key in (
        MatchKey("StudyInstanceUID", "study", "uid"),
        MatchKey("PatientID", "study", "text"),
        MatchKey("PatientName", "study", "person"),
        MatchKey("PatientBirthDate", "study", "date"),
        MatchKey("PatientSex", "study", "code"),
        MatchKey("StudyDate", "study", "date"),
        MatchKey("StudyTime", "study", "time"),
        MatchKey("AccessionNumber", "study", "text"),
        MatchKey("ModalitiesInStudy", "study", "code"),
        MatchKey("StudyID", "study", "text"),
        MatchKey("StudyDescription", "study", "ci_text"),
        MatchKey("ReferringPhysicianName", "study", "person"),
        MatchKey("SeriesInstanceUID", "series", "uid"),
        MatchKey("Modality", "series", "code"),
        MatchKey("SeriesNumber", "series", "number"),
        MatchKey("SeriesDescription", "series", "ci_text"),
        MatchKey("BodyPartExamined", "series", "code"),
        MatchKey("SOPInstanceUID", "instance", "uid"),
        MatchKey("SOPClassUID", "instance", "uid"),
        MatchKey("InstanceNumber", "instance", "number"),
    )
}


def parse_query(level: str, pairs: Iterable[tuple[str, str]]) -> QidoQuery:
    """The query of a QIDO-RS request at `level` from its (name, value) pairs, or QidoError."""
    pairs = list(pairs)
    if len(pairs) > MAX_PARAMETERS:
        raise QidoError(f"at most {MAX_PARAMETERS} query parameters")
    options: dict[str, int] = {}
    criteria: dict[str, Criterion] = {}
    include: set[str] = set()
    for name, value in pairs:
        _check_text(name, value)
        if name == "includefield":
            include.update(_include_tags(value))
        elif name in ("limit", "offset", "fuzzymatching"):
            if name in options:
                raise QidoError(f"{name} is given more than once")
            options[name] = _option(name, value)
        else:
            criterion = _criterion(level, name, value)
            if criterion is None:
                continue  # an empty value matches everything (universal matching)
            if criterion.key.keyword in criteria:
                raise QidoError(f"{criterion.key.keyword} is given more than once")
            criteria[criterion.key.keyword] = criterion
    return QidoQuery(
        level=level,
        criteria=tuple(criteria.values()),
        include_tags=frozenset(include - {"ALL"}),
        include_all="ALL" in include,
        fuzzy=bool(options.get("fuzzymatching", 0)),
        limit=options.get("limit", MAX_LIMIT),
        offset=options.get("offset", 0),
    )


def _check_text(name: str, value: str) -> None:
    if len(name) > 64 or len(value) > MAX_VALUE_LENGTH:
        raise QidoError(f"query parameter {name[:64]!r} is too long (at most {MAX_VALUE_LENGTH} characters)")
    if _CONTROL.search(name) or _CONTROL.search(value):
        raise QidoError(f"query parameter {name[:64]!r} contains control characters")


def _option(name: str, value: str) -> int:
    if name == "fuzzymatching":
        if value not in ("true", "false"):
            raise QidoError("fuzzymatching must be true or false")
        return int(value == "true")
    if not _NUMBER.match(value):
        raise QidoError(f"{name} must be a whole number")
    number = int(value)
    if name == "limit" and not 1 <= number <= MAX_LIMIT:
        raise QidoError(f"limit must be between 1 and {MAX_LIMIT}")
    if name == "offset" and not 0 <= number <= MAX_OFFSET:
        raise QidoError(f"offset must be between 0 and {MAX_OFFSET}")
    return number


def _include_tags(value: str) -> list[str]:
    tags = []
    for item in (part.strip() for part in value.split(",")):
        if item == "all":
            tags.append("ALL")
        elif "." in item:
            raise QidoError(f"includefield {item!r}: nested attributes are not supported")
        else:
            keyword = attribute_keyword(item)
            if not keyword:
                raise QidoError(f"includefield {item!r} is not a DICOM attribute keyword or tag")
            tags.append(f"{tag_for_keyword(keyword):08X}")
    return tags


def attribute_keyword(name: str) -> str:
    """The keyword of an attribute named by keyword or 8-hex tag; "" when it is neither."""
    if _HEX_TAG.match(name):
        return keyword_for_tag(int(name, 16)) or ""
    return name if tag_for_keyword(name) is not None else ""


def _criterion(level: str, name: str, value: str) -> Criterion | None:
    keyword = attribute_keyword(name)
    if not keyword:
        raise QidoError(f"unknown query parameter {name!r}")
    key = MATCH_KEYS.get(keyword)
    if key is None or LEVELS.index(key.level) > LEVELS.index(level):
        allowed = sorted(
            k.keyword for k in MATCH_KEYS.values() if LEVELS.index(k.level) <= LEVELS.index(level)
        )
        raise QidoError(f"{keyword} cannot be matched in a {level} query; these can: {', '.join(allowed)}")
    if value == "":
        return None
    return Criterion(key, _VALUE_PARSERS[key.kind](keyword, value))


def _uids(keyword: str, value: str) -> tuple[str, ...]:
    uids = _list(keyword, value)
    for uid in uids:
        if not is_valid_uid(uid):
            raise QidoError(f"{keyword}: {uid[:70]!r} is not a valid DICOM UID")
    return uids


def _codes(keyword: str, value: str) -> tuple[str, ...]:
    codes = tuple(code.strip() for code in _list(keyword, value))
    for code in codes:
        if not _CODE.match(code):
            raise QidoError(f"{keyword}: {code[:20]!r} is not a code (capital letters, digits, spaces, _)")
    return codes


def _list(keyword: str, value: str) -> tuple[str, ...]:
    items = tuple(item for item in re.split(r"[,\\]", value) if item)
    if not items or len(items) > MAX_LIST_LENGTH:
        raise QidoError(f"{keyword}: give between 1 and {MAX_LIST_LENGTH} values")
    return items


def _pattern(keyword: str, value: str) -> Pattern:
    return Pattern(value)


def _number(keyword: str, value: str) -> int:
    if not _NUMBER.match(value):
        raise QidoError(f"{keyword} must be a whole number")
    return int(value)


def _date_range(keyword: str, value: str) -> DateRange:
    if "-" not in value:
        day = _date(keyword, value)
        return DateRange(day, day)
    first, _, last = value.partition("-")
    start = _date(keyword, first) if first else None
    end = _date(keyword, last) if last else None
    if start is None and end is None:
        raise QidoError(f"{keyword}: a range needs at least one end (YYYYMMDD-YYYYMMDD)")
    if start and end and start > end:
        raise QidoError(f"{keyword}: the range starts after it ends")
    return DateRange(start, end)


def _date(keyword: str, text: str) -> dt.date:
    if not _DATE.match(text):
        raise QidoError(f"{keyword}: {text[:20]!r} is not a date (YYYYMMDD)")
    try:
        return dt.date(int(text[:4]), int(text[4:6]), int(text[6:]))
    except ValueError:
        raise QidoError(f"{keyword}: {text} is not a calendar date") from None


def _time_range(keyword: str, value: str) -> TimeRange:
    first, dash, last = value.partition("-")
    for text in (first, last):
        if text and not _TIME.match(text):
            raise QidoError(f"{keyword}: {text[:20]!r} is not a time (HHMMSS.FFFFFF)")
    if not dash:
        return TimeRange(first, first)
    if not first and not last:
        raise QidoError(f"{keyword}: a range needs at least one end (HHMMSS-HHMMSS)")
    return TimeRange(first or None, last or None)


_VALUE_PARSERS: dict[str, Callable[[str, str], Value]] = {
    "uid": _uids,
    "code": _codes,
    "text": _pattern,
    "ci_text": _pattern,
    "person": _pattern,
    "date": _date_range,
    "time": _time_range,
    "number": _number,
}
