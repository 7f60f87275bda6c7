"""`manage.py flush`, able to empty the append-only audit table on PostgreSQL.

Django's test framework (and pytest-django) empties the database between
transactional tests with this command, as TRUNCATE, which the audit table's
trigger refuses. This override switches that one trigger off for the flush,
inside the flush's transaction, so the trigger is back on whatever happens.
Doing so takes the table owner's rights: the production application role
(INSERT and SELECT only, docs/operations.md) cannot flush the audit trail.
"""

from __future__ import annotations

from typing import Any

from django.core.management.commands import flush
from django.db import connections, transaction

TRUNCATE_TRIGGER = "audit_auditevent_no_truncate"


class Command(flush.Command):
    def handle(self, **options: Any) -> None:
        database = options["database"]
        connection = connections[database]
        if connection.vendor != "postgresql" or not _has_trigger(connection):
            super().handle(**options)
            return
        with transaction.atomic(using=database), connection.cursor() as cursor:
            cursor.execute(f"ALTER TABLE audit_auditevent DISABLE TRIGGER {TRUNCATE_TRIGGER}")
            super().handle(**options)
            cursor.execute(f"ALTER TABLE audit_auditevent ENABLE TRIGGER {TRUNCATE_TRIGGER}")


def _has_trigger(connection: Any) -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_trigger WHERE tgname = %s", [TRUNCATE_TRIGGER])
        return cursor.fetchone() is not None
