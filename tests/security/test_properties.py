"""Property-based tests (Hypothesis) of the parsers hostile input reaches first.

- The QIDO-RS query parser, given any query string as Django splits it, answers a query or
  its own QidoError (400), nothing else; over HTTP, against stored rows, any such search is
  answered 200 or 400, never 500.
- The mask decoder, given any JSON value, answers a mask or its MaskError (400), and a mask
  encoded as the viewer encodes it comes back exactly.
- The multipart splitter of STOW-RS and the ZIP checker of uploads, given damaged bodies and
  archives, refuse them with their own errors only.

tests/viewer/test_qido_parser.py already drives parse_query with generated (name, value) pairs;
here the input is the raw query string, and the searches run for real.
"""

from __future__ import annotations

import base64
import io
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar
from urllib.parse import quote

import numpy as np
import pytest
from django.http import QueryDict
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from reviews.masks import MaskError, mask_decode
from tests.reviews.helpers import encode_mask
from tests.security.helpers import SCRIPT, SQL, tiny_study
from tests.viewer.conftest import ct_dataset, part10
from viewer.dicomweb.qido import MATCH_KEYS, QidoError, QidoQuery, parse_query
from viewer.ingest.archive import archive_entries
from viewer.ingest.errors import Rejected
from viewer.ingest.multipart import MalformedMultipart, TooManyParts, split_parts

T = TypeVar("T")
E = TypeVar("E", bound=Exception)


def _refusal_or(call: Callable[[], T], *refusals: type[E]) -> T | E:
    """What `call` returns, or the refusal (one of `refusals`) it raises; anything else propagates
    and fails the test."""
    try:
        return call()
    except refusals as refused:
        return refused


# --- The QIDO-RS query parser ------------------------------------------------------------------------
_KEYS = st.sampled_from(
    [*MATCH_KEYS, "limit", "offset", "fuzzymatching", "includefield", "00100010", "0020000d"]
)
# Characters that mean something to a regular expression, to SQL, to HTML or to a URL.
_HOSTILE = st.text(alphabet=".^$+()[]{}|\\*?-,:;'\"%_&=#<>/ \t\x00\x7faZ09é中", max_size=40)
_VALUES = st.one_of(
    _HOSTILE, st.text(max_size=40), st.sampled_from(["", SQL, SCRIPT, "*", "?", "-", "1.2.3", "%00"])
)


def _query_string(pairs: list[tuple[str, str]], junk: str) -> str:
    return "&".join(f"{quote(name)}={quote(value)}" for name, value in pairs) + junk


@settings(max_examples=400, deadline=None)
@given(
    level=st.sampled_from(["study", "series", "instance"]),
    pairs=st.lists(st.tuples(st.one_of(_KEYS, st.text(max_size=10)), _VALUES), max_size=6),
    junk=st.text(alphabet="&=%;+?#abc0", max_size=12),
)
@example(level="study", pairs=[("PatientName", "*" * 400)], junk="")
@example(level="study", pairs=[], junk="%ff%fe=%c0%af&&==&%")
def test_the_qido_parser_answers_a_query_or_its_own_400(level, pairs, junk):
    given_pairs = [
        (name, value) for name, values in QueryDict(_query_string(pairs, junk)).lists() for value in values
    ]

    outcome = _refusal_or(lambda: parse_query(level, given_pairs), QidoError)

    if isinstance(outcome, QidoError):
        assert outcome.status == 400
        assert outcome.message
    else:
        assert isinstance(outcome, QidoQuery)
        assert all(criterion.key.keyword in MATCH_KEYS for criterion in outcome.criteria)


@pytest.fixture
def searchable(empty_store: Path) -> None:
    """A stored study whose text attributes are full of SQL, markup and regular expression syntax."""
    tiny_study(PatientID=SQL, PatientName=SCRIPT, StudyDescription="a.b*c(d)[e]{f}|g\\h^$")


@pytest.mark.django_db
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    path=st.sampled_from(["/dicomweb/studies", "/dicomweb/series", "/dicomweb/instances"]),
    pairs=st.lists(st.tuples(_KEYS, _VALUES), min_size=1, max_size=4),
)
def test_any_qido_search_is_answered_200_or_400(token, searchable, path, pairs):
    response = token.get(f"{path}?{_query_string(pairs, '')}")

    assert response.status_code in (200, 400), response.content[:300]
    if response.status_code == 400:
        assert response.json()["detail"]


# --- The mask decoder ------------------------------------------------------------------------------
UIDS = ["1.2.3.1", "1.2.3.2", "1.2.3.3"]
ROWS, COLUMNS = 4, 5
_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)
_ENCODED = st.one_of(
    st.binary(max_size=64).map(lambda raw: base64.b64encode(raw).decode()),
    st.text(max_size=40),
    _JSON,
)
_MASKS = st.one_of(
    _JSON,
    st.dictionaries(st.one_of(st.sampled_from(UIDS), st.text(max_size=12)), _ENCODED, max_size=5),
)


@settings(max_examples=500, deadline=None)
@given(value=_MASKS)
@example(value={UIDS[0]: base64.b64encode(bytes(ROWS * COLUMNS * 2)).decode()})
@example(value={UIDS[0]: base64.b64encode(np.ones(ROWS * COLUMNS, dtype="uint8").tobytes()).decode() + "\n"})
def test_the_mask_decoder_answers_a_mask_or_its_own_400(value):
    outcome = _refusal_or(lambda: mask_decode(value, slice_uids=UIDS, rows=ROWS, columns=COLUMNS), MaskError)

    if isinstance(outcome, MaskError):
        assert str(outcome)
    else:
        assert set(outcome) <= set(range(len(UIDS)))
        assert outcome, "an accepted mask holds a voxel"
        for plane in outcome.values():
            assert (plane.shape, plane.dtype) == ((ROWS, COLUMNS), bool)
            assert plane.any()


@settings(max_examples=200, deadline=None)
@given(volume=arrays(np.uint8, (len(UIDS), ROWS, COLUMNS), elements=st.integers(0, 255)))
def test_a_mask_round_trips_through_its_encoding(volume):
    assume(volume.any())

    decoded = mask_decode(encode_mask(volume, UIDS), slice_uids=UIDS, rows=ROWS, columns=COLUMNS)

    assert sorted(decoded) == [z for z in range(len(UIDS)) if volume[z].any()]
    for z, plane in decoded.items():
        assert np.array_equal(plane, volume[z] != 0)


@settings(max_examples=200, deadline=None)
@given(size=st.integers(0, 400).filter(lambda n: n != ROWS * COLUMNS))
def test_a_slice_of_the_wrong_size_is_refused_naming_the_size_expected(size):
    value = {UIDS[0]: base64.b64encode(b"\x01" * size).decode()}

    with pytest.raises(MaskError, match=rf"{size} bytes, expected {ROWS * COLUMNS} \(4 rows x 5 columns"):
        mask_decode(value, slice_uids=UIDS, rows=ROWS, columns=COLUMNS)


# --- The STOW-RS multipart splitter and the ZIP checker -----------------------------------------------
BOUNDARY = "b0und"
_PIECES = st.sampled_from(
    [
        b"--b0und",
        b"--b0und--",
        b"\r\n",
        b"\r\n\r\n",
        b"Content-Type: application/dicom",
        b"x",
        b":",
        b"--",
        b" ",
    ]
)


@settings(max_examples=300, deadline=None)
@given(body=st.lists(st.one_of(_PIECES, st.binary(max_size=8)), max_size=30).map(b"".join))
def test_the_multipart_splitter_answers_parts_or_its_own_refusal(body, tmp_path_factory):
    path = tmp_path_factory.getbasetemp() / "multipart-body"
    path.write_bytes(body)

    outcome = _refusal_or(lambda: split_parts(path, BOUNDARY, max_parts=5), MalformedMultipart, TooManyParts)

    if isinstance(outcome, list):
        assert 1 <= len(outcome) <= 5
        assert all(0 <= part.start <= part.end <= len(body) for part in outcome)
    else:
        assert str(outcome)


def _archive() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("scan/IM1.dcm", part10(ct_dataset()))
        archive.writestr("scan/IM2.dcm", part10(ct_dataset()))
    return buffer.getvalue()


ARCHIVE = _archive()


@settings(max_examples=300, deadline=None)
@given(
    damage=st.lists(st.tuples(st.integers(0, len(ARCHIVE) - 1), st.integers(0, 255)), min_size=1, max_size=6)
)
def test_the_zip_checker_answers_entries_or_its_own_refusal(damage, tmp_path_factory):
    data = bytearray(ARCHIVE)
    for offset, value in damage:
        data[offset] = value
    path: Path = tmp_path_factory.getbasetemp() / "damaged.zip"
    path.write_bytes(bytes(data))

    # Anything but Rejected would be a 500 on the upload page.
    outcome = _refusal_or(lambda: [entry.rejection for entry in archive_entries(path)], Rejected)

    if isinstance(outcome, Rejected):
        assert outcome.reason
    else:
        assert all(rejection is None or rejection.reason for rejection in outcome)
