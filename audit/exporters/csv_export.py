"""CSV (RFC 4180: comma-separated, every field quoted, quotes doubled, CRLF line ends), UTF-8, a header row.

Spreadsheets run a cell that starts with = + - @ (or a tab or carriage
return) as a formula, so such cells are written with a leading apostrophe
(OWASP "CSV injection"). Cells that already start with an apostrophe get one
too, which makes the rule reversible: to re-verify, drop one leading
apostrophe from any cell that has one. An empty cell in user_id or
inference_job_id is null; in any other column it is the empty string.

Every field is quoted (RFC 4180 allows it): one rule for every cell is what
lets a row be written without looking for commas and line breaks in each,
about twice as fast as the csv module here; tests read the output back with
the csv module.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any, Final

from audit.canonical import EXPORT_FIELDS
from audit.codes import EVENT_IDS, EVENT_TYPES

HEADER: Final = (*EXPORT_FIELDS, "event_meaning", "event_type_meaning")
_FORMULA_STARTS: Final = frozenset("=+-@\t\r'")
_EVENT_ID = EXPORT_FIELDS.index("event_id")
_EVENT_TYPE = EXPORT_FIELDS.index("event_type")


def neutralise(cell: Any) -> Any:
    """The cell, made inert for spreadsheets when it is text that would start a formula."""
    if isinstance(cell, str) and cell[:1] in _FORMULA_STARTS:
        return "'" + cell
    return cell


def _line(cells: Iterable[Any]) -> str:
    starts = _FORMULA_STARTS
    texts = [
        ("'" + cell if cell[:1] in starts else cell)
        if cell.__class__ is str
        else ("" if cell is None else str(cell))
        for cell in cells
    ]
    return '"' + '","'.join([text.replace('"', '""') for text in texts]) + '"\r\n'


def pieces(rows: Iterable[tuple[Any, ...]]) -> Iterator[str]:
    yield _line(HEADER)
    for row in rows:
        event_id, event_type = row[_EVENT_ID], row[_EVENT_TYPE]
        yield _line((*row, EVENT_IDS.get(event_id, event_id), EVENT_TYPES.get(event_type, event_type)))
