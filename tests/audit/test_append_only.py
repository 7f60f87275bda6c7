"""The trail is append-only: the database refuses changes (PostgreSQL) and the admin offers none."""

from __future__ import annotations

import pytest
from django.core.management import call_command
from django.db import DatabaseError, connection, transaction

from audit.models import AuditEvent
from tests.conftest import require_postgresql

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE audit_auditevent SET username = 'someone-else'",
        "DELETE FROM audit_auditevent",
        "TRUNCATE audit_auditevent",
    ],
)
def test_postgresql_refuses_to_change_the_trail(make_events, statement):
    require_postgresql()
    make_events(2)
    verb = statement.split()[0]
    with (
        pytest.raises(DatabaseError, match=f"append-only: {verb} is not allowed"),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute(statement)
    assert AuditEvent.objects.count() == 2
    assert set(AuditEvent.objects.values_list("username", flat=True)) == {"rita"}


def test_the_orm_cannot_change_or_delete_an_event_on_postgresql(make_events):
    require_postgresql()
    event = make_events(1)[0]
    with pytest.raises(DatabaseError), transaction.atomic():
        AuditEvent.objects.filter(pk=event.pk).update(outcome=4)
    with pytest.raises(DatabaseError), transaction.atomic():
        event.delete()
    assert AuditEvent.objects.get(pk=event.pk).outcome == 0


def test_flush_still_empties_the_database_for_tests_and_keeps_the_trigger(make_events):
    require_postgresql()
    make_events(2)
    call_command("flush", interactive=False, verbosity=0)
    assert not AuditEvent.objects.exists()
    with connection.cursor() as cursor:
        cursor.execute("SELECT tgenabled FROM pg_trigger WHERE tgname = 'audit_auditevent_no_truncate'")
        assert cursor.fetchone() == ("O",)  # enabled again


def test_the_django_admin_shows_events_read_only(client, ada, make_events):
    event = make_events(1)[0]
    client.force_login(ada)
    assert client.get("/admin/audit/auditevent/").status_code == 200
    detail = client.get(f"/admin/audit/auditevent/{event.pk}/change/")
    assert detail.status_code == 200
    assert b'name="username"' not in detail.content  # no editable fields
    assert client.get("/admin/audit/auditevent/add/").status_code == 403
    assert client.get(f"/admin/audit/auditevent/{event.pk}/delete/").status_code == 403
    response = client.post(f"/admin/audit/auditevent/{event.pk}/change/", {"username": "x"})
    assert response.status_code == 403
    event.refresh_from_db()
    assert event.username == "rita"


def test_not_even_a_superuser_may_edit_events_in_the_admin(admin_client, make_events):
    event = make_events(1)[0]
    assert admin_client.get("/admin/audit/auditevent/add/").status_code == 403
    assert admin_client.get(f"/admin/audit/auditevent/{event.pk}/delete/").status_code == 403
