"""Fixtures for the whole suite: the cast of users, real services and the browser.

Tests that need an external service call `require_service`: locally a missing
service skips the test with a message saying what to install; with CI=true it
fails, so CI can never pass by skipping.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.core.signals import request_finished, request_started

from reviews.roles import Role
from tests.factories import UserFactory, department_member

ROOT = Path(__file__).resolve().parent.parent
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}
CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")


def require_service(available: bool, what: str, hint: str) -> None:
    """Skips (locally) or fails (CI) a test whose external service is missing."""
    if available:
        return
    message = f"{what} is not available: {hint}"
    if IN_CI:
        pytest.fail(f"CI requires {message}")
    pytest.skip(message)


def require_postgresql() -> None:
    """For a test of what PostgreSQL itself enforces (append-only triggers, SQL functions)."""
    from django.db import connection

    require_service(
        connection.vendor == "postgresql",
        "PostgreSQL",
        "set DATABASE_URL=postgres://postgres@127.0.0.1:5432/overread",
    )


# --- The cast: one named user per role ---------------------------------------------
# Readers see the studies of their reading projects (reviews.selectors.study_scope). The cast
# belongs to a department-wide project that holds every study, so suites about something else
# see every study; tests/reviews/conftest.py gives the cast without it.
@pytest.fixture
def rita(db: Any) -> Any:
    """Rita, a radiologist."""
    return department_member(UserFactory(username="rita", role=Role.RADIOLOGIST), Role.RADIOLOGIST)


@pytest.fixture
def anna(db: Any) -> Any:
    """Anna, an annotator."""
    return department_member(UserFactory(username="anna", role=Role.ANNOTATOR), Role.ANNOTATOR)


@pytest.fixture
def adi(db: Any) -> Any:
    """Adi, an adjudicator."""
    return department_member(UserFactory(username="adi", role=Role.ADJUDICATOR), Role.ADJUDICATOR)


@pytest.fixture
def ada(db: Any) -> Any:
    """Ada, an admin."""
    return UserFactory(username="ada", role=Role.ADMIN)


# --- The browser ---------------------------------------------------------------------
@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """The system Chromium driven by Playwright (no browser is ever downloaded)."""
    require_service(
        shutil.which(CHROMIUM) is not None or os.path.exists(CHROMIUM),
        f"Chromium ({CHROMIUM})",
        "apt-get install chromium, or set CHROMIUM_PATH",
    )
    from playwright.sync_api import sync_playwright

    # Playwright's sync API runs an event loop in this thread; Django's ORM
    # refuses to run beside one unless told the tests know what they are doing.
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=["--use-angle=swiftshader", "--enable-unsafe-swiftshader", "--no-sandbox"],
        )
        yield browser
        browser.close()
    del os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"]


@pytest.fixture
def browser_errors() -> list[str]:
    """Console errors and uncaught exceptions of the page (CSP violations show up here)."""
    return []


@pytest.fixture
def page(browser: Any, live_server: Any, browser_errors: list[str]) -> Iterator[Any]:
    context = browser.new_context(base_url=live_server.url, viewport={"width": 1280, "height": 800})
    page = context.new_page()
    page.on("console", lambda message: message.type == "error" and browser_errors.append(message.text))
    page.on("pageerror", lambda error: browser_errors.append(str(error)))
    yield page
    # A reading panel sends its last active time as the page goes: let it land now, not while
    # the next test empties the database.
    with contextlib.suppress(Exception):
        page.evaluate("() => window.overread?.viewer?.leave?.()")
    context.close()


class _RequestsInFlight:
    """Counts the requests Django is answering, from `request_started` to `request_finished`.

    `request_finished` is sent when the server closes the response, after a
    streamed body is written or the client has gone.
    """

    def __init__(self) -> None:
        self.count = 0
        self.changed = threading.Condition()
        request_started.connect(self.started, dispatch_uid="tests.requests_in_flight", weak=False)
        request_finished.connect(self.finished, dispatch_uid="tests.requests_in_flight", weak=False)

    def started(self, **_: Any) -> None:
        with self.changed:
            self.count += 1

    def finished(self, **_: Any) -> None:
        with self.changed:
            self.count -= 1
            self.changed.notify_all()

    def wait_until_none(self, timeout: float) -> None:
        with self.changed:
            answered = self.changed.wait_for(lambda: self.count <= 0, timeout)
        assert answered, f"the live server still answers {self.count} request(s) after {timeout:.0f} s"


@pytest.fixture(scope="session")
def _requests_in_flight() -> _RequestsInFlight:
    return _RequestsInFlight()


@pytest.fixture(autouse=True)
def _live_requests_answered(request: pytest.FixtureRequest) -> Iterator[None]:
    """After a live-server test, its requests are answered before its database is emptied.

    The viewer fetches frames in the background; a request still reading the
    database while the next test empties it holds a lock the emptying needs,
    and PostgreSQL breaks the tie by failing the TRUNCATE (a deadlock).
    """
    if "live_server" not in request.fixturenames:
        yield
        return
    in_flight = request.getfixturevalue("_requests_in_flight")
    request.getfixturevalue("transactional_db")  # set up first, so emptied after this waits
    yield
    in_flight.wait_until_none(timeout=30.0)


# --- A real Celery worker --------------------------------------------------------------
@pytest.fixture
def celery_worker_process(transactional_db: Any) -> Iterator[subprocess.Popen[bytes]]:
    """A real `celery worker` process on the configured broker, using the test database.

    Tests that need tasks to run as in production (in another process, after
    commit, with their own connection) use this, never eager mode.

    The worker lives for one test. It starts on queues emptied of what earlier
    tests sent, and is stopped, its tasks finished or killed, before the test's
    database is emptied: a worker kept for the session ran the tasks other tests
    had sent (a series settling seconds after its ingest) while those tests
    emptied the database, and PostgreSQL failed the TRUNCATE as a deadlock.
    """
    from config.celery import app

    app.control.purge()
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings", "OVERREAD_TEST_WORKER": "1"}
    env.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
    from django.conf import settings

    log = open(Path(settings.VAR_DIR) / "worker.log", "ab")  # noqa: SIM115 (closed at teardown)
    worker = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "--app",
            "config",
            "worker",
            "--queues",
            "default,inference",
            "--concurrency",
            "1",
            "--pool",
            "prefork",
            "--loglevel",
            "INFO",
            "--without-gossip",
            "--without-mingle",
        ],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its pool processes can be stopped with it, as a group
    )
    yield worker
    worker.terminate()  # a warm shutdown: the task in hand is finished
    try:
        worker.wait(timeout=20)
    except subprocess.TimeoutExpired:
        worker.kill()
        worker.wait()
    with contextlib.suppress(ProcessLookupError):
        os.killpg(worker.pid, signal.SIGKILL)  # a pool process left behind
    log.close()


@pytest.fixture(scope="session", autouse=True)
def _remove_the_runs_var_dir() -> Iterator[None]:
    """Deletes this run's var/ folder (tests/settings.py) when the run ends."""
    yield
    from django.conf import settings

    run_dir = Path(settings.VAR_DIR)
    if run_dir.name.startswith("run-") and run_dir.parent.name == "test":
        shutil.rmtree(run_dir, ignore_errors=True)
