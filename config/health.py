"""Liveness of the pieces Overread needs: database, broker, worker and PACS.

`/health/` answers load balancers (database and broker only, quick and
unauthenticated, no details beyond ok/failed); `manage.py check_services` is
for people and also round-trips a task through a worker and queries the PACS.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from django.conf import settings
from django.contrib.auth.decorators import login_not_required
from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.views.decorators.http import require_GET

from config.celery import app as celery_app


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str
    seconds: float


def _timed(name: str, probe: Callable[[], str]) -> Check:
    started = time.perf_counter()
    try:
        detail, ok = probe(), True
    except Exception as exc:  # a health check reports every failure, whatever its kind
        detail, ok = f"{type(exc).__name__}: {exc}", False
    return Check(name, ok, detail, time.perf_counter() - started)


def check_database() -> Check:
    def probe() -> str:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        database = settings.DATABASES["default"]
        return f"{connection.vendor} {database.get('HOST') or database['NAME']}"

    return _timed("database", probe)


def check_broker() -> Check:
    def probe() -> str:
        with celery_app.connection_for_write(url=settings.CELERY_BROKER_URL) as conn:
            conn.ensure_connection(max_retries=1, timeout=3)
            return conn.as_uri()

    return _timed("broker", probe)


# The queue the worker probe goes through: the one every worker consumes.
PING_QUEUE = "default"


def check_worker(timeout: float = 10.0) -> Check:
    def probe() -> str:
        reply = ping.apply_async(queue=PING_QUEUE).get(timeout=timeout)
        return f"answered {reply!r}"

    return _timed("worker", probe)


def check_pacs(timeout: float = 5.0) -> Check:
    def probe() -> str:
        from viewer.pacs import pacs_client

        client = pacs_client(timeout=timeout)
        studies = client.search_for_studies(limit=1)
        return f"{settings.PACS_DICOMWEB_URL} answered ({len(studies)} study in a 1-study probe)"

    return _timed("pacs", probe)


@celery_app.task(name="overread.ping", ignore_result=False)
def ping() -> str:
    """Answers 'pong': proves a worker consumes the default queue."""
    return "pong"


@login_not_required
@require_GET
def health(request: HttpRequest) -> JsonResponse:
    checks = [check_database(), check_broker()]
    healthy = all(c.ok for c in checks)
    body = {"status": "ok" if healthy else "failed", **{c.name: "ok" if c.ok else "failed" for c in checks}}
    return JsonResponse(body, status=200 if healthy else 503)
