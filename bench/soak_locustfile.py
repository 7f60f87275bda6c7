"""Locust users for the soak (run by bench/soak.py, not by hand).

Each simulated user takes one seat from SOAK_SEATS (a reader's token, session and own reading,
so decisions never race) and, between pauses of SOAK_WAIT seconds, picks by weight: the
worklist over the API (3), the worklist page `/` (2), a frame of a stored instance over
WADO-RS (4), a decision on its reading (2), or an upload (1): a new synthetic 8-slice CT series
sent in one STOW-RS request. Uploads are paced to one series every SOAK_UPLOAD_INTERVAL seconds
across all users (a turn that comes sooner is a frame load instead), so one CPU inference worker
keeps up and every upload's job can finish. Times, failures and what was stored are written to
SOAK_RESULTS as JSON when locust quits; any answer but the expected one is a failure.
"""

from __future__ import annotations

import itertools
import json
import os
import random
import time
import uuid
from collections import Counter, defaultdict
from typing import Any

from locust import between, events, task
from locust.contrib.fasthttp import FastHttpUser

from bench.decisions import decision_body
from fixtures.synthetic import make_ct_study
from inference.derived import to_part10_bytes

SEATS: list[dict[str, Any]] = json.loads(open(os.environ["SOAK_SEATS"]).read())  # noqa: SIM115
FRAMES: list[str] = json.loads(open(os.environ["SOAK_FRAMES"]).read())  # noqa: SIM115
UPLOAD_PREFIX = os.environ["SOAK_UPLOAD_PREFIX"]  # UID root of this run's uploaded studies
UPLOAD_INTERVAL = float(os.environ.get("SOAK_UPLOAD_INTERVAL", "4"))
UPLOAD_SLICES = 8
_WAIT = [float(v) for v in os.environ.get("SOAK_WAIT", "0.5-1.5").split("-")]

WORKLIST_API = "worklist API"
WORKLIST_PAGE = "worklist page"
FRAME = "viewer frame (WADO-RS)"
DECISION = "decision post"
UPLOAD = "upload (STOW-RS, 8 slices)"
FRAME_ACCEPT = 'multipart/related; type="application/octet-stream"; transfer-syntax=*'

_seat_numbers = itertools.count()
_upload_numbers = itertools.count(1)
_last_upload = [0.0]
_times: dict[str, list[float]] = defaultdict(list)
_errors: dict[str, Counter[str]] = defaultdict(Counter)
_stored = {"decisions": 0, "instances": 0, "series": 0}


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
    with open(os.environ["SOAK_RESULTS"], "w") as out:
        json.dump({"times_ms": _times, "errors": _errors, "stored": _stored}, out)


def _stow_body(number: int) -> tuple[bytes, str]:
    """One new series of a new study (UIDs under this run's prefix) as a multipart/related body."""
    study = make_ct_study(
        seed=number,
        slices=UPLOAD_SLICES,
        rows=64,
        columns=64,
        lesions=0,
        study_uid=f"{UPLOAD_PREFIX}.{number}",
        patient_id=f"SOAK{number:06d}",
    )
    boundary = uuid.uuid4().hex
    parts = [
        f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode() + to_part10_bytes(ds) + b"\r\n"
        for ds in study.datasets
    ]
    return b"".join(parts) + f"--{boundary}--\r\n".encode(), boundary


class SoakUser(FastHttpUser):
    wait_time = between(_WAIT[0], _WAIT[-1])

    def on_start(self) -> None:
        seat = SEATS[next(_seat_numbers) % len(SEATS)]
        self.token = {"Authorization": f"Token {seat['token']}"}
        self.cookie = {"Cookie": f"sessionid={seat['session']}"}
        self.reading = seat["reading"]
        self.version = seat["version"]
        self.turn = 0

    @task(3)
    def worklist_api(self) -> None:
        with self.client.get(
            "/api/v1/worklist/", name=WORKLIST_API, headers=self.token, catch_response=True
        ) as response:
            if response.status_code != 200:
                response.failure(f"status {response.status_code}")
            elif not response.json()["results"]:
                response.failure("an empty worklist")

    @task(2)
    def worklist_page(self) -> None:
        with self.client.get(
            "/", name=WORKLIST_PAGE, headers=self.cookie, allow_redirects=False, catch_response=True
        ) as response:
            if response.status_code != 200:
                response.failure(f"status {response.status_code}")
            elif "<tr data-href=" not in (response.text or ""):
                response.failure("the page lists no studies")

    @task(4)
    def frame(self) -> None:
        headers = {**self.token, "Accept": FRAME_ACCEPT}
        url = random.choice(FRAMES)
        with self.client.get(url, name=FRAME, headers=headers, catch_response=True) as response:
            if response.status_code != 200:
                response.failure(f"status {response.status_code}")
            elif len(response.content or b"") < 64 * 64 * 2:
                response.failure(f"a frame of {len(response.content or b'')} bytes")

    @task(2)
    def decide(self) -> None:
        self.turn += 1
        body = decision_body(turn=self.turn, version=self.version)
        with self.client.post(
            f"/api/v1/readings/{self.reading}/decisions/",
            name=DECISION,
            json=body,
            headers=self.token,
            catch_response=True,
        ) as response:
            answer = response.json() if response.text else {}
            if response.status_code == 201:
                self.version = answer["version"]
                _stored["decisions"] += 1
            else:
                self.version = answer.get("version", self.version)
                response.failure(f"status {response.status_code}: {str(answer.get('detail', ''))[:80]}")

    @task(1)
    def upload(self) -> None:
        now = time.monotonic()
        if now - _last_upload[0] < UPLOAD_INTERVAL:
            self.frame()
            return
        _last_upload[0] = now
        body, boundary = _stow_body(next(_upload_numbers))
        headers = {
            **self.token,
            "Content-Type": f'multipart/related; type="application/dicom"; boundary={boundary}',
            "Accept": "application/dicom+json",
        }
        with self.client.post(
            "/dicomweb/studies",
            name=UPLOAD,
            data=body,  # type: ignore[arg-type]  # bytes go out as they are; the stub says str
            headers=headers,
            catch_response=True,
        ) as response:
            if response.status_code != 200:
                response.failure(f"status {response.status_code}: {(response.text or '')[:80]}")
                return
            stored = len(response.json().get("00081199", {}).get("Value", []))
            if stored != UPLOAD_SLICES:
                response.failure(f"{stored} of {UPLOAD_SLICES} instances stored")
                return
            _stored["instances"] += stored
            _stored["series"] += 1
