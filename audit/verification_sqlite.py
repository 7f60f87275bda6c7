"""Verifying the chain on SQLite: the database spells each event's canonical text, Python hashes it.

SQLite's `json_array()` escapes strings exactly as Python's json module does
with ensure_ascii=False, so `json_array(1, id, time, ...)` with the stored
detail and prev_hash spliced on is audit.canonical's bytes, built in C. An
event whose text differs anyway (a value of an odd type, a time stored in
another spelling) fails the fast hash and is re-encoded by audit.canonical
before it is reported, so the fast path only ever speeds up, never decides.

Large chains are split into contiguous id ranges checked by separate
processes (one per core); the ranges are then stitched: each range's first
prev_hash must equal the hash that ends the range before it.
"""

from __future__ import annotations

import hashlib
import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from django.db import connection, connections

from audit.canonical import CHAINED_FIELDS, EXPORT_FIELDS, GENESIS_HASH, HASH_VERSION, canonical_bytes

# Below this many events one process is quicker than starting others.
PARALLEL_MIN_EVENTS: Final = 100_000

# SQLite keeps the time as "YYYY-MM-DD HH:MM:SS[.ffffff]" in UTC; the canonical form respells it.
_STAMP: Final = (
    "CASE WHEN length(occurred_at) = 26 THEN replace(occurred_at, ' ', 'T') || 'Z' "
    "ELSE replace(occurred_at, ' ', 'T') || '.000000Z' END"
)
# json_array of every field up to inference_job_id (its last element is a number or null, so
# rtrim removes exactly the closing bracket), then the stored detail JSON and prev_hash.
_CANONICAL: Final = (
    "rtrim(json_array(1, "
    + ", ".join(_STAMP if name == "occurred_at" else name for name in CHAINED_FIELDS[:-2])
    + """), ']') || ',' || detail || ',"' || prev_hash || '"]'"""
)
_RANGE_QUERY: Final = f"""
SELECT id, prev_hash, hash, hash_version, {_CANONICAL}
FROM audit_auditevent WHERE id >= %s AND id < %s ORDER BY id
"""  # noqa: S608 (no user input: columns and constants only)
# The time as stored text: the declared type would make the driver parse it, slowly.
_COLUMNS: Final = ", ".join(
    "CAST(occurred_at AS TEXT)" if name == "occurred_at" else name for name in EXPORT_FIELDS
)

GAP: Final = "gap"
EDIT: Final = "edit"


@dataclass(frozen=True)
class RangeResult:
    count: int = 0  # events checked, up to and including a bad one
    first_id: int | None = None
    first_prev: str = ""
    last_id: int | None = None  # the last good event
    last_hash: str = ""
    bad_id: int | None = None
    bad_kind: str = ""  # GAP or EDIT


def verify_range(low: int, high: int, chunk_size: int = 20_000) -> RangeResult:
    """Checks events low <= id < high: each hash, and each link after the range's first event."""
    sha256 = hashlib.sha256
    count = 0
    first_id: int | None = None
    first_prev = ""
    last_id: int | None = None
    last_hash = ""
    with connection.cursor() as cursor, connection.cursor() as lookup:
        cursor.execute(_RANGE_QUERY, [low, high])
        while rows := cursor.fetchmany(chunk_size):
            for id_, prev, stored, version, text in rows:
                count += 1
                if first_id is None:
                    first_id, first_prev = id_, prev
                elif prev != last_hash:
                    return RangeResult(count, first_id, first_prev, last_id, last_hash, id_, GAP)
                fast = version == HASH_VERSION and text is not None
                if not (fast and sha256(text.encode()).hexdigest() == stored) and not _slow_match(
                    lookup, id_, stored
                ):
                    return RangeResult(count, first_id, first_prev, last_id, last_hash, id_, EDIT)
                last_id, last_hash = id_, stored
    return RangeResult(count, first_id, first_prev, last_id, last_hash)


def _slow_match(cursor: Any, event_id: int, stored: str) -> bool:
    cursor.execute(f"SELECT {_COLUMNS} FROM audit_auditevent WHERE id = %s", [event_id])  # noqa: S608
    return hashlib.sha256(canonical_of_raw_row(cursor.fetchone())).hexdigest() == stored


def canonical_of_raw_row(row: tuple[Any, ...]) -> bytes:
    """The general path: audit.canonical's own encoder on the stored values (EXPORT_FIELDS order)."""
    if row[-1] != HASH_VERSION:
        return b""  # a version we cannot encode: matches no hash, so the event is reported
    values = list(row[: len(EXPORT_FIELDS) - 2])
    try:
        moment = datetime.fromisoformat(values[1])
        values[1] = moment if moment.tzinfo else moment.replace(tzinfo=UTC)  # SQLite keeps naive UTC
        return canonical_bytes(values)
    except (TypeError, ValueError):
        return b""  # unencodable: matches no hash, so the event is reported


def verify_ranges(*, chunk_size: int, workers: int) -> list[RangeResult]:
    """The chain's id span cut into `workers` ranges, each checked in its own process when large."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT min(id), max(id), count(*) FROM audit_auditevent")
        low, high, count = cursor.fetchone()
    if count == 0:
        return []
    if workers <= 1 or count < PARALLEL_MIN_EVENTS:
        return [verify_range(low, high + 1, chunk_size)]
    step = (high - low + workers) // workers
    bounds = [(low + k * step, min(low + (k + 1) * step, high + 1)) for k in range(workers)]
    connections.close_all()  # each process opens its own connection
    context = multiprocessing.get_context("fork")
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        return list(pool.map(verify_range, *zip(*bounds, strict=True), [chunk_size] * workers))


def stitch(parts: list[RangeResult]) -> tuple[int, int | None, str, int | None, str]:
    """Joins range results in id order: (count, first bad id, GAP/EDIT, last id, last hash)."""
    total = 0
    expected, last_id = GENESIS_HASH, None
    for part in parts:
        if part.first_id is None:
            continue
        if part.first_prev != expected:
            return total + 1, part.first_id, GAP, last_id, expected
        if part.bad_id is not None:
            before = part.last_id if part.last_id is not None else last_id
            return total + part.count, part.bad_id, part.bad_kind, before, expected
        total += part.count
        expected, last_id = part.last_hash, part.last_id
    return total, None, "", last_id, expected
