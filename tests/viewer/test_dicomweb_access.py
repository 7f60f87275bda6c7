"""DICOMweb access: who is signed in, which studies they see, what is audited, what is refused."""

from __future__ import annotations

import base64

import pytest
from django.test import Client
from rest_framework.authtoken.models import Token

from audit.models import AuditEvent
from tests.factories import PASSWORD, UserFactory
from tests.viewer.dicomweb_helpers import index_file, make_ct_series
from viewer.models import Study

pytestmark = pytest.mark.django_db

ACCESSED, QUERY = "110103", "110112"


@pytest.fixture
def ct(empty_store):
    """A three-slice CT series; returns its instances."""
    return [index_file(data) for data in make_ct_series(3)]


def _urls(instance) -> dict[str, str]:
    study, series = instance.series.study.study_uid, instance.series.series_uid
    base = f"/dicomweb/studies/{study}"
    item = f"{base}/series/{series}/instances/{instance.sop_instance_uid}"
    return {
        "search": "/dicomweb/studies",
        "series search": f"{base}/series",
        "study": base,
        "study metadata": f"{base}/metadata",
        "series metadata": f"{base}/series/{series}/metadata",
        "instance": item,
        "frames": f"{item}/frames/1",
        "rendered": f"{item}/rendered",
        "thumbnail": f"{base}/series/{series}/thumbnail",
    }


def _signed_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_it_answers_401_with_a_challenge_not_a_login_redirect(ct, client):
    for name, url in _urls(ct[0]).items():
        response = client.get(url)
        assert response.status_code == 401, name
        assert response["WWW-Authenticate"].startswith("Token"), name


def test_it_refuses_a_wrong_token_or_password_with_401(ct, rita, client):
    url = _urls(ct[0])["search"]
    assert client.get(url, HTTP_AUTHORIZATION="Token not-a-token").status_code == 401
    wrong = base64.b64encode(b"rita:wrong-password").decode()
    assert client.get(url, HTTP_AUTHORIZATION=f"Basic {wrong}").status_code == 401


def test_it_accepts_a_token_basic_auth_and_the_session(ct, rita, client):
    url = _urls(ct[0])["series metadata"]
    token = Token.objects.create(user=rita)
    assert client.get(url, HTTP_AUTHORIZATION=f"Token {token.key}").status_code == 200
    basic = base64.b64encode(f"rita:{PASSWORD}".encode()).decode()
    assert client.get(url, HTTP_AUTHORIZATION=f"Basic {basic}").status_code == 200
    assert _signed_in(rita).get(url).status_code == 200


@pytest.mark.parametrize("role_user", ["rita", "anna", "adi", "ada"])
def test_every_role_may_read_studies(ct, role_user, request):
    client = _signed_in(request.getfixturevalue(role_user))
    for name, url in _urls(ct[0]).items():
        assert client.get(url).status_code == 200, name


def test_a_user_without_the_permission_sees_no_study_and_gets_404_not_403(ct):
    nobody = UserFactory(username="nobody")
    client = _signed_in(nobody)
    urls = _urls(ct[0])
    assert client.get(urls.pop("search")).json() == []
    for name, url in urls.items():
        assert client.get(url).status_code == 404, name


def test_an_unknown_study_is_404_just_like_a_forbidden_one(ct, rita):
    client = _signed_in(rita)
    assert client.get("/dicomweb/studies/1.2.3.4/metadata").status_code == 404
    assert client.get("/dicomweb/studies/1.2.3.4/series").status_code == 404


def test_a_study_access_is_audited_once_per_session_not_per_frame(ct, rita):
    client = _signed_in(rita)
    urls = _urls(ct[0])
    client.get(urls["series metadata"])
    for instance in ct:
        client.get(_urls(instance)["frames"])
    events = AuditEvent.objects.filter(event_id=ACCESSED)
    assert events.count() == 1
    event = events.get()
    assert (event.study_uid, event.patient_id, event.username) == (
        ct[0].series.study.study_uid,
        "P-1",
        "rita",
    )

    _signed_in(rita).get(urls["frames"])  # a new session is a new access
    assert AuditEvent.objects.filter(event_id=ACCESSED).count() == 2


def test_token_clients_are_audited_once_per_token(ct, rita, client):
    token = Token.objects.create(user=rita)
    for instance in ct:
        client.get(_urls(instance)["frames"], HTTP_AUTHORIZATION=f"Token {token.key}")
    assert AuditEvent.objects.filter(event_id=ACCESSED).count() == 1


def test_each_query_is_audited_with_its_query_string(ct, rita):
    client = _signed_in(rita)
    client.get("/dicomweb/studies", {"PatientID": "P-1", "limit": "5"})
    client.get(_urls(ct[0])["series search"])
    queries = list(AuditEvent.objects.filter(event_id=QUERY).order_by("id"))
    assert len(queries) == 2
    assert "PatientID=P-1" in queries[0].detail
    assert queries[1].study_uid == ct[0].series.study.study_uid


def test_a_refused_query_is_not_run(ct, rita):
    response = _signed_in(rita).get("/dicomweb/studies", {"NoSuchKey": "x"})
    assert response.status_code == 400
    assert not AuditEvent.objects.filter(event_id=QUERY).exists()


@pytest.mark.parametrize(
    "bad",
    [
        "..",
        "%2e%2e",
        "1.2.3/../4",
        "..%2F..%2Fetc",
        "1.2.03",
        "1.2.3.",
        "a.b.c",
        "1" * 65,
        "1.2 3",
        "%00",
        "~root",
    ],
)
def test_malformed_or_traversing_ids_never_reach_the_store(ct, rita, bad, empty_store, monkeypatch):
    def no_file_access(*args, **kwargs):
        raise AssertionError("the store was opened")

    monkeypatch.setattr("viewer.decode.store_open", no_file_access)
    monkeypatch.setattr("viewer.dicomweb.wado.store_open", no_file_access)
    monkeypatch.setattr("viewer.dicomweb.retrieve.store_open", no_file_access)
    monkeypatch.setattr("viewer.dicomweb.rendered.store_open", no_file_access)
    monkeypatch.setattr("viewer.decode.default_storage.path", no_file_access)
    client = _signed_in(rita)
    good = ct[0]
    st, se, sop = good.series.study.study_uid, good.series.series_uid, good.sop_instance_uid
    for url in (
        f"/dicomweb/studies/{bad}",
        f"/dicomweb/studies/{bad}/metadata",
        f"/dicomweb/studies/{st}/series/{bad}/metadata",
        f"/dicomweb/studies/{st}/series/{se}/instances/{bad}",
        f"/dicomweb/studies/{st}/series/{se}/instances/{bad}/frames/1",
        f"/dicomweb/studies/{st}/series/{se}/instances/{sop}/frames/{bad}",
        f"/dicomweb/studies/{st}/series/{se}/instances/{sop}/bulkdata/{bad}",
        f"/dicomweb/studies/{st}/series/{se}/instances/{sop}/frames/{bad}/rendered",
    ):
        assert client.get(url).status_code in (400, 404), url


def test_a_malformed_uid_gets_a_400_that_says_why(ct, rita):
    response = _signed_in(rita).get("/dicomweb/studies/1.2.03/metadata")
    assert response.status_code == 400
    assert "not a valid DICOM UID" in response.json()["detail"]


def test_stow_by_session_needs_the_csrf_token(ct, rita):
    client = Client(enforce_csrf_checks=True)
    client.force_login(rita)
    response = client.post("/dicomweb/studies", b"", content_type="multipart/related; boundary=x")
    assert response.status_code == 403
    assert "CSRF" in response.json()["detail"]


def test_unsupported_methods_get_405(ct, rita):
    client = _signed_in(rita)
    assert client.delete("/dicomweb/studies").status_code == 405
    assert client.post(_urls(ct[0])["study metadata"]).status_code == 405


def test_the_selector_is_the_one_place_that_decides(ct, rita, monkeypatch):
    monkeypatch.setattr("viewer.selectors.study_queryset_for_user", lambda *, user: Study.objects.none())
    client = _signed_in(rita)
    urls = _urls(ct[0])
    assert client.get(urls.pop("search")).json() == []
    for name, url in urls.items():
        assert client.get(url).status_code == 404, name
