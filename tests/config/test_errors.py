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
