"""What a request that failed on the server is answered (config.errors.server_error, handler500)."""

from __future__ import annotations

import json

import pytest
from django.db import InterfaceError, OperationalError
from django.test import RequestFactory

from config.errors import server_error


def answer(exc: Exception, path: str, **headers: str):
    request = RequestFactory().get(path, headers=headers)
    try:
        raise exc
    except Exception:  # handler500 runs while Django handles the exception
        return server_error(request)


@pytest.mark.parametrize(
    "exc",
    [
        OperationalError("terminating connection due to administrator command"),
        InterfaceError("connection already closed"),
    ],
    ids=["operational", "interface"],
)
def test_a_lost_database_is_503_with_retry_after(exc):
    page = answer(exc, "/")
    api = answer(exc, "/api/v1/worklist/")

    assert (page.status_code, page["Retry-After"]) == (503, "5")
    assert "Unavailable for a moment" in page.content.decode()
    assert (api.status_code, api["Retry-After"]) == (503, "5")
    assert json.loads(api.content) == {
        "detail": "The database is unavailable for a moment. Try again in a few seconds."
    }


def test_a_database_error_raised_from_a_lost_connection_is_503_too():
    try:
        try:
            raise OperationalError("server closed the connection unexpectedly")
        except OperationalError as lost:
            raise RuntimeError("the query failed") from lost
    except RuntimeError as wrapped:
        response = answer(wrapped, "/dicomweb/studies")

    assert response.status_code == 503


def test_any_other_failure_is_500_and_says_nothing_of_its_cause():
    page = answer(ValueError("secret detail from the code"), "/studies/1.2.3/")
    dicomweb = answer(ValueError("secret detail from the code"), "/dicomweb/studies")
    asked_json = answer(ValueError("secret detail"), "/feedback/", Accept="application/json")

    assert page.status_code == 500
    assert not page.has_header("Retry-After")
    assert "Server error" in page.content.decode()
    assert "secret detail" not in page.content.decode()
    assert dicomweb.status_code == 500
    assert "secret detail" not in json.loads(dicomweb.content)["detail"]
    assert asked_json["Content-Type"] == "application/json"


# --- Requests no view can mean (config.malformed) and routes that do not exist ---------------------
@pytest.fixture
def ada_client(client, ada):
    client.force_login(ada)
    return client


@pytest.mark.django_db
def test_a_nul_in_the_query_string_or_path_is_refused_with_400_before_any_database(ada_client):
    api = ada_client.get("/api/v1/worklist/", {"q": "a\x00b"})
    assert api.status_code == 400
    assert api.json() == {"detail": "Bad request: the query parameter 'q' holds a NUL character."}
    page = ada_client.get("/inference/jobs/", {"model": "a\x00b"})
    assert page.status_code == 400
    assert "the query parameter &#x27;model&#x27; holds a NUL character" in page.content.decode()
    assert ada_client.get("/inference/studies/1.2.3%00/panel/").status_code == 400
    assert ada_client.get("/admin/reviews/readingproject/", {"kind__exact": "a\x00"}).status_code == 400
    # The same requests without the NUL are answered as usual.
    assert ada_client.get("/api/v1/worklist/", {"q": "ab"}).status_code == 200
    assert ada_client.get("/inference/jobs/", {"model": "ab"}).status_code == 200


@pytest.mark.django_db
def test_a_content_length_that_is_not_a_number_is_refused_with_400(ada_client):
    for length in ("abc", "-5", "1e3"):
        answer = ada_client.post(
            "/upload/files",
            data=b"",
            content_type="application/octet-stream",
            CONTENT_LENGTH=length,
            HTTP_ACCEPT="application/json",  # as the upload page's script asks
        )
        assert answer.status_code == 400, length
        assert "Content-Length" in answer.json()["detail"]


@pytest.mark.django_db
def test_an_unreadable_upload_is_400_with_its_reason_in_json(ada_client):
    answer = ada_client.post("/upload/files", data=b"--x\r\n", content_type="multipart/form-data")
    assert answer.status_code == 400
    assert answer.json()["detail"].startswith("the multipart form could not be read")


@pytest.mark.django_db
def test_a_route_that_does_not_exist_is_404_in_json_for_programs_and_a_page_for_people(ada_client):
    api = ada_client.get("/api/v1/readings/-1/decisions/")
    assert (api.status_code, api.json()) == (404, {"detail": "not found"})
    assert ada_client.get("/dicomweb/nothing-here").json() == {"detail": "not found"}
    page = ada_client.get("/no-such-page/")
    assert page.status_code == 404
    assert page["Content-Type"].startswith("text/html")
