"""Second reading under load: 50 readers at once on a worklist of 100,000 studies.

`python -m bench review` (or `make bench BENCH_ARGS=review`). Needs PostgreSQL: DATABASE_URL
names the server, and the benchmark works in its own database on it (BENCH_REVIEW_DATABASE,
default overread_bench), seeded once with bulk inserts (bench/review_seed.py) and reused by
later runs. gunicorn serves the app on loopback as the Procfile starts it (its workers and
threads); locust (one process, FastHttpUser) runs BENCH_REVIEW_USERS readers (50) for
BENCH_REVIEW_SECONDS (60), each looping: worklist page 1 over the API, the worklist page `/`,
a decision on its own reading (so no two readers race for one version), `/health/`, with
BENCH_REVIEW_WAIT seconds between requests ("0.5-1.5"; "0" for no pause at all). Each request
comes on a new connection, as through the reverse proxy in front of gunicorn
(BENCH_REVIEW_KEEPALIVE=1 keeps them open: gunicorn then ties each reader to one worker);
BENCH_REVIEW_WORKERS and BENCH_REVIEW_THREADS override the Procfile's.

Before measuring, every reader's requests run three times, 2 x workers at a time, so that the
figures are a running server's: each worker's database connection past the first runs of its
statements, which PostgreSQL plans afresh (docs/benchmarks.md). Prints p50/p95/p99 and errors
per request, requests/s, the median of each request alone (one client, before the load), the
p99 of the workers' own time on each request (gunicorn's access log: without the client's and
the network's share), each goal with PASS or MISS, and the p99s as ratios to the p99 of
`/health/` (a database round trip through the same middleware, in the same run) for comparing
machines. Then counts the decisions in the database against the successful posts, and the CPU
each side used. Goals: p99 <= 50 ms for a decision, <= 100 ms for a worklist page; no errors.
"""

from __future__ import annotations

import json
import math
import os
import re
import resource
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from statistics import median
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psutil
import requests

from bench.decisions import decision_body

ROOT = Path(__file__).resolve().parent.parent
STUDIES = int(os.environ.get("BENCH_REVIEW_STUDIES", "100000"))
USERS = int(os.environ.get("BENCH_REVIEW_USERS", "50"))
SECONDS = int(os.environ.get("BENCH_REVIEW_SECONDS", "60"))
WAIT = os.environ.get("BENCH_REVIEW_WAIT", "0.5-1.5")
DATABASE = os.environ.get("BENCH_REVIEW_DATABASE", "overread_bench")
KEEPALIVE = os.environ.get("BENCH_REVIEW_KEEPALIVE", "") == "1"
UNLOADED_ROUNDS = 20
WARM_ROUNDS = 3

WORKLIST_API = "worklist API (GET /api/v1/worklist/)"
WORKLIST_PAGE = "worklist page (GET /)"
DECISION = "decision (POST /api/v1/readings/{id}/decisions/)"
ANCHOR = "anchor (GET /health/)"
GOALS_MS = {DECISION: 50.0, WORKLIST_API: 100.0, WORKLIST_PAGE: 100.0}


def _bench_database_url() -> str | None:
    """DATABASE_URL with the benchmark's own database name; None when it is not PostgreSQL."""
    url = os.environ.get("DATABASE_URL", "")
    parts = urlsplit(url)
    if parts.scheme not in {"postgres", "postgresql", "pgsql"}:
        return None
    return urlunsplit(parts._replace(path=f"/{DATABASE}"))


def _create_database(url: str, *, fresh: bool) -> None:
    """Creates the benchmark's database (dropping it first when `fresh`)."""
    import psycopg

    maintenance = urlunsplit(urlsplit(url)._replace(scheme="postgresql", path="/postgres"))
    with psycopg.connect(maintenance, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [DATABASE]).fetchone()
        if exists and fresh:
            conn.execute(f'DROP DATABASE "{DATABASE}" WITH (FORCE)')
        if fresh or not exists:
            conn.execute(f'CREATE DATABASE "{DATABASE}"')


def _prepare() -> str:
    """Migrates and seeds the database unless it already holds the benchmark's data."""
    from django.core.management import call_command
    from django.db import connections

    from bench import review_seed

    url = os.environ["DATABASE_URL"]
    _create_database(url, fresh=False)
    call_command("migrate", verbosity=0)
    _collect_static()
    if review_seed.seeded(studies=STUDIES, readers=USERS):
        return "reused"
    if not review_seed.only_benchmark_data():
        raise RuntimeError(
            f"database {DATABASE} holds data this benchmark did not write: it is dropped and seeded "
            "afresh, so point BENCH_REVIEW_DATABASE at a database of its own"
        )
    connections.close_all()
    _create_database(url, fresh=True)
    call_command("migrate", verbosity=0)
    started = time.perf_counter()
    review_seed.seed(studies=STUDIES, readers=USERS)
    with connections["default"].cursor() as cursor:
        cursor.execute("VACUUM ANALYZE")  # statistics, and the visibility map index-only scans need
    return f"seeded in {time.perf_counter() - started:.0f} s (bulk inserts)"


def _collect_static() -> None:
    """collectstatic (minutes: it compresses every file) only when the manifest the page's
    {% static %} tags need is missing or older than a source file. It is not a figure, but it
    loads the machine: the load average printed before the run shows it."""
    from django.conf import settings
    from django.core.management import call_command

    manifest = Path(settings.STATIC_ROOT) / "staticfiles.json"
    if manifest.exists():
        sources = (p for d in settings.STATICFILES_DIRS for p in Path(d).rglob("*") if p.is_file())
        if max((p.stat().st_mtime for p in sources), default=0) <= manifest.stat().st_mtime:
            return
    started = time.perf_counter()
    call_command("collectstatic", interactive=False, verbosity=0)
    print(f"collectstatic (a static file changed): {time.perf_counter() - started:.0f} s")


def _gunicorn_flags() -> tuple[int, int, str]:
    """The web process's workers and threads: the Procfile's, unless BENCH_REVIEW_WORKERS or
    BENCH_REVIEW_THREADS say otherwise; and where they came from."""
    web = next(line for line in (ROOT / "Procfile").read_text().splitlines() if line.startswith("web:"))
    # "--workers 4" or "--workers ${WEB_CONCURRENCY:-4}": the default the Procfile gives
    workers = re.search(r"--workers[ =](?:\$\{\w+:-)?(\d+)", web)
    threads = re.search(r"--threads[ =](?:\$\{\w+:-)?(\d+)", web)
    given = (os.environ.get("BENCH_REVIEW_WORKERS"), os.environ.get("BENCH_REVIEW_THREADS"))
    return (
        int(given[0] or (workers.group(1) if workers else 1)),
        int(given[1] or (threads.group(1) if threads else 1)),
        "BENCH_REVIEW_WORKERS/THREADS" if any(given) else "the Procfile's",
    )


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _start_gunicorn(port: int, workers: int, threads: int, log: Path) -> subprocess.Popen[bytes]:
    command = [
        sys.executable, "-m", "gunicorn", "config.wsgi", "--bind", f"127.0.0.1:{port}",
        "--workers", str(workers), "--threads", str(threads), "--log-level", "warning",
        "--access-logfile", str(_access_log(log)), "--access-logformat", ACCESS_FORMAT,
    ]  # fmt: skip
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "bench.settings"}
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline:
            try:
                if requests.get(f"http://127.0.0.1:{port}/health/", timeout=10).ok:
                    return process
            except (requests.ConnectionError, requests.Timeout):
                pass
            time.sleep(0.2)
        raise RuntimeError(f"gunicorn did not answer /health/ with 200 within 60 s; see {log}")
    except BaseException:
        process.terminate()
        process.wait(timeout=30)
        raise


Clients = tuple[requests.Session, requests.Session]


def _clients(seat: Any) -> Clients:
    """A reader's API client (token) and browser (signed-in session)."""
    api = requests.Session()
    api.headers["Authorization"] = f"Token {seat.token}"
    page = requests.Session()
    page.cookies.set("sessionid", seat.session)
    return api, page


def _request(name: str, base: str, clients: Clients, seat: Any, body: Any) -> Any:
    """One of the four requests a simulated reader makes; `body` is the decision's."""
    api, page = clients
    if name == WORKLIST_API:
        response = api.get(f"{base}/api/v1/worklist/", timeout=30)
    elif name == WORKLIST_PAGE:
        response = page.get(f"{base}/", timeout=30, allow_redirects=False)
    elif name == DECISION:
        response = api.post(f"{base}/api/v1/readings/{seat.reading}/decisions/", json=body, timeout=30)
    else:
        response = api.get(f"{base}/health/", timeout=30)
    if response.status_code not in (200, 201):
        raise RuntimeError(f"{name}: status {response.status_code}: {response.text[:200]}")
    return response


REQUESTS = (WORKLIST_API, WORKLIST_PAGE, DECISION, ANCHOR)


def _reader_rounds(base: str, seat: Any, rounds: int, timings: dict[str, list[float]] | None = None) -> int:
    """`rounds` of a reader's four requests, one at a time; their times go into `timings`."""
    clients, version = _clients(seat), seat.version
    for n in range(rounds):
        for name in REQUESTS:
            decision = decision_body(turn=n, version=version)
            started = time.perf_counter()
            response = _request(name, base, clients, seat, decision)
            if timings is not None:
                timings[name].append((time.perf_counter() - started) * 1000)
            if name == DECISION:
                version = response.json()["version"]
    return rounds * len(REQUESTS)


def _warm(base: str, seats: list[Any], workers: int) -> str:
    """Every reader's requests a few times, several at once, so that each gunicorn worker serves
    each kind of request past its database connection's first runs: PostgreSQL plans a
    prepared statement afresh on each of its first five runs on a connection (the steady state
    is what a server up for hours serves; docs/benchmarks.md has the first runs' cost)."""
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=2 * workers) as pool:
        done = sum(pool.map(lambda seat: _reader_rounds(base, seat, WARM_ROUNDS), seats))
    return f"warm-up: {done:,} requests, {2 * workers} at a time, in {time.perf_counter() - started:.0f} s"


def _unloaded(base: str, seat: Any) -> dict[str, float]:
    """Median time of each request alone (one client), after `_warm`."""
    timings: dict[str, list[float]] = {name: [] for name in REQUESTS}
    _reader_rounds(base, seat, UNLOADED_ROUNDS, timings)
    return {name: median(values) for name, values in timings.items()}


def _worklist_queries(seat: Any) -> int:
    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from reviews.selectors import WorklistFilter, worklist_page

    user = get_user_model().objects.get(username=seat.username)
    with CaptureQueriesContext(connection) as queries:
        worklist_page(user=user, worklist_filter=WorklistFilter())
    return len(queries)


def _counts() -> dict[str, int]:
    from django.db.models import Sum

    from audit.models import AuditEvent
    from bench.review_seed import project_name
    from reviews.models import Decision, Reading

    readings = Reading.objects.filter(project__name=project_name(STUDIES))
    return {
        "decisions": Decision.objects.filter(reading__in=readings).count(),
        "versions": readings.aggregate(total=Sum("version"))["total"] or 0,
        "audit": AuditEvent.objects.count(),
    }


def _cpu_seconds(process: psutil.Process) -> dict[int, float]:
    """CPU seconds (user + system) of the process and each of its children, by pid."""
    seconds = {}
    for proc in [process, *process.children(recursive=True)]:
        try:
            times = proc.cpu_times()
        except psutil.NoSuchProcess:
            continue
        seconds[proc.pid] = times.user + times.system
    return seconds


class _DatabaseCpu:
    """CPU seconds the local PostgreSQL backends of the benchmark's database spend while it is
    entered, sampled every second from a thread (backends come and go as gunicorn's
    connections age)."""

    def __init__(self) -> None:
        self.first: dict[int, float] = {}
        self.last: dict[int, float] = {}
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._sample_until_stopped, daemon=True)

    def _sample(self) -> dict[int, float]:
        found = {}
        for proc in psutil.process_iter(["cmdline", "cpu_times"]):
            command = " ".join(proc.info["cmdline"] or [])
            times = proc.info["cpu_times"]
            if command.startswith("postgres:") and f" {DATABASE} " in command and times is not None:
                found[proc.pid] = times.user + times.system
        return found

    def _sample_until_stopped(self) -> None:
        while not self.stop.wait(1.0):
            self.last.update(self._sample())
        self.last.update(self._sample())

    def __enter__(self) -> _DatabaseCpu:
        self.first = self._sample()
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop.set()
        self.thread.join()

    @property
    def seconds(self) -> float:
        return sum(value - self.first.get(pid, 0.0) for pid, value in self.last.items())


def _run_locust(base: str, seats_file: Path, results_file: Path, log: Path) -> dict[str, Any]:
    command = [
        sys.executable, "-m", "locust", "-f", str(ROOT / "bench" / "review_locustfile.py"),
        "--headless", "--users", str(USERS), "--spawn-rate", str(USERS), "--run-time", f"{SECONDS}s",
        "--stop-timeout", "30", "--host", base, "--only-summary", "--loglevel", "WARNING",
    ]  # fmt: skip
    env = {**os.environ, "BENCH_REVIEW_SEATS": str(seats_file), "BENCH_REVIEW_RESULTS": str(results_file)}
    env["BENCH_REVIEW_WAIT"] = WAIT
    env["BENCH_REVIEW_KEEPALIVE"] = "1" if KEEPALIVE else ""
    results_file.unlink(missing_ok=True)
    with log.open("wb") as out:
        subprocess.run(command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, check=False)
    if not results_file.exists():
        raise RuntimeError(f"locust wrote no results; see {log}")
    results: dict[str, Any] = json.loads(results_file.read_text())
    return results


# Method, path, status and the worker's time on the request in microseconds.
ACCESS_FORMAT = "%(m)s %(U)s %(s)s %(D)s"
SERVED_AS = (
    (re.compile(r"GET /api/v1/worklist/$"), WORKLIST_API),
    (re.compile(r"GET /$"), WORKLIST_PAGE),
    (re.compile(r"POST /api/v1/readings/\d+/decisions/$"), DECISION),
    (re.compile(r"GET /health/$"), ANCHOR),
)


def _access_log(log: Path) -> Path:
    """Where the gunicorn started with output to `log` writes its access log."""
    return log.with_suffix(".access")


def _served(access_log: Path, offset: int) -> dict[str, list[float]]:
    """The gunicorn workers' own time on each request logged past `offset`, in ms: from the
    request read to the response written, without the client's or the network's share."""
    served: dict[str, list[float]] = {name: [] for _, name in SERVED_AS}
    with access_log.open("rb") as log:
        log.seek(offset)
        for line in log.read().decode().splitlines():
            method, path, _, microseconds = line.split()
            name = next((name for pattern, name in SERVED_AS if pattern.match(f"{method} {path}")), None)
            if name is not None:
                served[name].append(int(microseconds) / 1000)
    return served


def _percentile(ordered: list[float], share: float) -> float:
    """Nearest-rank percentile of an ascending list."""
    if not ordered:
        return float("nan")
    rank = max(1, min(len(ordered), math.ceil(share * len(ordered))))
    return ordered[rank - 1]


def _report(
    results: dict[str, Any], wall: float, unloaded: dict[str, float], served: dict[str, list[float]]
) -> dict[str, Any]:
    times: dict[str, list[float]] = results["times_ms"]
    errors: dict[str, dict[str, int]] = results["errors"]
    print(
        f"{'':<52}{'requests':>9}{'req/s':>8}{'p50':>8}{'p95':>8}{'p99':>8}{'max':>8}"
        f"{'errors':>8}{'alone':>8}{'served p99':>11}  (ms)"
    )
    summary: dict[str, Any] = {}
    for name in (WORKLIST_API, WORKLIST_PAGE, DECISION, ANCHOR):
        ordered = sorted(times.get(name, []))
        failed = sum(errors.get(name, {}).values())
        p50, p95, p99 = (_percentile(ordered, s) for s in (0.50, 0.95, 0.99))
        summary[name] = {"count": len(ordered), "errors": failed, "p99": p99}
        print(
            f"{name:<52}{len(ordered):>9,}{len(ordered) / wall:>8.1f}{p50:>8.1f}{p95:>8.1f}{p99:>8.1f}"
            f"{(ordered[-1] if ordered else float('nan')):>8.1f}{failed:>8}{unloaded[name]:>8.1f}"
            f"{_percentile(sorted(served[name]), 0.99):>11.1f}"
        )
    total = sum(len(v) for v in times.values())
    failures = sum(sum(e.values()) for e in errors.values())
    print(f"{'all':<52}{total:>9,}{total / wall:>8.1f}{'':>40}{failures:>8}")
    for name, reasons in errors.items():
        for reason, count in sorted(reasons.items(), key=lambda item: -item[1])[:3]:
            print(f"  error: {name}: {count} x {reason}")
    anchor = summary[ANCHOR]["p99"]
    for name, goal in GOALS_MS.items():
        p99 = summary[name]["p99"]
        verdict = "PASS" if p99 <= goal else "MISS"
        label = name.split(" (")[0]
        print(f"goal {label} p99 <= {goal:.0f} ms: {p99:.1f} ms {verdict} ({p99 / anchor:.1f}x anchor p99)")
    print(f"goal no errors: {failures} {'PASS' if failures == 0 else 'MISS'}")
    return summary


def main() -> None:
    bench_url = _bench_database_url()
    if bench_url is None:
        print("skipped: needs PostgreSQL in DATABASE_URL (postgres://user@host:port/db; it uses its own db)")
        return
    os.environ["DATABASE_URL"] = bench_url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.settings")
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.conf import settings
    from django.db import connection

    from bench import review_seed

    seeding = _prepare()
    spread = " / ".join(f"{t or 'none'} {share:.0%}" for t, share in review_seed.TRIAGE_SPREAD)
    print(
        f"database: PostgreSQL {getattr(connection, 'pg_version', 0) // 10000} ({DATABASE}), {seeding}; "
        f"{STUDIES:,} studies in one project (AI triage {spread}; "
        f"{review_seed.READ_SHARE:.0%} already read), {USERS} readers"
    )
    out = Path(settings.VAR_DIR) / "review"
    out.mkdir(parents=True, exist_ok=True)
    workers, threads, source = _gunicorn_flags()
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    seats = review_seed.reader_seats(studies=STUDIES)
    print(f"worklist_page(): {_worklist_queries(seats[0])} SQL queries for a page of 50")
    gunicorn = _start_gunicorn(port, workers, threads, out / "gunicorn.log")
    try:
        print(_warm(base, seats, workers))
        seats = review_seed.reader_seats(studies=STUDIES)  # versions as they are now
        unloaded = _unloaded(base, seats[0])
        seats = review_seed.reader_seats(studies=STUDIES)
        seats_file = out / "seats.json"
        seats_file.write_text(json.dumps([seat.as_dict() for seat in seats]))
        before = _counts()
        server = psutil.Process(gunicorn.pid)
        server_cpu, machine = _cpu_seconds(server), psutil.cpu_times()
        client_before = resource.getrusage(resource.RUSAGE_CHILDREN)
        load = os.getloadavg()[0]
        print(
            f"server: gunicorn config.wsgi, {workers} workers x {threads} threads ({source}), "
            f"127.0.0.1; client: locust FastHttpUser, {USERS} users in one process, "
            f"{WAIT} s between requests, {SECONDS} s; load average before: {load:.2f}"
        )
        access_log = _access_log(out / "gunicorn.log")
        logged = access_log.stat().st_size
        started = time.perf_counter()
        with _DatabaseCpu() as database_cpu:
            results = _run_locust(base, seats_file, out / "results.json", out / "locust.log")
        wall = time.perf_counter() - started
        served = _served(access_log, logged)
        client_after = resource.getrusage(resource.RUSAGE_CHILDREN)
        server_after = _cpu_seconds(server)
        per_process = sorted(
            (server_after[pid] - server_cpu.get(pid, 0.0) for pid in server_after if pid != gunicorn.pid),
            reverse=True,
        )
        machine_after = psutil.cpu_times()
        summary = _report(results, min(wall, SECONDS), unloaded, served)
        after = _counts()
    finally:
        gunicorn.terminate()
        gunicorn.wait(timeout=30)
    client_cpu = client_after.ru_utime - client_before.ru_utime
    client_cpu += client_after.ru_stime - client_before.ru_stime
    total = sum(machine_after) - sum(machine)
    busy = total - (machine_after.idle - machine.idle)
    print(
        f"CPU over the run ({wall:.0f} s, {os.cpu_count()} cores): gunicorn workers "
        f"{' + '.join(f'{seconds:.1f}' for seconds in per_process)} s, "
        f"PostgreSQL backends {database_cpu.seconds:.1f} s, locust {client_cpu:.1f} s; "
        f"whole machine busy {busy:.0f} s of {total:.0f} s"
    )
    posted = summary[DECISION]["count"] - summary[DECISION]["errors"]
    added = after["decisions"] - before["decisions"]
    versions = after["versions"] - before["versions"]
    intact = added == posted == versions
    print(
        f"decisions: {posted:,} posted with 201, {added:,} new rows, readings' versions +{versions:,}, "
        f"audit events +{after['audit'] - before['audit']:,}: {'nothing lost' if intact else 'MISMATCH'}"
    )


if __name__ == "__main__":
    main()
