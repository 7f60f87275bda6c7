"""The canonical byte form of an audit event, and its hash (format version 1).

This is the one definition of what the chain hashes; docs/operations.md
("Audit trail") describes the same algorithm for auditors who re-verify an
export without this code:

    canonical = JSON array, no whitespace, UTF-8, non-ASCII characters written
                as themselves (RFC 8785 style), of
                [1, id, occurred_at, event_id, event_type, action, outcome,
                 outcome_reason, user_id, username, role, source_ip, user_agent,
                 session_hash, request_id, patient_id, accession, study_uid,
                 series_uid, sop_uid, model_version, inference_job_id, detail,
                 prev_hash]
    hash      = lower-case hex SHA-256 of canonical

`occurred_at` is UTC ISO 8601 with exactly six fractional digits and a "Z"
("2026-11-23T10:11:55.000123Z"); `id`, `outcome`, `user_id` and
`inference_job_id` are integers (the last two may be null); `detail` is a JSON
object with keys sorted and only strings, integers, booleans, null, arrays
and objects inside; every other field is a string, "" when absent. The first
event's `prev_hash` is 64 zeros.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Final

HASH_VERSION: Final = 1
GENESIS_HASH: Final = "0" * 64

# The chained fields in canonical order (after the version number). Exports
# write every one of them under these names, so a third party can re-verify.
CHAINED_FIELDS: Final = (
    "id",
    "occurred_at",
    "event_id",
    "event_type",
    "action",
    "outcome",
    "outcome_reason",
    "user_id",
    "username",
    "role",
    "source_ip",
    "user_agent",
    "session_hash",
    "request_id",
    "patient_id",
    "accession",
    "study_uid",
    "series_uid",
    "sop_uid",
    "model_version",
    "inference_job_id",
    "detail",
    "prev_hash",
)
# A row as exports read it: the chained fields, then the stored hash and format version.
EXPORT_FIELDS: Final = (*CHAINED_FIELDS, "hash", "hash_version")
# Where the two fields that are not plain JSON scalars sit in a chained row.
OCCURRED_AT: Final = CHAINED_FIELDS.index("occurred_at")
DETAIL: Final = CHAINED_FIELDS.index("detail")
PREV_HASH: Final = CHAINED_FIELDS.index("prev_hash")

_encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode
_encode_sorted = json.JSONEncoder(
    ensure_ascii=False, separators=(",", ":"), allow_nan=False, sort_keys=True
).encode


def timestamp_text(moment: datetime) -> str:
    """UTC ISO 8601 with microseconds and "Z": the one text form of an event's time."""
    if moment.tzinfo is None:
        raise ValueError("audit timestamps must be timezone-aware")
    return moment.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


def detail_text(detail: Mapping[str, Any]) -> str:
    """The canonical JSON of an event's detail (sorted keys, no whitespace).

    Floats are refused: their text form differs between databases and
    languages (1e20 comes back from PostgreSQL as 100000000000000000000), which
    would break re-verification. Write them as strings.
    """
    _check_json_types(detail, "detail")
    return _encode_sorted(detail)


def _check_json_types(value: Any, where: str) -> None:
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str):
                raise TypeError(f"audit {where}: keys must be strings, got {type(key).__name__}")
            _check_json_types(item, f"{where}.{key}")
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            _check_json_types(item, f"{where}[{index}]")
    elif value is not None and not isinstance(value, str | int | bool):
        raise TypeError(
            f"audit {where}: {type(value).__name__} is not allowed "
            "(use str, int, bool, None, list or dict; write floats and decimals as strings)"
        )


def canonical_bytes(row: Sequence[Any]) -> bytes:
    """The canonical bytes of one event given as its CHAINED_FIELDS values.

    `occurred_at` may be a datetime or its canonical text; `detail` is the
    canonical JSON text as stored (spliced in as is, not re-encoded).
    """
    values = list(row)
    moment = values[OCCURRED_AT]
    if isinstance(moment, datetime):
        values[OCCURRED_AT] = timestamp_text(moment)
    head = _encode([HASH_VERSION, *values[:DETAIL]])
    return f"{head[:-1]},{values[DETAIL]},{_encode(values[PREV_HASH])}]".encode()


def event_hash(row: Sequence[Any]) -> str:
    """The SHA-256 (hex) of one event's canonical bytes."""
    return hashlib.sha256(canonical_bytes(row)).hexdigest()
