"""config.inputs: ids from query strings and the dates of filters, read so nothing overflows."""

from __future__ import annotations

import datetime as dt

import pytest
from django.core.exceptions import ValidationError

from config.inputs import BIGGEST_ID, id_param, in_date_range, validate_date_range


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("12", 12),
        (" 7 ", 7),
        (str(BIGGEST_ID), BIGGEST_ID),
        (str(BIGGEST_ID + 1), None),  # no key is that large: the database would raise, not miss
        ("0", None),
        ("-3", None),
        ("\u00b2", None),  # isdigit() is true of it, int() refuses it
        ("\u0663", None),  # an Arabic-Indic three
        ("1e3", None),
        ("", None),
    ],
)
def test_an_id_param_is_a_positive_ascii_number_a_key_can_hold(text: str, expected: int | None) -> None:
    assert id_param(text) == expected


@pytest.mark.parametrize(
    ("value", "valid"),
    [
        (None, True),
        (dt.date(1900, 1, 1), True),
        (dt.datetime(9000, 12, 31, 23, 59, tzinfo=dt.UTC), True),
        (dt.date(1899, 12, 31), False),
        (dt.date(9999, 12, 31), False),  # a day later is past what datetime holds
        (dt.datetime(1, 1, 1, tzinfo=dt.timezone(dt.timedelta(hours=14))), False),
    ],
)
def test_filter_dates_lie_in_the_years_a_filter_can_mean(value: dt.date | None, valid: bool) -> None:
    assert in_date_range(value) is valid
    if valid:
        validate_date_range(value)
    else:
        with pytest.raises(ValidationError, match="from the year 1900 to 9000"):
            validate_date_range(value)
