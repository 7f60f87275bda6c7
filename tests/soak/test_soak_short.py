"""The soak in short (about 30 s, 10 users; `make soak` runs the full one): the whole stack
under mixed load while inference runs answers every request and loses nothing."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from urllib.parse import urlsplit

import pytest
import redis

from tests.conftest import ROOT, require_service

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _broker_answers(url: str) -> bool:
    try:
        return bool(redis.Redis.from_url(url, socket_timeout=2).ping())
    except (redis.RedisError, ValueError):
        return False


def _another_redis_database(url: str) -> str:
    """The same Redis server, the database numbered one below (15 -> 14)."""
    parts = urlsplit(url)
    number = int(parts.path.lstrip("/") or 0)
    return parts._replace(path=f"/{(number - 1) % 16}").geturl()


def test_it_answers_every_request_and_loses_nothing_under_mixed_load() -> None:
    database = urlsplit(os.environ.get("DATABASE_URL", ""))
    if database.scheme not in {"postgres", "postgresql", "pgsql"}:
        pytest.skip("the soak needs PostgreSQL in DATABASE_URL (SQLite serialises every write)")
    broker = os.environ.get("CELERY_BROKER_URL", "")
    require_service(broker.startswith("redis") and _broker_answers(broker), "Redis", "set CELERY_BROKER_URL")
    env = {
        **os.environ,
        "SOAK_DATABASE": f"{database.path.lstrip('/') or 'overread'}_soak_ci",
        # A Redis database of its own: the suite's worker must not take the soak's tasks (nor
        # the soak's clearing of its queues touch the suite's).
        "CELERY_BROKER_URL": _another_redis_database(broker),
        # The simulated users fetch no static files: skip collecting (minutes) for the pages' tags.
        "BENCH_PLAIN_STATIC": "1",
    }
    # Its own process group, so a soak that overruns is stopped with its gunicorn and worker.
    soak = subprocess.Popen(
        [sys.executable, "-m", "bench.soak", "--users", "10", "--minutes", "0.5"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        stdout, stderr = soak.communicate(timeout=480)
    except subprocess.TimeoutExpired:
        os.killpg(soak.pid, signal.SIGKILL)
        stdout, stderr = soak.communicate()
        pytest.fail(f"the soak overran 480 s:\n{stdout}\n{stderr[-3000:]}")
    run = subprocess.CompletedProcess(soak.args, soak.returncode, stdout, stderr)
    print(run.stdout, run.stderr[-3000:])  # the figures, memory included, for the CI log
    assert "PASS zero errors" in run.stdout
    assert "PASS counts match" in run.stdout
    decisions = re.search(r"decisions: ([\d,]+) posted", run.stdout)
    uploads = re.search(r"uploads: (\d+) series", run.stdout)
    frames = re.search(r"viewer frame \(WADO-RS\)\s+([\d,]+)", run.stdout)
    assert decisions, run.stdout
    assert uploads, run.stdout
    assert frames, run.stdout
    # The load really mixed every kind of request, and inference ran on what was uploaded.
    assert int(decisions.group(1).replace(",", "")) > 0
    assert int(uploads.group(1)) > 0
    assert int(frames.group(1).replace(",", "")) > 0
    assert re.search(r"inference: (\d+) series uploaded, \1 jobs queued, \1 succeeded", run.stdout)
