"""Locust users for the review benchmark (run by bench/bench_review.py, not by hand).

Each simulated reader takes one seat from BENCH_REVIEW_SEATS (its token, session and
reading) and loops: worklist page 1 over the API, the worklist page `/`, a decision on one of
its reading's AI findings (accepted or overridden, in turn, carrying the version the last
answer gave), and `/health/` as the anchor. Every request's time and outcome is kept and
written to BENCH_REVIEW_RESULTS as JSON when locust quits; a wrong answer (a status other
than the expected one, a page without its rows, a login page) counts as an error.
"""

from __future__ import annotations

import gc
import itertools
import json
import os
import random
from collections import Counter, defaultdict
from typing import Any

import gevent
from locust import between, constant, events, task
from locust.contrib.fasthttp import FastHttpUser

from bench.decisions import decision_body

SEATS: list[dict[str, Any]] = json.loads(open(os.environ["BENCH_REVIEW_SEATS"]).read())  # noqa: SIM115
PAGE_ROWS = int(os.environ.get("BENCH_REVIEW_PAGE_ROWS", "50"))
_WAIT = [float(v) for v in os.environ.get("BENCH_REVIEW_WAIT", "0.5-1.5").split("-")]
# Without keep-alive each request comes on a new connection, as through the reverse proxy in
# front of gunicorn (docs/operations.md), so any free worker takes it.
_CONNECTION = {} if os.environ.get("BENCH_REVIEW_KEEPALIVE") == "1" else {"Connection": "close"}
_seat_numbers = itertools.count()
# The client's own garbage collections would pause every request in flight and count as the
# server's time: what the import built is left out of them (as in the web processes).
gc.collect()
gc.freeze()
_times: dict[str, list[float]] = defaultdict(list)
_errors: dict[str, Counter[str]] = defaultdict(Counter)

WORKLIST_API = "worklist API (GET /api/v1/worklist/)"
WORKLIST_PAGE = "worklist page (GET /)"
DECISION = "decision (POST /api/v1/readings/{id}/decisions/)"
ANCHOR = "anchor (GET /health/)"


@events.request.add_listener
def _on_request(name: str, response_time: float, exception: Exception | None, **_: Any) -> None:
    _times[name].append(response_time)
    if exception is not None:
        _errors[name][str(exception)[:120]] += 1


@events.user_error.add_listener
def _on_user_error(user_instance: Any, exception: Exception, **_: Any) -> None:
    _errors["user code"][f"{type(exception).__name__}: {exception}"[:120]] += 1


@events.quitting.add_listener
def _write_results(**_: Any) -> None:
    with open(os.environ["BENCH_REVIEW_RESULTS"], "w") as out:
        json.dump({"times_ms": _times, "errors": _errors}, out)


class Reader(FastHttpUser):
    wait_time = constant(_WAIT[0]) if len(_WAIT) == 1 else between(_WAIT[0], _WAIT[1])

    def on_start(self) -> None:
        seat = SEATS[next(_seat_numbers) % len(SEATS)]
        self.token_header = {"Authorization": f"Token {seat['token']}", **_CONNECTION}
        self.cookie_header = {"Cookie": f"sessionid={seat['session']}", **_CONNECTION}
        self.reading = seat["reading"]
        self.version = seat["version"]
        self.turn = 0
        # Readers do not all click at the same instant: each starts somewhere in its first
        # round (four pauses), not all fifty with the worklist at once.
        gevent.sleep(random.uniform(0, 4 * sum(_WAIT) / len(_WAIT)))

    @task
    def read_and_decide(self) -> None:
        self._worklist_api()
        self.wait()
        self._worklist_page()
        self.wait()
        self._decide()
        self.wait()
        with self.client.get("/health/", name=ANCHOR, headers=_CONNECTION, catch_response=True) as response:
            if response.status_code != 200:
                response.failure(f"status {response.status_code}")

    def _worklist_api(self) -> None:
        with self.client.get(
            "/api/v1/worklist/", name=WORKLIST_API, headers=self.token_header, catch_response=True
        ) as response:
            if response.status_code != 200:
                response.failure(f"status {response.status_code}")
            elif len(response.json()["results"]) != PAGE_ROWS:
                response.failure(f"page 1 does not hold {PAGE_ROWS} rows")

    def _worklist_page(self) -> None:
        with self.client.get(
            "/", name=WORKLIST_PAGE, headers=self.cookie_header, allow_redirects=False, catch_response=True
        ) as response:
            body = response.text or ""
            if response.status_code != 200:
                response.failure(f"status {response.status_code}")
            elif body.count("<tr data-href=") != PAGE_ROWS:
                response.failure(f"the page does not list {PAGE_ROWS} rows")

    def _decide(self) -> None:
        self.turn += 1
        body = decision_body(turn=self.turn, version=self.version)
        with self.client.post(
            f"/api/v1/readings/{self.reading}/decisions/",
            name=DECISION,
            json=body,
            headers=self.token_header,
            catch_response=True,
        ) as response:
            answer = response.json() if response.text else {}
            if response.status_code == 201:
                self.version = answer["version"]
            else:
                # Carry on from the current version (a 409 tells it) so one miss is one error.
                self.version = answer.get("version", self.version)
                response.failure(f"status {response.status_code}: {answer.get('detail', '')[:80]}")
