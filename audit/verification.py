"""Re-computes the hash chain and names the first event that breaks it.

One pass in id order, constant memory. For every event it checks that
- `prev_hash` equals the hash of the event before it (a deleted, inserted,
  moved or swapped event breaks this), and
- `hash` equals the SHA-256 of its canonical bytes (an edited event breaks
  this; audit.canonical defines the bytes).

Speed matters (the goal is 200,000 events/s on two cores), and the ORM's
per-row conversions cost more than the hashing, so:
- on PostgreSQL the database builds each canonical text and hashes it
  (`sha256()`, built in since PostgreSQL 11) in a parallel aggregate, and
  compares each event with the one before it (`lag()`) in a second, cheap
  scan; only the first bad id comes back;
- on SQLite the database spells each canonical text (`json_array()`) and
  Python hashes it, split over processes for large chains
  (audit.verification_sqlite).
Both must produce audit.canonical's bytes exactly; the tests run the same
chains, odd characters included, through both.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Final

from django.db import connection

from audit import verification_sqlite
from audit.canonical import CHAINED_FIELDS, GENESIS_HASH, HASH_VERSION


@dataclass(frozen=True)
class ChainReport:
    count: int  # events checked (up to and including the first bad one)
    seconds: float
    first_bad_id: int | None = None
    problem: str = ""
    head_id: int | None = None  # the last event of an intact chain
    head_hash: str = ""

    @property
    def intact(self) -> bool:
        return self.first_bad_id is None

    @property
    def events_per_second(self) -> float:
        return self.count / self.seconds if self.seconds > 0 else float("inf")


EDITED: Final = "its content does not match its hash (the event was edited)"


def _gap_problem(last_id: int | None) -> str:
    before = f"event {last_id}" if last_id is not None else "the start of the chain"
    return (
        f"its prev_hash does not match the hash of {before} (events were deleted, inserted, "
        "re-ordered, or the one before it was rewritten)"
    )


def audit_chain_verify(*, chunk_size: int = 20_000, workers: int = 1) -> ChainReport:
    """Checks every event in id order; stops at the first that breaks the chain.

    On SQLite a large chain is split over `workers` processes (give it the
    number of cores from a command; leave 1 inside a Celery worker, whose
    processes may not start others).
    """
    started = time.perf_counter()
    if connection.vendor == "postgresql":
        outcome = _verify_in_postgresql()
    else:
        outcome = _verify_in_sqlite(chunk_size, workers)
    count, first_bad_id, problem, head_id, head_hash = outcome
    return ChainReport(
        count=count,
        seconds=time.perf_counter() - started,
        first_bad_id=first_bad_id,
        problem=problem,
        head_id=None if first_bad_id is not None else head_id,
        head_hash="" if first_bad_id is not None else head_hash,
    )


_Outcome = tuple[int, int | None, str, int | None, str]


# --- SQLite: spelled by the database, hashed in Python (audit.verification_sqlite) ------------
def _verify_in_sqlite(chunk_size: int, workers: int) -> _Outcome:
    parts = verification_sqlite.verify_ranges(chunk_size=chunk_size, workers=workers)
    count, bad_id, kind, last_id, last_hash = verification_sqlite.stitch(parts)
    if bad_id is None:
        return count, None, "", last_id, last_hash
    return count, bad_id, _gap_problem(last_id) if kind == verification_sqlite.GAP else EDITED, None, ""


# --- PostgreSQL: hashed by the database ----------------------------------------------------------
def _json(column: str) -> str:
    return f"to_json({column})::text"


# The run of text fields between user_id and inference_job_id, in chain order.
_POSTGRESQL_TEXT_COLUMNS: Final = CHAINED_FIELDS[
    CHAINED_FIELDS.index("username") : CHAINED_FIELDS.index("model_version") + 1
]

# audit.canonical's format, spelled in SQL: to_json(text) escapes exactly as Python's json module
# does with ensure_ascii=False (", \, \b \f \n \r \t, other control characters as \u00xx).
POSTGRESQL_CANONICAL: Final = " || ',' || ".join(
    [
        "'[1,' || id::text",
        _json("to_char(occurred_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')"),
        *(_json(c) for c in ("event_id", "event_type", "action")),
        "outcome::text",
        _json("outcome_reason"),
        "coalesce(user_id::text, 'null')",
        *(_json(c) for c in _POSTGRESQL_TEXT_COLUMNS),
        "coalesce(inference_job_id::text, 'null')",
        "detail",
        _json("prev_hash") + " || ']'",
    ]
)

# Two scans instead of one: the hash check is an aggregate PostgreSQL runs with parallel
# workers; the link check (each prev_hash against the hash before it) is a cheap ordered scan.
_POSTGRESQL_FIRST_EDITED: Final = f"""
SELECT min(id) FILTER (
           WHERE hash_version <> {HASH_VERSION}
              OR hash <> encode(sha256(convert_to({POSTGRESQL_CANONICAL}, 'UTF8')), 'hex')),
       count(*)
FROM audit_auditevent
"""  # noqa: S608 (no user input: columns and constants only)
_POSTGRESQL_FIRST_UNLINKED: Final = f"""
SELECT id FROM (
    SELECT id, prev_hash, lag(hash, 1, '{GENESIS_HASH}') OVER (ORDER BY id) AS before
    FROM audit_auditevent
) AS linked WHERE prev_hash <> before ORDER BY id LIMIT 1
"""  # noqa: S608 (no user input: columns and constants only)


def _verify_in_postgresql() -> _Outcome:
    with connection.cursor() as cursor:
        cursor.execute(_POSTGRESQL_FIRST_EDITED)
        edited_id, count = cursor.fetchone()
        cursor.execute(_POSTGRESQL_FIRST_UNLINKED)
        unlinked = cursor.fetchone()
        unlinked_id = unlinked[0] if unlinked else None
        if edited_id is not None or unlinked_id is not None:
            # A broken link names the event first when both checks fail at the same one.
            gap = unlinked_id is not None and (edited_id is None or unlinked_id <= edited_id)
            bad_id = unlinked_id if gap else edited_id
            cursor.execute(
                "SELECT count(*), max(id) FILTER (WHERE id < %s) FROM audit_auditevent WHERE id <= %s",
                [bad_id, bad_id],
            )
            position, before_id = cursor.fetchone()
            return position, bad_id, _gap_problem(before_id) if gap else EDITED, None, ""
        cursor.execute("SELECT id, hash FROM audit_auditevent ORDER BY id DESC LIMIT 1")
        head = cursor.fetchone()
    head_id, head_hash = head if head is not None else (None, GENESIS_HASH)
    return count, None, "", head_id, head_hash
