"""Hostile JSON bodies, masks and identifiers against the API, the pages and DICOMweb.

Every refusal is a specific 4xx whose message names the input at fault; a refused write leaves
no decision row, no mask file and the reading's version as it was; and the next ordinary
request works. Identifiers in paths and query strings (path traversal, NUL bytes, numbers past
any column's range) are answered 400 or 404, never 500.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from django.test import Client
from rest_framework.test import APIClient

from reviews.models import Decision, Reading
from tests.reviews.helpers import api
from tests.security.conftest import OpenReading
from tests.security.helpers import COLUMNS, ROWS, SCRIPT, plane

pytestmark = pytest.mark.django_db

HUGE = "99999999999999999999"  # past PostgreSQL's bigint


def decision(reading: OpenReading, **fields: Any) -> dict[str, Any]:
    """A valid "added" decision body, with `fields` changed."""
    return {"version": reading.version, "kind": "added", "label": "nodule", "confidence": 3, **fields}


def good_mask(reading: OpenReading) -> dict[str, str]:
    return {reading.slice_uids[1]: base64.b64encode(plane().tobytes()).decode()}


def assert_nothing_written(reading: OpenReading) -> None:
    assert not Decision.objects.filter(reading_id=reading.pk).exists(), "a refused write left a decision"
    assert reading.current().version == reading.version, "a refused write moved the version on"
    assert not (reading.store / "reviews").exists(), "a refused write left a mask file"


def assert_still_decides(reading: OpenReading) -> None:
    response = reading.client.post(
        reading.url + "decisions/", decision(reading, mask=good_mask(reading)), format="json"
    )
    assert response.status_code == 201, response.content
    assert list((reading.store / "reviews" / "readings" / str(reading.pk)).iterdir())


# --- Bodies that are not the JSON object asked for ------------------------------------------------
OVERSIZED = b'{"version": 1, "reason_text": "' + b"x" * 3_000_000 + b'"}'
NESTED = b"[" * 100_000 + b"]" * 100_000
BODIES = [
    (
        "oversized_3_mb",
        OVERSIZED,
        "application/json",
        413,
        "the request body is larger than the limit of 2621440 bytes",
    ),
    (
        "nested_100000_deep",
        NESTED,
        "application/json",
        400,
        "JSON parse error - the body is nested too deeply",
    ),
    ("cut_short", b'{"version": 1, "kind": "add', "application/json", 400, "JSON parse error"),
    (
        "nan_literal",
        b'{"version": NaN}',
        "application/json",
        400,
        "Out of range float values are not JSON compliant",
    ),
    ("invalid_utf8", b'{"kind": "\xff"}', "application/json", 400, "can't decode byte 0xff"),
    ("text_plain", b"kind=added", "text/plain", 415, 'Unsupported media type "text/plain" in request.'),
    (
        "top_level_list",
        b"[1, 2]",
        "application/json",
        400,
        "Invalid data. Expected a dictionary, but got list.",
    ),
    (
        "top_level_string",
        b'"added"',
        "application/json",
        400,
        "Invalid data. Expected a dictionary, but got str.",
    ),
    ("empty", b"", "application/json", 400, "version: This field is required."),
]


@pytest.mark.parametrize(
    ("body", "content_type", "status", "detail"),
    [case[1:] for case in BODIES],
    ids=[case[0] for case in BODIES],
)
def test_a_malformed_body_is_refused_with_its_reason(body, content_type, status, detail, reading):
    response = reading.client.post(reading.url + "decisions/", body, content_type=content_type)

    assert response.status_code == status
    assert detail in response.json()["detail"]
    assert_nothing_written(reading)
    assert_still_decides(reading)


@pytest.mark.parametrize(
    ("body", "status", "detail"),
    [
        pytest.param(
            OVERSIZED,
            413,
            "larger than the limit",
            id="oversized_3_mb",
        ),
        pytest.param(
            NESTED,
            400,
            "nested too deeply",
            id="nested_100000_deep",
        ),
    ],
)
def test_a_malformed_body_to_the_inference_api_is_refused_with_its_reason(body, status, detail, ada):
    response = api(ada).post("/api/v1/inference/jobs/", body, content_type="application/json")

    assert response.status_code == status
    assert detail in response.json()["detail"]


# --- Wrong types and values, field by field -------------------------------------------------------
FIELDS = [
    ("decisions", "version_as_text", {"version": "one"}, 400, "version", "A valid integer is required."),
    # No version can be past a 64-bit key: refused as a value, before any comparison.
    ("decisions", "version_10e30", {"version": 10**30}, 400, "version", "less than or equal to 9223372"),
    (
        "decisions",
        "confidence_fraction",
        {"confidence": 5.5},
        400,
        "confidence",
        "A valid integer is required.",
    ),
    (
        "decisions",
        "confidence_boolean",
        {"confidence": True},
        400,
        "confidence",
        "A valid integer is required.",
    ),
    ("decisions", "confidence_99", {"confidence": 99}, 400, "confidence", "a whole number from 1 to 5"),
    ("decisions", "kind_as_list", {"kind": ["added"]}, 400, "kind", "is not a valid choice."),
    (
        "decisions",
        "label_path",
        {"label": "../../etc/passwd"},
        400,
        "label",
        "unknown label '../../etc/passwd'",
    ),
    ("decisions", "label_65_chars", {"label": "n" * 65}, 400, "label", "no more than 64 characters"),
    (
        "decisions",
        "mask_as_text",
        {"mask": "AAAA"},
        400,
        "mask",
        'Expected a dictionary of items but got type "str".',
    ),
    ("decisions", "bbox_as_text", {"bbox": "x"}, 400, "bbox", "bbox is [[z0, z1], [y0, y1], [x0, x1]]"),
    (
        "decisions",
        "bbox_10e30",
        {"bbox": [[0, 10**30], [0, 1], [0, 1]]},
        400,
        "bbox",
        "half-open ranges within 4",
    ),
    ("decisions", "bbox_booleans", {"bbox": [[False, True], [0, 1], [0, 1]]}, 400, "bbox", "whole numbers"),
    (
        "decisions",
        "time_spent_nan",
        {"time_spent_s": "NaN"},
        400,
        "time_spent_s",
        "A valid number is required.",
    ),
    ("decisions", "time_spent_negative", {"time_spent_s": -1}, 400, "time_spent_s", "must lie in 0..86400"),
    ("decisions", "target_path", {"target": "added-../../1"}, 400, "target", 'target must be "added-<n>"'),
    (
        "decisions",
        "finding_negative",
        {"kind": "accepted", "finding": -1},
        400,
        "finding",
        "greater than or equal to 1",
    ),
    (
        "decisions",
        "reason_2001_chars",
        {"reason_text": "x" * 2001},
        400,
        "reason_text",
        "no more than 2000 characters",
    ),
    (
        "decisions",
        "reason_code_nul",
        {"reason_code": "a\x00"},
        400,
        "reason_code",
        "Null characters are not allowed.",
    ),
    (
        "draft",
        "impression_10001_chars",
        {"unaided_impression": "x" * 10_001},
        400,
        "unaided_impression",
        "10000",
    ),
    (
        "draft",
        "impression_nul",
        {"unaided_impression": "a\x00b"},
        400,
        "unaided_impression",
        "Null characters",
    ),
    ("draft", "answers_nested", {"answers": {"q": {"a": 1}}}, 400, "answers", "q: Not a valid string."),
    (
        "draft",
        "triage_script",
        {"triage_agreement": SCRIPT},
        400,
        "triage_agreement",
        "is not a valid choice.",
    ),
    ("heartbeat", "seconds_infinity", {"seconds": "Infinity"}, 400, "seconds", "A valid number is required."),
    ("heartbeat", "seconds_negative", {"seconds": -5}, 400, "seconds", "more than 0 and at most 60"),
    ("heartbeat", "seconds_a_billion", {"seconds": 1e9}, 400, "seconds", "more than 0 and at most 60"),
]


def _send(reading: OpenReading, where: str, fields: dict[str, Any]) -> Any:
    if where == "decisions":
        return reading.client.post(reading.url + "decisions/", decision(reading, **fields), format="json")
    if where == "draft":
        return reading.client.patch(reading.url, {"version": reading.version, **fields}, format="json")
    return reading.client.post(reading.url + "heartbeat/", fields, format="json")


@pytest.mark.parametrize(
    ("where", "fields", "status", "field", "detail"),
    [case[:1] + case[2:] for case in FIELDS],
    ids=[case[1] for case in FIELDS],
)
def test_a_wrong_value_is_refused_naming_its_field(where, fields, status, field, detail, reading):
    response = _send(reading, where, fields)

    assert response.status_code == status, response.content
    assert response.json()["field"] == field
    assert detail in response.json()["detail"]
    assert_nothing_written(reading)
    current = reading.current()
    assert (current.unaided_impression, current.answers, current.unaided_seconds) == ("", {}, 0)
    assert_still_decides(reading)


@pytest.mark.parametrize(
    ("body", "status", "detail"),
    [
        ({"study_uid": "1.2.3\x00"}, 400, "study_uid: Null characters are not allowed."),
        (
            {"study_uid": "1.2." + "3" * 62},
            400,
            "study_uid: Ensure this field has no more than 64 characters.",
        ),
        ({"study_uid": "../../etc/passwd"}, 404, "not found"),
        ({"study_uid": "1.2.3", "project": "1 OR 1=1"}, 400, "project: A valid integer is required."),
        ({"study_uid": "1.2.3", "project": int(HUGE)}, 400, "project: Ensure this value is less than"),
    ],
    ids=["study_uid_nul", "study_uid_66_chars", "study_uid_path", "project_sql", "project_past_bigint"],
)
def test_opening_a_reading_with_a_hostile_study_or_project_is_refused(body, status, detail, reading):
    response = reading.client.post("/api/v1/readings/", body, format="json")

    assert response.status_code == status
    assert detail in response.json()["detail"]
    assert Reading.objects.count() == 1


# --- Masks: the decoder behind the API ----------------------------------------------------------------
def _one_slice(pixels: np.ndarray) -> Callable[[OpenReading], dict[str, Any]]:
    return lambda r: {r.slice_uids[0]: base64.b64encode(np.ascontiguousarray(pixels).tobytes()).decode()}


def _keyed(key: str) -> Callable[[OpenReading], dict[str, Any]]:
    return lambda r: {key: base64.b64encode(plane().tobytes()).decode()}


def _valued(value: Any) -> Callable[[OpenReading], dict[str, Any]]:
    return lambda r: {r.slice_uids[0]: value}


def _every_slice_and_one_more(reading: OpenReading) -> dict[str, Any]:
    encoded = base64.b64encode(plane().tobytes()).decode()
    return {uid: encoded for uid in [*reading.slice_uids, "1.2.3.4"]}


PLANE = ROWS * COLUMNS
MASKS = [
    (
        "rows_one_short",
        _one_slice(plane(shape=(ROWS - 1, COLUMNS))),
        f"56 bytes, expected {PLANE} (8 rows x 8 columns",
    ),
    ("twice_the_size", _one_slice(plane(shape=(16, 16))), f"256 bytes, expected {PLANE}"),
    ("uint16", _one_slice(plane(dtype="uint16")), "2 bytes per pixel looks like a 16-bit array: send uint8"),
    (
        "float32",
        _one_slice(plane(dtype="float32")),
        "4 bytes per pixel looks like a 32-bit array: send uint8",
    ),
    (
        "float64",
        _one_slice(plane(dtype="float64")),
        "8 bytes per pixel looks like a 64-bit array: send uint8",
    ),
    ("packed_bits", _one_slice(np.packbits(plane())), f"8 bytes, expected {PLANE}"),
    ("all_zero", _one_slice(plane(0)), "the mask is empty: it holds no voxel"),
    ("not_base64", _valued("!!!!not base64!!!!"), "not valid base64"),
    ("base64_with_newline", _valued("AAAA\nAAAA"), "not valid base64"),
    ("a_number", _valued(5), "not valid base64"),
    ("null", _valued(None), "mask: " + "{uid}: This field may not be null."),
    ("nul_in_value", _valued("AAAA\x00"), "mask: " + "{uid}: Null characters are not allowed."),
    ("a_list_of_pixels", _valued([0, 1] * (PLANE // 2)), "mask: " + "{uid}: Not a valid string."),
    ("uid_not_in_the_series", _keyed("1.2.3.4"), "'1.2.3.4' is not an image of the series being read"),
    (
        "uid_path_traversal",
        _keyed("../../../etc/passwd"),
        "'../../../etc/passwd' is not an image of the series",
    ),
    ("uid_with_nul", _keyed("1.2\x00.3"), "'1.2\\x00.3' is not an image of the series being read"),
    ("more_slices_than_the_series", _every_slice_and_one_more, "the mask names 5 slices; the series has 4"),
]


@pytest.mark.parametrize(("build", "detail"), [case[1:] for case in MASKS], ids=[case[0] for case in MASKS])
def test_a_hostile_mask_is_refused_with_its_reason(build, detail, reading):
    response = reading.client.post(
        reading.url + "decisions/", decision(reading, mask=build(reading)), format="json"
    )

    assert response.status_code == 400, response.content
    assert response.json()["field"] == "mask"
    assert detail.format(uid=reading.slice_uids[0]) in response.json()["detail"]
    assert_nothing_written(reading)
    assert_still_decides(reading)


def test_an_empty_mask_object_is_refused_as_no_mask(reading):
    response = reading.client.post(reading.url + "decisions/", decision(reading, mask={}), format="json")

    assert response.status_code == 400
    assert response.json() == {"detail": "an added finding needs a mask or a box", "field": "mask"}
    assert_nothing_written(reading)


# --- Identifiers in paths and query strings -------------------------------------------------------------
# (who asks, the URL with {pk} {study} {series} {sop} of the open reading, status, what the body says)
PATHS = [
    ("rita", "/api/v1/readings/..%2F..%2Fetc%2Fpasswd/", 404, ""),
    ("rita", "/api/v1/readings/-1/", 404, ""),
    ("rita", f"/api/v1/readings/{HUGE}/", 404, "not found"),
    ("rita", "/api/v1/readings/{pk}%00/", 400, "the path holds a NUL character"),
    ("rita", f"/api/v1/readings/{{pk}}/decisions/{HUGE}/mask/", 404, "this decision has no mask of its own"),
    ("rita", f"/api/v1/inference/jobs/{HUGE}/", 404, "no such job"),
    ("rita", "/api/v1/inference/jobs/1/arrays/%2e%2e/", 404, "arrays are 'heatmap' or 'mask'"),
    ("rita", "/api/v1/inference/jobs/1/arrays/..%2F..%2Fmask/", 404, ""),
    ("rita", "/api/v1/studies/..%2F..%2Fetc/ai/", 404, ""),
    ("rita", "/api/v1/studies/%2e%2e/ai/", 404, "no such study"),
    ("rita", "/api/v1/worklist/?q=a%00b", 400, "the query parameter 'q' holds a NUL character"),
    ("rita", "/api/v1/worklist/?project=1%20OR%201%3D1", 400, "project: A valid integer is required."),
    ("ada", f"/api/v1/consensus/projects/{HUGE}/", 404, "no such consensus project"),
    ("ada", f"/api/v1/consensus/cases/{HUGE}/masks/%2e%2e/", 404, "no such case"),
    ("ada", f"/api/v1/feedback/exports/{HUGE}/file/", 404, "not found"),
    ("ada", "/api/v1/audit/events/export/%2e%2e/", 404, "unknown export format"),
    ("ada", "/api/v1/audit/events/?study_uid=1.2%00", 400, "parameter 'study_uid' holds a NUL character"),
    ("ada", f"/api/v1/audit/events/?before={HUGE}", 400, "less than or equal to 9223372036854775807"),
    ("rita", "/studies/%2e%2e/", 404, ""),
    ("rita", "/studies/..%2F..%2Fetc%2Fpasswd/", 404, ""),
    ("rita", f"/pacs/pulls/{HUGE}/", 404, ""),
    ("ada", f"/audit/exports/{HUGE}/", 404, ""),
    ("ada", "/audit/export/%2e%2e/", 404, ""),
    ("ada", f"/consensus/projects/{HUGE}/", 404, ""),
    ("rita", "/dicomweb/studies/%2e%2e/series", 400, "the Study Instance UID is not a valid DICOM UID"),
    ("rita", "/dicomweb/studies/{study}%00/metadata", 400, "the path holds a NUL character"),
    (
        "rita",
        "/dicomweb/studies/{study}/series/%2e%2e/metadata",
        400,
        "the Series Instance UID is not a valid",
    ),
    (
        "rita",
        "/dicomweb/studies/{study}/series/{series}/instances/..%5C..%5Cx/metadata",
        400,
        "the SOP Instance UID",
    ),
    (
        "rita",
        "/dicomweb/studies/{study}/series/{series}/instances/{sop}/frames/1%00",
        400,
        "the path holds a NUL character",
    ),
    (
        "rita",
        f"/dicomweb/studies/{{study}}/series/{{series}}/instances/{{sop}}/frames/{HUGE}",
        400,
        "frame list",
    ),
    (
        "rita",
        "/dicomweb/studies/{study}/series/{series}/instances/{sop}/frames/0",
        400,
        "frame numbers start at 1",
    ),
    (
        "rita",
        "/dicomweb/studies/{study}/series/{series}/instances/{sop}/bulkdata/%2e%2e",
        400,
        "8 hexadecimal digits",
    ),
    ("rita", "/dicomweb/studies?PatientID=a%00b", 400, "the query parameter 'PatientID' holds a NUL"),
    ("rita", "/dicomweb/studies?PatientID=a%01b", 400, "contains control characters"),
    ("rita", f"/dicomweb/studies?limit={HUGE}", 400, "limit must be a whole number"),
    ("rita", "/dicomweb/studies?00100020.00080100=x", 400, "unknown query parameter"),
]


def test_a_hostile_identifier_is_400_or_404_never_500(reading, rita, ada, subtests):
    """One reading for the whole table (each case reads only): a subtest per identifier."""
    clients = {"rita": Client(), "ada": Client()}
    clients["rita"].force_login(rita)
    clients["ada"].force_login(ada)
    for who, template, status, detail in PATHS:
        url = template.format(
            pk=reading.pk, study=reading.study_uid, series=reading.series_uid, sop=reading.slice_uids[0]
        )
        with subtests.test(url=template):
            response = clients[who].get(url)

            assert response.status_code == status
            assert detail in response.content.decode()
    assert clients["rita"].get(reading.url).status_code == 200
    assert clients["ada"].get("/api/v1/me/").status_code == 200


@pytest.mark.parametrize(
    ("url", "statuses"),
    [
        pytest.param(
            "/api/v1/readings/?study_uid=1.2.3%00",
            {400},
            id="readings_study_uid_nul",
        ),
        pytest.param(
            "/api/v1/studies/1.2.3%00/ai/",
            {400, 404},
            id="study_ai_nul",
        ),
        pytest.param(
            "/?q=a%00b",
            {400},
            id="worklist_page_q_nul",
        ),
        pytest.param(
            f"/?page={HUGE}",
            {200, 400, 404},
            id="worklist_page_past_bigint",
        ),
        pytest.param(
            f"/api/v1/worklist/?page={HUGE}",
            {400},
            id="worklist_api_page_past_bigint",
        ),
    ],
)
def test_a_hostile_query_parameter_is_refused_never_500(url, statuses, rita):
    client = Client()
    client.force_login(rita)

    assert client.get(url).status_code in statuses


def test_hostile_ids_in_json_bodies_name_what_was_not_found(reading, ada):
    admin: APIClient = api(ada)
    project = Reading.objects.get(pk=reading.pk).project_id

    assigned = admin.post(
        f"/api/v1/projects/{project}/assignments/",
        {"study_uid": "../../etc/passwd", "reader": "rita"},
        format="json",
    )
    reader = admin.post(
        f"/api/v1/projects/{project}/assignments/",
        {"study_uid": reading.study_uid, "reader": "../../root"},
        format="json",
    )
    job = admin.post(
        "/api/v1/inference/jobs/", {"series_uid": "%2e%2e", "model": "../../weights"}, format="json"
    )

    assert (assigned.status_code, assigned.json()) == (400, {"detail": "no such study", "field": "study_uid"})
    assert (reader.status_code, reader.json()) == (400, {"detail": "no such user", "field": "reader"})
    assert (job.status_code, job.json()) == (400, {"series_uid": ["no such series"]})
