"""The QIDO-RS query parser: what it accepts, what it refuses (always with QidoError), never anything else."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from viewer.dicomweb.qido import MATCH_KEYS, MAX_LIMIT, DateRange, Pattern, QidoError, TimeRange, parse_query


def _value(query, keyword):
    return next(c.value for c in query.criteria if c.key.keyword == keyword)


def test_it_reads_keywords_and_hex_tags_alike():
    by_keyword = parse_query("study", [("PatientID", "P-1")])
    by_tag = parse_query("study", [("00100020", "P-1")])
    assert _value(by_keyword, "PatientID") == _value(by_tag, "PatientID") == Pattern("P-1")


def test_it_reads_uid_lists_with_commas_or_backslashes():
    query = parse_query("study", [("StudyInstanceUID", "1.2.3,1.2.4\\1.2.5")])
    assert _value(query, "StudyInstanceUID") == ("1.2.3", "1.2.4", "1.2.5")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("20240105", DateRange(dt.date(2024, 1, 5), dt.date(2024, 1, 5))),
        ("20240101-20241231", DateRange(dt.date(2024, 1, 1), dt.date(2024, 12, 31))),
        ("-20241231", DateRange(None, dt.date(2024, 12, 31))),
        ("20240101-", DateRange(dt.date(2024, 1, 1), None)),
    ],
)
def test_it_reads_dates_and_open_and_closed_ranges(text, expected):
    assert _value(parse_query("study", [("StudyDate", text)]), "StudyDate") == expected


def test_it_reads_time_ranges():
    assert _value(parse_query("study", [("StudyTime", "0800-1230")]), "StudyTime") == TimeRange(
        "0800", "1230"
    )
    assert _value(parse_query("study", [("StudyTime", "-12")]), "StudyTime") == TimeRange(None, "12")


def test_it_reads_includefield_lists_repeated_or_comma_separated_and_all():
    query = parse_query("study", [("includefield", "00081030,Modality"), ("includefield", "StudyID")])
    assert query.include_tags == {"00081030", "00080060", "00200010"}
    assert parse_query("instance", [("includefield", "all")]).include_all


def test_it_reads_paging_and_fuzzy_matching():
    query = parse_query("study", [("limit", "25"), ("offset", "50"), ("fuzzymatching", "true")])
    assert (query.limit, query.offset, query.fuzzy) == (25, 50, True)
    assert parse_query("study", []).limit == MAX_LIMIT


def test_an_empty_value_matches_everything():
    assert parse_query("study", [("PatientName", "")]).criteria == ()


def test_it_takes_what_ohif_sends():
    query = parse_query(
        "study",
        [
            ("PatientName", "*doe*"),
            ("00100020", ""),
            ("00081030", "*chest*"),
            ("StudyDate", "20240101-20241231"),
            ("ModalitiesInStudy", "CT,MR"),
            ("limit", "101"),
            ("offset", "0"),
            ("fuzzymatching", "false"),
            ("includefield", "00081030,00080060"),
        ],
    )
    assert {c.key.keyword for c in query.criteria} == {
        "PatientName",
        "StudyDescription",
        "StudyDate",
        "ModalitiesInStudy",
    }


@pytest.mark.parametrize(
    ("level", "pairs", "message"),
    [
        ("study", [("NoSuchKey", "x")], "unknown query parameter"),
        ("study", [("99999999", "x")], "unknown query parameter"),
        ("study", [("SeriesInstanceUID", "1.2.3")], "cannot be matched in a study query"),
        ("series", [("SOPInstanceUID", "1.2.3")], "cannot be matched in a series query"),
        ("study", [("PatientAge", "040Y")], "cannot be matched"),
        ("study", [("StudyInstanceUID", "1.2.03")], "not a valid DICOM UID"),
        ("study", [("StudyDate", "2024-01-01")], "not a date"),
        ("study", [("StudyDate", "20240231")], "not a calendar date"),
        ("study", [("StudyDate", "20241231-20240101")], "starts after it ends"),
        ("study", [("StudyDate", "-")], "at least one end"),
        ("study", [("StudyTime", "2561")], "not a time"),
        ("study", [("limit", "0")], "limit must be between"),
        ("study", [("limit", "1000000")], "limit must be between"),
        ("study", [("limit", "ten")], "whole number"),
        ("study", [("offset", "-1")], "offset must be between"),
        ("study", [("limit", "5"), ("limit", "6")], "more than once"),
        ("study", [("PatientID", "a"), ("00100020", "b")], "more than once"),
        ("study", [("fuzzymatching", "yes")], "true or false"),
        ("study", [("includefield", "NotAnAttribute")], "not a DICOM attribute"),
        ("study", [("includefield", "00081032.00080100")], "nested"),
        ("study", [("ModalitiesInStudy", "ct")], "not a code"),
        ("series", [("SeriesNumber", "1.5")], "whole number"),
        ("study", [("PatientID", "a\x00b")], "control characters"),
        ("study", [("PatientID", "x" * 401)], "too long"),
        ("study", [("PatientID", "1")] * 65, "at most"),
    ],
)
def test_it_refuses_with_a_specific_message(level, pairs, message):
    with pytest.raises(QidoError, match=message) as refused:
        parse_query(level, pairs)
    assert refused.value.status == 400


_NAMES = st.one_of(
    st.sampled_from(
        [*MATCH_KEYS, "limit", "offset", "fuzzymatching", "includefield", "00100020", "0020000D"]
    ),
    st.text(max_size=12),
)
_VALUES = st.one_of(
    st.text(max_size=40),
    st.from_regex(r"[0-9.,\\*?\-]{0,30}", fullmatch=True),
    st.sampled_from(["", "all", "true", "false", "1000", "-", "20240101-", "1.2.3", "CT\\MR", "Doe^J*"]),
)


@settings(max_examples=600, deadline=None)
@given(
    level=st.sampled_from(["study", "series", "instance"]),
    pairs=st.lists(st.tuples(_NAMES, _VALUES), max_size=8),
)
def test_it_never_raises_anything_but_qido_error(level, pairs):
    outcome = _parse_or_refusal(level, pairs)
    if isinstance(outcome, QidoError):
        assert outcome.status == 400
        assert outcome.message
    else:
        assert 1 <= outcome.limit <= MAX_LIMIT
        assert outcome.offset >= 0


def _parse_or_refusal(level, pairs):
    try:
        return parse_query(level, pairs)
    except QidoError as error:  # anything else propagates and fails the test
        return error
