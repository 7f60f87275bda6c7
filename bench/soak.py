"""Soak: many simulated users for minutes on the whole stack, while inference runs.

`python -m bench.soak --users 50 --minutes 10` (`make soak`). Needs PostgreSQL in DATABASE_URL
(the soak works in its own database on that server, SOAK_DATABASE, default overread_soak,
created fresh from a migrated template each run) and the Redis broker in CELERY_BROKER_URL
(its queues are purged at the start: give the soak a Redis database nobody else uses).
It starts gunicorn on loopback as the Procfile does (its workers and threads) and one real Celery
worker on the default and inference queues, registers the demo model, seeds readers with tokens
and a reading each (bench/review_seed.py) and ingests a few small synthetic CT series through
the ingest service for the viewer's frames. Then locust (bench/soak_locustfile.py) mixes
worklist, frame loads, decisions and STOW-RS uploads; each upload is a new series that the
worker runs the demo model on once it settles. RSS of every gunicorn and Celery process is
sampled every few seconds.

Prints requests, failures and p50/p99 per request type; what was sent against the database
(decisions, instances, inference jobs); RSS at start, middle and end per process with its slope
after warm-up; and PASS/FAIL for zero errors, counts match and memory flat. Exits 1 on a FAIL.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psutil

ROOT = Path(__file__).resolve().parent.parent
DATABASE = os.environ.get("SOAK_DATABASE", "overread_soak")
# Worklist rows per simulated user: the seed gives each reader a reading on an urgent study of
# its own, and 5% of the studies are urgent, so 40 per user leaves every user a seat.
STUDIES_PER_USER = 40
FRAME_STUDIES = 3
SAMPLE_SECONDS = 5.0
# Memory counts as flat under this RSS growth after warm-up. A leak of one request's objects
# per request (about 10 kB at the soak's 20-40 requests/s) would grow a worker by 10+ MB/min,
# while allocator and cache settling stays well under 5.
FLAT_MB_PER_MIN = 5.0
WARM_UP_SHARE = 0.2  # the first fifth of the run (imports, caches, the model's load) is not judged
JOBS_DRAIN_SECONDS = 180


def _database_url(name: str) -> str | None:
    url = os.environ.get("DATABASE_URL", "")
    parts = urlsplit(url)
    if parts.scheme not in {"postgres", "postgresql", "pgsql"}:
        return None
    return urlunsplit(parts._replace(path=f"/{name}"))


def _fresh_database(url: str) -> None:
    """DATABASE as a copy of its migrated template (migrating once is most of a fresh start)."""
    import psycopg

    template = f"{DATABASE}_template"
    maintenance = urlunsplit(urlsplit(url)._replace(scheme="postgresql", path="/postgres"))
    with psycopg.connect(maintenance, autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [template]).fetchone():
            conn.execute(f'CREATE DATABASE "{template}"')
    template_url = urlunsplit(urlsplit(url)._replace(path=f"/{template}"))
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--verbosity", "0"],
        cwd=ROOT,
        env={**os.environ, "DATABASE_URL": template_url, "DJANGO_SETTINGS_MODULE": "bench.settings"},
        check=True,
    )
    with psycopg.connect(maintenance, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{DATABASE}" TEMPLATE "{template}"')


def _seed(users: int) -> list[dict[str, Any]]:
    """Readers with their readings, the demo model, and frame URLs of ingested instances."""
    import io

    from bench import review_seed
    from fixtures.synthetic import make_ct_study
    from inference.derived import to_part10_bytes
    from inference.models import ModelVersion
    from inference.registry import DEMO_MANIFEST, ModelDescription, model_register
    from reviews.models import ReadingProject
    from viewer.ingest.service import ingest_file

    studies = STUDIES_PER_USER * users
    review_seed.seed(studies=studies, readers=users)
    # The seed's placeholder model has no weights: it must not match the new series.
    ModelVersion.objects.filter(name="bench-lesion").update(status=ModelVersion.Status.RETIRED)
    demo = ModelDescription.from_manifest(DEMO_MANIFEST)
    model_register(description=demo, status=ModelVersion.Status.ACTIVE)
    # New studies (the frames' and the uploads') join the readers' project, as in production.
    ReadingProject.objects.filter(name=review_seed.project_name(studies)).update(auto_enrol=True)
    frames = []
    for n in range(FRAME_STUDIES):
        study = make_ct_study(seed=900_000 + n, slices=8, rows=64, columns=64, lesions=1)
        for k, ds in enumerate(study.datasets):
            source = io.BytesIO(to_part10_bytes(ds))
            outcome = ingest_file(source=source, name=f"frame{k}.dcm", origin="import")
            if outcome.status != "stored":
                raise RuntimeError(f"the frame series was not stored: {outcome.reason}")
            frames.append(
                f"/dicomweb/studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}"
                f"/instances/{ds.SOPInstanceUID}/frames/1"
            )
    seats = review_seed.reader_seats(studies=studies)
    if len(seats) < users:  # shared readings would race for versions: 409s, not a soak
        raise RuntimeError(f"only {len(seats)} readings for {users} users")
    return [{"frames": frames}, *(seat.as_dict() for seat in seats)]


def _start_worker(log: Path) -> subprocess.Popen[bytes]:
    command = [
        sys.executable, "-m", "celery", "--app", "config", "worker", "--queues", "default,inference",
        "--concurrency", "1", "--prefetch-multiplier", "1", "--loglevel", "WARNING",
    ]  # fmt: skip
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "bench.settings"}
    return subprocess.Popen(command, cwd=ROOT, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT)


@dataclass
class _Memory:
    """RSS of every process under the given roots, sampled from a thread."""

    roots: dict[str, int]
    samples: dict[str, list[tuple[float, float]]] = field(default_factory=dict)
    stop: threading.Event = field(default_factory=threading.Event)

    def _sample(self, started: float) -> None:
        for role, pid in self.roots.items():
            try:
                root = psutil.Process(pid)
                for proc in [root, *root.children(recursive=True)]:
                    name = f"{role} {'main' if proc.pid == pid else 'child'} pid {proc.pid}"
                    mb = proc.memory_info().rss / 2**20
                    self.samples.setdefault(name, []).append((time.monotonic() - started, mb))
            except psutil.NoSuchProcess:
                continue

    def run(self) -> None:
        started = time.monotonic()
        while True:
            self._sample(started)
            if self.stop.wait(SAMPLE_SECONDS):
                self._sample(started)
                return


def _slope_mb_per_min(points: list[tuple[float, float]]) -> float:
    """Least-squares slope of RSS over time, past the warm-up share of the run."""
    if len(points) < 3:
        return float("nan")
    end = points[-1][0]
    kept = [p for p in points if p[0] >= WARM_UP_SHARE * end] or points
    if len(kept) < 3:
        kept = points
    n = len(kept)
    mean_t = sum(t for t, _ in kept) / n
    mean_m = sum(m for _, m in kept) / n
    spread = sum((t - mean_t) ** 2 for t, _ in kept)
    if spread == 0:
        return 0.0
    return sum((t - mean_t) * (m - mean_m) for t, m in kept) / spread * 60


def _counts(prefix: str) -> dict[str, int]:
    from inference.models import InferenceJob
    from reviews.models import Decision
    from viewer.models import Instance

    uploaded = InferenceJob.objects.filter(series__study__study_uid__startswith=f"{prefix}.")
    return {
        "decisions": Decision.objects.count(),
        # The uploaded series only: the AI's own outputs (producer_kind set) join the same studies.
        "instances": Instance.objects.filter(
            series__study__study_uid__startswith=f"{prefix}.", series__producer_kind=""
        ).count(),
        "jobs": uploaded.count(),
        "jobs_open": uploaded.filter(status__in=["queued", "running"]).count(),
        "jobs_succeeded": uploaded.filter(status="succeeded").count(),
    }


def _drain_jobs(prefix: str, series: int) -> dict[str, int]:
    """Waits until each uploaded series has its job and no job is open (or the time is up)."""
    deadline = time.monotonic() + JOBS_DRAIN_SECONDS
    while True:
        counts = _counts(prefix)
        done = counts["jobs"] >= series and counts["jobs_open"] == 0
        if done or time.monotonic() > deadline:
            return counts
        time.sleep(1)


def _report_requests(results: dict[str, Any], wall: float) -> int:
    from bench.bench_review import _percentile

    times: dict[str, list[float]] = results["times_ms"]
    errors: dict[str, dict[str, int]] = results["errors"]
    print(f"{'':<30}{'requests':>9}{'req/s':>8}{'p50 ms':>9}{'p99 ms':>9}{'max ms':>9}{'failures':>9}")
    for name in sorted(set(times) | set(errors)):
        ordered = sorted(times.get(name, []))
        failed = sum(errors.get(name, {}).values())
        p50, p99 = _percentile(ordered, 0.5), _percentile(ordered, 0.99)
        top = ordered[-1] if ordered else float("nan")
        print(
            f"{name:<30}{len(ordered):>9,}{len(ordered) / wall:>8.1f}"
            f"{p50:>9.1f}{p99:>9.1f}{top:>9.1f}{failed:>9}"
        )
    total = sum(len(v) for v in times.values())
    failures = sum(sum(e.values()) for e in errors.values())
    print(f"{'all':<30}{total:>9,}{total / wall:>8.1f}{'':>27}{failures:>9}")
    for name, reasons in errors.items():
        for reason, count in sorted(reasons.items(), key=lambda item: -item[1])[:3]:
            print(f"  failure: {name}: {count} x {reason}")
    return failures


def _report_memory(memory: _Memory) -> bool:
    flat = True
    print(f"memory (RSS MB; slope after the first {WARM_UP_SHARE:.0%}, limit {FLAT_MB_PER_MIN} MB/min):")
    for name, points in sorted(memory.samples.items()):
        values = [m for _, m in points]
        slope = _slope_mb_per_min(points)
        flat = flat and not slope >= FLAT_MB_PER_MIN
        middle = values[len(values) // 2]
        print(
            f"  {name:<34} start {values[0]:7.1f}  middle {middle:7.1f}  end {values[-1]:7.1f}  "
            f"slope {slope:+6.2f} MB/min  ({len(values)} samples)"
        )
    return flat


def _run_locust(base: str, users: int, seconds: int, files: dict[str, Path], log: Path) -> dict[str, Any]:
    command = [
        sys.executable, "-m", "locust", "-f", str(ROOT / "bench" / "soak_locustfile.py"), "--headless",
        "--users", str(users), "--spawn-rate", str(max(1, users // 5)), "--run-time", f"{seconds}s",
        "--stop-timeout", "30", "--host", base, "--only-summary", "--loglevel", "WARNING",
    ]  # fmt: skip
    env = {**os.environ, **{key: str(path) for key, path in files.items() if key.startswith("SOAK_")}}
    env["PYTHONPATH"] = str(ROOT)
    with log.open("wb") as out:
        subprocess.run(command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, check=False)
    results_file = files["SOAK_RESULTS"]
    if not results_file.exists():
        raise RuntimeError(f"locust wrote no results; see {log}")
    results: dict[str, Any] = json.loads(results_file.read_text())
    return results


def soak(*, users: int, seconds: int) -> dict[str, bool]:
    """Runs the soak; prints its figures; returns each check (zero errors, counts match,
    memory flat) with whether it passed."""
    url = _database_url(DATABASE)
    if url is None:
        raise SystemExit("the soak needs PostgreSQL in DATABASE_URL (it works in its own database there)")
    _fresh_database(url)
    os.environ.update(DATABASE_URL=url, DJANGO_SETTINGS_MODULE="bench.settings")
    os.environ.setdefault("INFERENCE_SERIES_STABLE_SECONDS", "2")  # a STOW-RS series arrives at once
    os.environ.setdefault("INFERENCE_TORCH_THREADS", "1")  # leave cores to the web side
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.conf import settings

    from bench.bench_review import _collect_static, _free_port, _gunicorn_flags, _start_gunicorn
    from config.celery import app

    out = Path(settings.VAR_DIR) / "soak"
    out.mkdir(parents=True, exist_ok=True)
    if os.environ.get("BENCH_PLAIN_STATIC") != "1":
        _collect_static()
    app.control.purge()  # nothing left in the broker from an earlier run
    worker = _start_worker(out / "celery.log")
    port = _free_port()
    web_workers, web_threads, _ = _gunicorn_flags()
    gunicorn = _start_gunicorn(port, web_workers, web_threads, out / "gunicorn.log")
    memory = _Memory(roots={"gunicorn": gunicorn.pid, "celery": worker.pid})
    try:
        seeded = _seed(users)
        frames, seats = seeded[0]["frames"], seeded[1:]
        prefix = f"1.2.826.0.1.3680043.8.498.78.{uuid.uuid4().int % 10**12}"
        files = {
            "SOAK_SEATS": out / "seats.json",
            "SOAK_FRAMES": out / "frames.json",
            "SOAK_RESULTS": out / "results.json",
        }
        files["SOAK_SEATS"].write_text(json.dumps(seats))
        files["SOAK_FRAMES"].write_text(json.dumps(frames))
        files["SOAK_RESULTS"].unlink(missing_ok=True)
        os.environ["SOAK_UPLOAD_PREFIX"] = prefix
        before = _counts(prefix)
        print(
            f"soak: {users} users for {seconds} s on gunicorn {web_workers} workers x {web_threads} threads"
            " + 1 Celery worker; "
            f"load average before {os.getloadavg()[0]:.2f}"
        )
        sampler = threading.Thread(target=memory.run, daemon=True)
        sampler.start()
        started = time.perf_counter()
        results = _run_locust(f"http://127.0.0.1:{port}", users, seconds, files, out / "locust.log")
        wall = min(time.perf_counter() - started, seconds)
        memory.stop.set()
        sampler.join()
        sent = results["stored"]
        after = _drain_jobs(prefix, sent["series"])
    finally:
        memory.stop.set()
        for process in (gunicorn, worker):
            process.terminate()
        for process in (gunicorn, worker):
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
    failures = _report_requests(results, wall)
    decisions = after["decisions"] - before["decisions"]
    print(f"decisions: {sent['decisions']:,} posted with 201, {decisions:,} Decision rows")
    print(
        f"uploads: {sent['series']} series, {sent['instances']:,} instances stored, "
        f"{after['instances']:,} Instance rows"
    )
    print(
        f"inference: {sent['series']} series uploaded, {after['jobs']} jobs queued, "
        f"{after['jobs_succeeded']} succeeded, {after['jobs_open']} still open"
    )
    flat = _report_memory(memory)
    match = (
        decisions == sent["decisions"]
        and after["instances"] == sent["instances"]
        and after["jobs"] == after["jobs_succeeded"] == sent["series"]
    )
    checks = {"zero errors": failures == 0, "counts match": match, "memory flat": flat}
    for label, passed in checks.items():
        print(f"{'PASS' if passed else 'FAIL'} {label}")
    return checks


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--users", type=int, default=int(os.environ.get("SOAK_USERS", "50")))
    parser.add_argument("--minutes", type=float, default=float(os.environ.get("SOAK_MINUTES", "10")))
    args = parser.parse_args(argv)
    # A terminated soak still stops the gunicorn and Celery it started (the finally in soak()).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    return 0 if all(soak(users=args.users, seconds=round(args.minutes * 60)).values()) else 1


if __name__ == "__main__":
    sys.exit(main())
