"""Re-computes the hash chain and names the first event that breaks it.

One pass in id order, constant memory. For every event it checks that
- `prev_hash` equals the hash of the event before it (a deleted, inserted,
  moved or swapped event breaks this), and
- `hash` equals the SHA-256 of its canonical bytes (an edited event breaks
  this; audit.canonical defines the bytes).

Speed matters (the goal is 200,000 events/s on two cores), and the ORM's
per-row conversions cost more than the hashing, so:
- on PostgreSQL the database builds each canonical text and hashes it
  (`sha256()`, built in since PostgreSQL 11), and compares each event with
  the one before it (`lag()`), in one scan; only the first bad id comes back;
- on SQLite, raw rows are hashed in Python: the canonical text is formatted
  directly when no field needs JSON escaping (almost always), and by
  audit.canonical otherwise.
Both must produce audit.canonical's bytes exactly; the tests run the same
chains, odd characters included, through both.
"""

from __future__ import annotations

import hashlib
import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from django.db import connection

from audit.canonical import CHAINED_FIELDS, EXPORT_FIELDS, GENESIS_HASH, HASH_VERSION, canonical_bytes


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


def audit_chain_verify(*, chunk_size: int = 20_000) -> ChainReport:
    """Checks every event in id order; stops at the first that breaks the chain."""
    started = time.perf_counter()
    in_database = connection.vendor == "postgresql"
    outcome = _verify_in_postgresql() if in_database else _verify_in_python(chunk_size)
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

# --- SQLite (and any other database): hashed in Python ---------------------------------------
_NEEDS_ESCAPING = re.compile(r'["\\\x00-\x1f]')
# The time as stored text: the declared type would make the driver parse it, slowly.
_COLUMNS = ", ".join("CAST(occurred_at AS TEXT)" if name == "occurred_at" else name for name in EXPORT_FIELDS)


def _verify_in_python(chunk_size: int) -> _Outcome:
    sha256 = hashlib.sha256
    needs_escaping = _NEEDS_ESCAPING.search
    expected_prev = GENESIS_HASH
    count = 0
    last_id: int | None = None
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {_COLUMNS} FROM audit_auditevent ORDER BY id")  # noqa: S608 (constant)
        while rows := cursor.fetchmany(chunk_size):
            for row in rows:
                (id_, at, e_id, e_type, act, outc, reason, uid, user, role, ip, agent, sess, req, pat, acc,
                 study, series, sop, model, job, detail, prev, stored, version) = row  # fmt: skip
                count += 1
                if prev != expected_prev:
                    return count, id_, _gap_problem(last_id), None, ""
                joined = "".join(  # every text field, checked at once for characters JSON escapes
                    (
                        e_id,
                        e_type,
                        act,
                        reason,
                        user,
                        role,
                        ip,
                        agent,
                        sess,
                        req,
                        pat,
                        acc,
                        study,
                        series,
                        sop,
                        model,
                    )
                )
                try:
                    plain = not needs_escaping(joined) and _plain_numbers(id_, outc, uid, job)
                except TypeError:  # a value that is not text where text belongs
                    plain = False
                if plain and len(at) in (19, 26):
                    # SQLite holds "YYYY-MM-DD HH:MM:SS[.ffffff]" in UTC: the canonical form is a respelling.
                    stamp = f"{at[:10]}T{at[11:19]}.{at[20:26] or '000000'}Z"
                    text = (
                        f'[1,{id_},"{stamp}","{e_id}","{e_type}","{act}",{outc},"{reason}",'
                        f'{"null" if uid is None else uid},"{user}","{role}","{ip}","{agent}","{sess}",'
                        f'"{req}",'
                        f'"{pat}","{acc}","{study}","{series}","{sop}","{model}",'
                        f'{"null" if job is None else job},{detail},"{prev}"]'
                    ).encode()
                else:
                    text = _canonical_of_raw_row(row)
                if sha256(text).hexdigest() != stored or version != HASH_VERSION:
                    return count, id_, EDITED, None, ""
                expected_prev = stored
                last_id = id_
    return count, None, "", last_id, expected_prev


def _plain_numbers(*numbers: Any) -> bool:
    return all(number is None or number.__class__ is int for number in numbers)


def _canonical_of_raw_row(row: tuple[Any, ...]) -> bytes:
    """The slow, general path: audit.canonical's own encoder on the stored values."""
    values = list(row[: len(EXPORT_FIELDS) - 2])
    try:
        moment = datetime.fromisoformat(values[1])
        values[1] = moment if moment.tzinfo else moment.replace(tzinfo=UTC)  # SQLite keeps naive UTC
        return canonical_bytes(values)
    except (TypeError, ValueError):
        return b""  # unencodable: cannot match any hash, so the event is reported


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

_POSTGRESQL_CHECK: Final = f"""
WITH checked AS (
    SELECT id, hash,
           prev_hash = lag(hash, 1, '{GENESIS_HASH}') OVER (ORDER BY id) AS linked,
           hash = encode(sha256(convert_to({POSTGRESQL_CANONICAL}, 'UTF8')), 'hex')
               AND hash_version = {HASH_VERSION} AS intact,
           row_number() OVER (ORDER BY id) AS position
    FROM audit_auditevent
)
SELECT id, linked, position, (SELECT max(id) FROM audit_auditevent WHERE id < checked.id)
FROM checked WHERE NOT (linked AND intact) ORDER BY id LIMIT 1
"""  # noqa: S608 (no user input: columns and constants only)


def _verify_in_postgresql() -> _Outcome:
    with connection.cursor() as cursor:
        cursor.execute(_POSTGRESQL_CHECK)
        bad = cursor.fetchone()
        if bad is not None:
            bad_id, linked, position, before_id = bad
            return position, bad_id, EDITED if linked else _gap_problem(before_id), None, ""
        cursor.execute("SELECT count(*) FROM audit_auditevent")
        (count,) = cursor.fetchone()
        cursor.execute("SELECT id, hash FROM audit_auditevent ORDER BY id DESC LIMIT 1")
        head = cursor.fetchone()
    head_id, head_hash = head if head is not None else (None, GENESIS_HASH)
    return count, None, "", head_id, head_hash
