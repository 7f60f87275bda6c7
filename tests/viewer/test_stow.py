"""STOW-RS through the real URLs and Django's test client: PS3.18 statuses and the response body."""

from __future__ import annotations

from typing import Any

import pydicom
import pytest
from django.test import Client
from pydicom.uid import generate_uid
from rest_framework.authtoken.models import Token

from audit.models import AuditEvent
from tests.viewer.conftest import ct_dataset, dicom_file, part10, stored_files, with_pixel_header
from viewer.ingest.errors import FailureReason
from viewer.models import Instance

pytestmark = pytest.mark.django_db

BOUNDARY = "stow-test-boundary"
CONTENT_TYPE = f'multipart/related; type="application/dicom"; boundary={BOUNDARY}'


def body_of(*parts: bytes, part_type: str = "application/dicom") -> bytes:
    chunks = [
        f"--{BOUNDARY}\r\nContent-Type: {part_type}\r\n\r\n".encode() + part + b"\r\n" for part in parts
    ]
    return b"".join(chunks) + f"--{BOUNDARY}--\r\n".encode()


@pytest.fixture
def token_client(rita: Any) -> Client:
    """A script signed in with Rita's API token (no session, no CSRF token)."""
    token = Token.objects.create(user=rita)
    return Client(enforce_csrf_checks=True, HTTP_AUTHORIZATION=f"Token {token.key}")


def stow(client: Client, *parts: bytes, url: str = "/dicomweb/studies", **kwargs: Any) -> Any:
    return client.post(
        url, data=body_of(*parts), content_type=kwargs.pop("content_type", CONTENT_TYPE), **kwargs
    )


def sequence(response: Any, tag: str) -> list[dict[str, Any]]:
    return response.json().get(tag, {}).get("Value", [])


def test_all_stored_is_200_with_references_and_retrieve_urls(token_client, empty_store):
    study_uid = generate_uid()
    first, second = ct_dataset(StudyInstanceUID=study_uid), ct_dataset(StudyInstanceUID=study_uid)

    response = stow(token_client, part10(first), part10(second))

    assert response.status_code == 200
    assert response["Content-Type"] == "application/dicom+json"
    body = response.json()
    assert body["00081190"] == {"vr": "UR", "Value": [f"http://testserver/dicomweb/studies/{study_uid}"]}
    assert "00081198" not in body
    references = sequence(response, "00081199")
    assert [item["00081155"]["Value"][0] for item in references] == [
        first.SOPInstanceUID,
        second.SOPInstanceUID,
    ]
    assert references[0]["00081150"]["Value"] == [pydicom.uid.CTImageStorage]
    assert references[0]["00081190"]["Value"] == [
        f"http://testserver/dicomweb/studies/{study_uid}/series/{first.SeriesInstanceUID}/instances/{first.SOPInstanceUID}"
    ]
    assert Instance.objects.count() == 2


def test_instances_already_held_count_as_stored_with_a_warning(token_client, empty_store):
    data = part10(ct_dataset())
    stow(token_client, data)

    response = stow(token_client, data)

    assert response.status_code == 200
    assert len(sequence(response, "00081199")) == 1
    assert response["Warning"] == '299 overread "1 instance(s) were already stored"'


def test_some_stored_is_202_with_failure_reasons(token_client, empty_store):
    good = ct_dataset()
    truncated = dicom_file("MR_truncated.dcm")

    response = stow(token_client, part10(good), truncated.read_bytes())

    assert response.status_code == 202
    [failed] = sequence(response, "00081198")
    assert failed["00081197"] == {"vr": "US", "Value": [FailureReason.CANNOT_UNDERSTAND]}
    assert failed["00081155"]["Value"] == [pydicom.dcmread(truncated).SOPInstanceUID]
    assert [item["00081155"]["Value"][0] for item in sequence(response, "00081199")] == [good.SOPInstanceUID]
    assert "part 2: the file is truncated" in response["Warning"]


def test_instances_of_another_study_than_the_url_are_409_and_nothing_is_stored(token_client, empty_store):
    target = generate_uid()

    response = stow(
        token_client, part10(ct_dataset()), part10(ct_dataset()), url=f"/dicomweb/studies/{target}"
    )

    assert response.status_code == 409
    failed = sequence(response, "00081198")
    assert [item["00081197"]["Value"] for item in failed] == [[FailureReason.DOES_NOT_MATCH]] * 2
    assert response.json()["00081190"] == {
        "vr": "UR",
        "Value": [f"http://testserver/dicomweb/studies/{target}"],
    }
    assert Instance.objects.count() == 0
    assert stored_files(empty_store) == set()


def test_instances_of_the_urls_study_are_stored(token_client, empty_store):
    ds = ct_dataset()

    response = stow(token_client, part10(ds), url=f"/dicomweb/studies/{ds.StudyInstanceUID}")

    assert response.status_code == 200


def test_a_header_claiming_65535_by_65535_pixels_is_refused_and_the_server_keeps_serving(
    token_client, empty_store
):
    hostile = with_pixel_header(part10(ct_dataset()), rows=65535, columns=65535)

    refused = stow(token_client, hostile)
    following = stow(token_client, part10(ct_dataset()))

    assert refused.status_code == 409
    assert sequence(refused, "00081198")[0]["00081197"]["Value"] == [FailureReason.OUT_OF_RESOURCES]
    assert following.status_code == 200
    assert Instance.objects.count() == 1


@pytest.mark.parametrize(
    "body",
    [
        b"no boundary anywhere",
        f"--{BOUNDARY}\r\nContent-Type: application/dicom\r\n\r\nnever closed".encode(),
        f"--{BOUNDARY}\r\nContent-Type application/dicom\r\n\r\nx\r\n--{BOUNDARY}--".encode(),
        f"--{BOUNDARY}--\r\n".encode(),
    ],
    ids=["no-boundary", "no-close-delimiter", "bad-header", "no-parts"],
)
def test_a_malformed_body_is_400(body, token_client, empty_store):
    response = token_client.post("/dicomweb/studies", data=body, content_type=CONTENT_TYPE)

    assert response.status_code == 400
    assert response.json()["detail"].startswith("malformed multipart/related body")


def test_a_content_type_without_boundary_is_400(token_client, empty_store):
    response = stow(
        token_client, part10(ct_dataset()), content_type='multipart/related; type="application/dicom"'
    )

    assert response.status_code == 400


@pytest.mark.parametrize(
    "content_type",
    [
        "application/dicom",
        "multipart/form-data; boundary=x",
        f'multipart/related; type="application/dicom+json"; boundary={BOUNDARY}',
    ],
)
def test_another_media_type_is_415(content_type, token_client, empty_store):
    response = stow(token_client, part10(ct_dataset()), content_type=content_type)

    assert response.status_code == 415
    assert Instance.objects.count() == 0


def test_a_part_of_another_type_is_refused_on_its_own(token_client, empty_store):
    body = body_of(b"hello", part_type="text/plain")

    response = token_client.post("/dicomweb/studies", data=body, content_type=CONTENT_TYPE)

    assert response.status_code == 409
    assert sequence(response, "00081198")[0]["00081197"]["Value"] == [FailureReason.CANNOT_UNDERSTAND]


def test_a_request_over_the_upload_limit_is_413(settings, token_client, empty_store):
    settings.DICOM_MAX_UPLOAD_BYTES = 1024

    response = stow(token_client, part10(ct_dataset(rows=64, columns=64)))

    assert response.status_code == 413
    assert Instance.objects.count() == 0


def test_an_anonymous_request_is_401_and_stores_nothing(client, empty_store):
    response = stow(client, part10(ct_dataset()))

    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Token")
    assert Instance.objects.count() == 0


def test_a_user_without_the_permission_is_403(anna, empty_store):
    token = Token.objects.create(user=anna)

    response = stow(Client(HTTP_AUTHORIZATION=f"Token {token.key}"), part10(ct_dataset()))

    assert response.status_code == 403
    assert Instance.objects.count() == 0


def test_a_browser_session_must_send_its_csrf_token(rita, empty_store):
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(rita)
    browser.get("/upload/")  # sets the CSRF cookie
    token = browser.cookies["csrftoken"].value

    refused = stow(browser, part10(ct_dataset()))
    accepted = stow(browser, part10(ct_dataset()), HTTP_X_CSRFTOKEN=token)

    assert refused.status_code == 403
    assert accepted.status_code == 200


def test_stored_and_refused_instances_are_audited_as_transfers(token_client, empty_store):
    before = AuditEvent.objects.order_by("-id").values_list("id", flat=True).first() or 0
    ds = ct_dataset()

    stow(token_client, part10(ds), b"DICM? no")

    events = AuditEvent.objects.filter(id__gt=before, event_id="110104").order_by("id")
    assert [(e.action, e.outcome, e.sop_uid, e.username) for e in events] == [
        ("C", 0, ds.SOPInstanceUID, "rita"),
        ("C", 4, "", "rita"),
    ]
