"""Sessions expire after inactivity, renewed at most once a minute rather than written per request."""

from __future__ import annotations

import pytest
from django.contrib.sessions.models import Session

from config import sessions

pytestmark = pytest.mark.django_db


def _expiry(client) -> object:
    return Session.objects.get(session_key=client.session.session_key).expire_date


def test_activity_renews_the_idle_expiry_at_most_once_a_minute(client, rita, monkeypatch):
    clock = [1_000_000.0]
    monkeypatch.setattr(sessions, "_now", lambda: clock[0])
    client.force_login(rita)
    client.get("/")
    first = _expiry(client)

    clock[0] += 30  # within the minute: no write
    client.get("/")
    assert _expiry(client) == first

    clock[0] += 31  # past the minute: the expiry moves on
    client.get("/")
    assert _expiry(client) > first


def test_an_idle_session_ends(client, rita, settings):
    client.force_login(rita)
    assert client.get("/").status_code == 200
    Session.objects.update(expire_date="2000-01-01T00:00:00Z")
    response = client.get("/")
    assert response.status_code == 302
    assert response["Location"].startswith("/login/")
