"""Audit trail at scale: 1,000,000 chained events, exported in each format and verified.

`python -m bench audit` (or `python -m bench.bench_audit`) under bench/settings.py:
SQLite in var/bench/ by default, PostgreSQL with DATABASE_URL. Prints, per
export format, the time, events/s and the peak RSS of the process that ran
it (each export runs in its own process, through `manage.py export_audit`,
so the figure is that export's own); then the chain verification and the
review page's queries. Goals on a 2-core machine: CSV/JSONL export of 1M
events <= 20 s at <= 150 MB peak RSS; verification >= 200,000 events/s.
"""

from __future__ import annotations

import hashlib
import json
import os
import resource
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

EVENTS = int(os.environ.get("BENCH_AUDIT_EVENTS", "1000000"))
FORMATS = ("csv", "jsonl", "fhir", "syslog")
_BATCH = 20_000


def _setup() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.settings")
    import django

    django.setup()


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def _reset_audit_table() -> None:
    from django.db import connection, transaction

    with transaction.atomic(), connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            # The bench runs as the table owner, like an administrator resetting a test database.
            cursor.execute("ALTER TABLE audit_auditevent DISABLE TRIGGER audit_auditevent_no_truncate")
            cursor.execute("TRUNCATE audit_auditevent")
            cursor.execute("ALTER TABLE audit_auditevent ENABLE TRIGGER audit_auditevent_no_truncate")
        else:
            cursor.execute("DELETE FROM audit_auditevent")


def _synthetic_events(count: int) -> Any:
    """Chained rows in CHAINED_FIELDS order plus hash and version: a plausible mix of events."""
    from audit.canonical import GENESIS_HASH, HASH_VERSION, canonical_bytes, detail_text
    from audit.codes import EventID, EventType

    kinds = [
        (EventID.INSTANCES_ACCESSED.code, "", "R", 0),
        (EventID.INSTANCES_ACCESSED.code, "", "R", 0),
        (EventID.INSTANCES_ACCESSED.code, "", "R", 0),
        (EventID.QUERY.code, "", "E", 0),
        (EventID.USER_AUTHENTICATION.code, EventType.LOGIN.code, "E", 0),
        (EventID.USER_AUTHENTICATION.code, EventType.LOGIN.code, "E", 4),
        (EventID.APPLICATION_ACTIVITY.code, EventType.LOCAL_SERVICE_STARTED.code, "E", 0),
        (EventID.SECURITY_ALERT.code, EventType.USE_OF_RESTRICTED_FUNCTION.code, "E", 4),
    ]
    agent = (
        "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/150.0 Safari/537.36"
    )
    start = datetime(2026, 1, 1, tzinfo=UTC)
    prev = GENESIS_HASH
    for n in range(1, count + 1):
        event_id, event_type, action, outcome = kinds[n % len(kinds)]
        user = n % 200
        patient = (n * 7919) % 50_000
        study = f"1.2.826.0.1.3680043.8.498.{patient}.{n % 3}"
        row = [
            n,
            start + timedelta(milliseconds=30 * n, microseconds=n % 1000),
            event_id,
            event_type,
            action,
            outcome,
            "authentication failed" if outcome else "",
            user + 1,
            f"reader{user:03d}",
            "radiologist",
            f"10.{user % 256}.{n % 256}.{(n // 256) % 256}",
            agent,
            hashlib.sha256(f"session{n // 40}".encode()).hexdigest(),
            f"{n:032x}",
            f"PAT{patient:06d}",
            f"ACC{patient:07d}",
            study,
            f"{study}.1",
            f"{study}.1.{n % 100}",
            "lesion-unet 1.2.0" if event_type == EventType.LOCAL_SERVICE_STARTED.code else "",
            n // 10 if event_type == EventType.LOCAL_SERVICE_STARTED.code else None,
            detail_text({"path": f"/studies/{study}/", "frames": n % 120}),
            prev,
        ]
        prev = hashlib.sha256(canonical_bytes(row)).hexdigest()
        yield (*row, prev, HASH_VERSION)


def _generate(count: int) -> float:
    """Bulk-inserts `count` precomputed chained events; returns the seconds it took."""
    from django.db import connection, transaction

    from audit.canonical import EXPORT_FIELDS

    started = time.perf_counter()
    columns = ", ".join(EXPORT_FIELDS)
    placeholders = ", ".join(["%s"] * len(EXPORT_FIELDS))
    adapt = connection.ops.adapt_datetimefield_value
    batch: list[tuple[Any, ...]] = []
    with transaction.atomic(), connection.cursor() as cursor:
        for row in _synthetic_events(count):
            batch.append((row[0], adapt(row[1]), *row[2:]))
            if len(batch) == _BATCH:
                cursor.executemany(f"INSERT INTO audit_auditevent ({columns}) VALUES ({placeholders})", batch)  # noqa: S608
                batch.clear()
        if batch:
            cursor.executemany(f"INSERT INTO audit_auditevent ({columns}) VALUES ({placeholders})", batch)  # noqa: S608
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE audit_auditevent")
    return time.perf_counter() - started


def _export_in_own_process(export_format: str, target: Path) -> dict[str, Any]:
    result = subprocess.run(
        [sys.executable, "-m", "bench.bench_audit", "--export", export_format, str(target)],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(result.stdout.strip().splitlines()[-1])


def export_one(export_format: str, target: str) -> None:
    """Child process: one export through the real command; prints its figures as JSON."""
    _setup()
    from django.core.management import call_command

    baseline = _peak_rss_mb()
    started = time.perf_counter()
    call_command("export_audit", "--format", export_format, "-o", target)
    seconds = time.perf_counter() - started
    print(json.dumps({"seconds": seconds, "peak_rss_mb": _peak_rss_mb(), "baseline_rss_mb": baseline}))


def verify_once() -> None:
    """Child process: the chain verification; prints its figures as JSON."""
    _setup()
    from audit.verification import audit_chain_verify

    report = audit_chain_verify(workers=os.cpu_count() or 1)  # as `manage.py verify_audit` runs it
    print(
        json.dumps(
            {
                "count": report.count,
                "seconds": report.seconds,
                "intact": report.intact,
                "peak_rss_mb": _peak_rss_mb(),
            }
        )
    )


def _page_queries() -> list[tuple[str, float]]:
    from audit.codes import EventID
    from audit.filters import FAILURES, AuditFilter
    from audit.selectors import audit_event_page

    cases = [
        ("newest page, no filter", AuditFilter()),
        ("one user", AuditFilter(username="reader042")),
        ("one patient", AuditFilter(patient_id="PAT012345")),
        ("one study", AuditFilter(study_uid="1.2.826.0.1.3680043.8.498.12345.0")),
        ("failed sign-ins", AuditFilter(event_id=EventID.USER_AUTHENTICATION.code, outcome=FAILURES)),
        (
            "one day, months ago",
            AuditFilter(since=datetime(2026, 1, 3, tzinfo=UTC), until=datetime(2026, 1, 4, tzinfo=UTC)),
        ),
    ]
    timings = []
    for label, audit_filter in cases:
        audit_event_page(audit_filter=audit_filter)  # warm the cache: steady-state figures
        started = time.perf_counter()
        page = audit_event_page(audit_filter=audit_filter)
        audit_event_page(audit_filter=audit_filter, before=page.older_than) if page.older_than else None
        timings.append((label, (time.perf_counter() - started) / 2 * 1000))
    return timings


def main() -> None:
    _setup()
    from django.conf import settings
    from django.core.management import call_command
    from django.db import connection

    call_command("migrate", verbosity=0)
    print(f"database: {connection.vendor}; events: {EVENTS:,}")
    _reset_audit_table()
    seconds = _generate(EVENTS)
    rate = EVENTS / seconds
    print(f"generate {EVENTS:,} chained events (bulk insert): {seconds:6.1f} s  {rate:>10,.0f} events/s")

    out = Path(settings.VAR_DIR) / "exports"
    out.mkdir(parents=True, exist_ok=True)
    for export_format in FORMATS:
        target = out / f"audit.{export_format}"
        figures = _export_in_own_process(export_format, target)
        size = target.stat().st_size / 1e6
        rate = EVENTS / figures["seconds"]
        print(
            f"export {export_format:<6} {figures['seconds']:6.1f} s  {rate:>10,.0f} events/s  "
            f"peak RSS {figures['peak_rss_mb']:5.0f} MB (start-up: {figures['baseline_rss_mb']:.0f} MB)  "
            f"{size:,.0f} MB file"
        )
        target.unlink()

    result = subprocess.run(
        [sys.executable, "-m", "bench.bench_audit", "--verify"], capture_output=True, text=True, check=True
    )
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    rate = figures["count"] / figures["seconds"]
    print(
        f"verify {figures['count']:,} events {figures['seconds']:6.1f} s  {rate:>10,.0f} events/s  "
        f"peak RSS {figures['peak_rss_mb']:5.0f} MB  intact: {figures['intact']}"
    )
    for label, milliseconds in _page_queries():
        print(f"review page query ({label}): {milliseconds:7.1f} ms per page of 50")


if __name__ == "__main__":
    if sys.argv[1:2] == ["--export"]:
        export_one(sys.argv[2], sys.argv[3])
    elif sys.argv[1:2] == ["--verify"]:
        verify_once()
    else:
        main()
