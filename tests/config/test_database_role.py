"""The application's database role of docs/security.md ("The database role"), run as written:
Overread works under it, and PostgreSQL's privileges (not only the triggers) keep the audit
trail, decisions and reference standards append-only.

The role is created inside the test's transaction, so it is gone when the test rolls back.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from django.db import connection, transaction
from django.db.utils import ProgrammingError

from audit.codes import EventID
from audit.models import AuditEvent
from audit.services import audit_record
from viewer.models import Patient

pytestmark = pytest.mark.django_db

DOC = Path(__file__).resolve().parents[2] / "docs" / "security.md"
APPEND_ONLY = ("audit_auditevent", "reviews_decision", "reviews_referencestandard")


def _documented_statements(role: str, database: str) -> list[str]:
    text = DOC.read_text()
    block = re.search(r"^## The database role\n.*?```sql\n(.*?)```", text, re.DOTALL | re.MULTILINE)
    assert block is not None, "docs/security.md has no SQL block under 'The database role'"
    sql = re.sub(r"^--.*$", "", block.group(1), flags=re.MULTILINE)
    sql = re.sub(r"\boverread_app\b", role, sql)
    sql = re.sub(r"DATABASE overread\b", f'DATABASE "{database}"', sql)
    return [statement.strip() for statement in sql.split(";") if statement.strip()]


@pytest.fixture
def as_app_role():
    """Runs the documented statements, then switches this transaction to the role."""
    if connection.vendor != "postgresql":
        pytest.skip("database roles are PostgreSQL's; this run uses the embedded SQLite default")
    role = f"overread_app_test_{os.getpid()}"
    statements = _documented_statements(role, connection.settings_dict["NAME"])
    assert any(s.startswith("REVOKE UPDATE, DELETE, TRUNCATE") for s in statements)
    with connection.cursor() as cursor:
        for statement in statements:
            cursor.execute(statement)
        cursor.execute(f"SET LOCAL ROLE {role}")  # until the test's transaction ends
    return role


def _refused(sql: str) -> str:
    with pytest.raises(ProgrammingError) as refusal, transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(sql)
    return str(refusal.value)


def test_overread_records_and_writes_as_the_application_role(as_app_role):
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_user")
        assert cursor.fetchone() == (as_app_role,)
    event = audit_record(event=EventID.APPLICATION_ACTIVITY, action="E", username="system:test")
    assert AuditEvent.objects.filter(pk=event.pk).exists()
    patient = Patient.objects.create(patient_id="ROLE-1", name="Test^Role")
    patient.name = "Test^Renamed"
    patient.save()
    patient.delete()


@pytest.mark.parametrize("table", APPEND_ONLY)
@pytest.mark.parametrize(
    "statement",
    ["UPDATE {table} SET id = id WHERE false", "DELETE FROM {table} WHERE false", "TRUNCATE {table}"],
)
def test_the_role_may_not_change_the_append_only_tables(as_app_role, table, statement):
    # WHERE false: no row is touched, so no trigger fires; only the privilege check can refuse.
    assert f"permission denied for table {table}" in _refused(statement.format(table=table))


def test_the_role_may_read_and_add_to_the_append_only_tables(as_app_role):
    with connection.cursor() as cursor:
        for table in APPEND_ONLY:
            cursor.execute(f"SELECT count(*) FROM {table}")  # noqa: S608 (fixed names)
            assert cursor.fetchone() is not None
            cursor.execute("SELECT has_table_privilege(%s, %s, 'INSERT')", [as_app_role, table])
            assert cursor.fetchone() == (True,)
