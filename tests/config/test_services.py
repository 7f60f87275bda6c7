"""The real services Overread runs on: database, broker, worker, PACS.

In CI these run against PostgreSQL, Redis and Orthanc (CI=true makes a missing
one a failure); locally they use whatever is configured, and skip what is not.
"""

from __future__ import annotations

import os

import pytest
from django.conf import settings
from django.core.management import CommandError, call_command
from django.db import connection

from config import health
from tests.conftest import IN_CI, require_service

pytestmark = [pytest.mark.integration, pytest.mark.django_db]


def test_ci_runs_the_suite_on_postgresql_and_redis():
    if not IN_CI:
        pytest.skip("only CI promises PostgreSQL and Redis (DATABASE_URL, CELERY_BROKER_URL)")
    assert connection.vendor == "postgresql"
    assert settings.CELERY_BROKER_URL.startswith("redis://")


def test_the_health_endpoint_reports_database_and_broker(client):
    response = client.get("/health/")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": "ok", "broker": "ok"}


def test_the_health_endpoint_says_503_when_the_broker_is_down(client, settings):
    settings.CELERY_BROKER_URL = "redis://127.0.0.1:9/0"  # nothing listens on port 9
    response = client.get("/health/")
    assert response.status_code == 503
    assert response.json()["broker"] == "failed"


def test_a_real_worker_answers_a_task_through_the_broker(celery_worker_process, capsys):
    call_command("check_services", "--timeout", "30")
    out = capsys.readouterr().out
    assert "ok     worker" in out
    assert "answered 'pong'" in out
    assert celery_worker_process.poll() is None


def test_check_services_fails_and_names_the_missing_worker(monkeypatch, capsys):
    # A queue nobody consumes stands in for a dead worker.
    monkeypatch.setattr(health, "PING_QUEUE", "nobody-listens-here")
    with pytest.raises(CommandError, match="not healthy: worker"):
        call_command("check_services", "--timeout", "1")
    assert "FAILED worker" in capsys.readouterr().out


def test_the_pacs_answers_dicomweb_queries_with_our_credentials(settings):
    require_service(
        bool(os.environ.get("PACS_DICOMWEB_URL")),
        "a PACS (Orthanc with DICOMweb)",
        'run `eval "$(scripts/services.sh orthanc-start)"` (apt-get install orthanc orthanc-dicomweb)',
    )
    check = health.check_pacs()
    assert check.ok, check.detail
    settings.PACS_PASSWORD = "wrong-password"
    refused = health.check_pacs()
    assert not refused.ok
    assert "401" in refused.detail
