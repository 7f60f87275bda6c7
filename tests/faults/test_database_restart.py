"""The database drops every connection while the server is answering (as a PostgreSQL restart
does): requests caught in it are answered 503 with Retry-After and no traceback, none hangs, and
the next requests succeed on new connections."""

from __future__ import annotations

import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from threading import Event
from typing import Any

import psycopg
import pytest
import requests
from django.conf import settings
from django.db import connection
from django.test import Client

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

RESETS = 5
WORKERS = 6


def _terminate_every_connection() -> int:
    """Ends every other session of the test database from a superuser connection of its own."""
    database = settings.DATABASES["default"]
    with psycopg.connect(
        host=database["HOST"] or None,
        port=database["PORT"] or None,
        user=database["USER"] or None,
        password=database["PASSWORD"] or None,
        dbname="postgres",
        autocommit=True,
    ) as admin:
        rows = admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = %s AND pid <> pg_backend_pid()",
            [connection.settings_dict["NAME"]],
        ).fetchall()
    return sum(1 for (ended,) in rows if ended)


def test_requests_fail_cleanly_while_the_database_drops_connections_and_then_recover(
    live_server: Any, rita: Any
) -> None:
    if connection.vendor != "postgresql":
        pytest.skip("terminating server sessions needs PostgreSQL; SQLite has no connections to drop")
    client = Client()
    client.force_login(rita)
    session = client.cookies[settings.SESSION_COOKIE_NAME].value
    connection.close()  # this thread's connection is ended with the others; it reconnects after

    def fetch(path: str) -> tuple[int, str]:
        response = requests.get(
            live_server.url + path, cookies={settings.SESSION_COOKIE_NAME: session}, timeout=15
        )
        if response.status_code == 503 and path != "/health/":  # /health/ says which check failed
            assert response.headers["Retry-After"] == "5"
        return response.status_code, response.text

    stop = Event()

    def keep_asking(path: str) -> list[tuple[int, str]]:
        answers = []
        while not stop.is_set():
            answers.append(fetch(path))  # a hung request raises here after 15 s and fails the test
        return answers

    paths = ["/", "/health/"] * (WORKERS // 2)
    with ThreadPoolExecutor(WORKERS) as pool:
        load = [pool.submit(keep_asking, path) for path in paths]
        ended = 0
        for _ in range(RESETS):
            time.sleep(0.3)
            ended += _terminate_every_connection()
        time.sleep(0.3)
        stop.set()
        answers = [answer for future in load for answer in future.result()]
    connection.close()

    statuses = [status for status, _ in answers]
    failed = [(status, body) for status, body in answers if status != 200]
    assert failed, "no request met a dropped connection: the test proved nothing"
    print(f"{ended} sessions ended; {len(answers)} requests, by status {dict(Counter(statuses))}")
    assert ended >= RESETS, "no server session was ended: the load never reached the database"
    for status, body in failed:
        assert status == 503, (status, body[:300])  # the outage is said to be one, and temporary
        for leak in ("Traceback", "psycopg", "OperationalError"):
            assert leak not in body
    # Recovered: every request after the resets succeeds (each thread gets a new connection).
    with ThreadPoolExecutor(WORKERS) as pool:
        after = list(pool.map(fetch, paths * 3))
    assert [status for status, _ in after] == [200] * len(after), [body[:200] for _, body in after]
