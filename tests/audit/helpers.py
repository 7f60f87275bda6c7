"""Tampering as an attacker would, and an auditor's own hash computation.

Tampering on PostgreSQL first disables the append-only trigger, as someone
with the table owner's rights could; the test's transaction rolls it back.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from django.db import connection

from audit.models import AuditEvent

ROW_TRIGGER = "audit_auditevent_no_update_or_delete"


def tamper(sql: str, params: list[Any] | None = None) -> None:
    """Runs raw SQL against the audit table with its row trigger off (PostgreSQL) for the statement."""
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(f"ALTER TABLE audit_auditevent DISABLE TRIGGER {ROW_TRIGGER}")
        cursor.execute(sql, params or [])
        if connection.vendor == "postgresql":
            cursor.execute(f"ALTER TABLE audit_auditevent ENABLE TRIGGER {ROW_TRIGGER}")


def swap_rows(first: int, second: int) -> None:
    """Exchanges the whole content (hashes included) of two events, keeping their ids."""
    columns = [f.column for f in AuditEvent._meta.fields if f.column != "id"]
    a = AuditEvent.objects.filter(pk=first).values_list(*columns).get()
    b = AuditEvent.objects.filter(pk=second).values_list(*columns).get()
    assignments = ", ".join(f"{column} = %s" for column in columns)
    hash_at = columns.index("hash")
    parked = list(b)
    parked[hash_at] = "parked"  # the hash is unique: park one while the other moves
    update = f"UPDATE audit_auditevent SET {assignments} WHERE id = %s"  # noqa: S608 (our own column names)
    tamper(update, [*parked, first])
    tamper(update, [*a, second])
    tamper("UPDATE audit_auditevent SET hash = %s WHERE id = %s", [b[hash_at], first])


def reference_hash(event: dict[str, Any]) -> str:
    """The hash as docs/operations.md tells an auditor to compute it, written without audit.canonical."""
    names = [
        "id", "occurred_at", "event_id", "event_type", "action", "outcome", "outcome_reason", "user_id",
        "username", "role", "source_ip", "user_agent", "session_hash", "request_id", "patient_id",
        "accession", "study_uid", "series_uid", "sop_uid", "model_version", "inference_job_id", "detail",
        "prev_hash",
    ]  # fmt: skip
    canonical = json.dumps(
        [1, *(event[name] for name in names)], ensure_ascii=False, sort_keys=True, separators=(",", ":")
    )
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()
