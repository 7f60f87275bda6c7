"""What requests send, read so that no value can reach a database or a date calculation it would
overflow: ids and page numbers from query strings, and the dates of filters.

`str.isdigit()` alone is not enough for an id: it is true of "²" (which `int()` refuses) and of
a number too large for a 64-bit key (which the database refuses with an error, not "no rows").
A date of year 1 or 9999 parses, and then overflows when a day is added to it or its time zone
converted; a filter has no use for dates outside `EARLIEST_YEAR`..`LATEST_YEAR`.
"""

from __future__ import annotations

import datetime as dt
from typing import Final

from django.core.exceptions import ValidationError

BIGGEST_ID: Final = 2**63 - 1  # a 64-bit signed key, as BigAutoField is in every database
EARLIEST_YEAR: Final = 1900
LATEST_YEAR: Final = 9000
DATE_RANGE_MESSAGE: Final = f"Enter a date from the year {EARLIEST_YEAR} to {LATEST_YEAR}."


def id_param(text: str) -> int | None:
    """`text` as a positive id, or None when it is not one: ASCII digits only, and no larger than
    any key can be (such an id matches nothing; the caller answers as for a missing object)."""
    text = text.strip()
    if not (text.isascii() and text.isdigit()):
        return None
    value = int(text)
    return value if 1 <= value <= BIGGEST_ID else None


def in_date_range(value: dt.date | dt.datetime | None) -> bool:
    return value is None or EARLIEST_YEAR <= value.year <= LATEST_YEAR


def validate_date_range(value: dt.date | dt.datetime | None) -> None:
    """A form field's validator: the date of a filter lies in the years a filter can mean."""
    if not in_date_range(value):
        raise ValidationError(DATE_RANGE_MESSAGE, code="date_range")
