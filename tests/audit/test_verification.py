"""verify_audit finds every kind of tampering, on SQLite and on PostgreSQL alike."""

from __future__ import annotations

import pytest
from django.core.management import CommandError, call_command

from audit import tasks
from audit.canonical import event_hash
from audit.codes import EventID, EventType, Outcome
from audit.models import AuditEvent
from audit.services import audit_record
from audit.verification import audit_chain_verify
from tests.audit.helpers import swap_rows, tamper

pytestmark = pytest.mark.django_db


def _verify_fails_at(event_id: int, capsys) -> str:
    with pytest.raises(CommandError) as failure:
        call_command("verify_audit")
    assert failure.value.returncode == 1
    message = str(failure.value)
    assert f"broken at event {event_id}:" in message
    return message


def test_an_intact_chain_passes_with_its_count_and_head(make_events, capsys):
    events = make_events(5)
    call_command("verify_audit")
    out = capsys.readouterr().out
    assert "audit trail intact: 5 events" in out
    assert f"head {events[-1].id} {events[-1].hash}" in out


def test_an_empty_trail_is_intact(db, capsys):
    call_command("verify_audit")
    assert "audit trail intact: 0 events" in capsys.readouterr().out


def test_it_detects_an_edited_row(make_events, capsys):
    events = make_events(5)
    tamper("UPDATE audit_auditevent SET patient_id = %s WHERE id = %s", ["PAT-OTHER", events[2].id])
    message = _verify_fails_at(events[2].id, capsys)
    assert "edited" in message


def test_it_detects_an_edit_whose_hash_was_recomputed(make_events, capsys):
    events = make_events(5)
    target = events[2]
    row = list(AuditEvent.objects.filter(pk=target.pk).values_list(*_chained()).get())
    row[_chained().index("username")] = "someone-else"
    tamper(
        "UPDATE audit_auditevent SET username = %s, hash = %s WHERE id = %s",
        ["someone-else", event_hash(row), target.id],
    )
    _verify_fails_at(events[3].id, capsys)  # the next event still points at the old hash


def test_it_detects_a_deleted_row(make_events, capsys):
    events = make_events(5)
    tamper("DELETE FROM audit_auditevent WHERE id = %s", [events[1].id])
    message = _verify_fails_at(events[2].id, capsys)
    assert "deleted" in message


def test_it_detects_the_first_row_deleted(make_events, capsys):
    events = make_events(3)
    tamper("DELETE FROM audit_auditevent WHERE id = %s", [events[0].id])
    _verify_fails_at(events[1].id, capsys)


def test_it_detects_two_swapped_rows(make_events, capsys):
    events = make_events(5)
    swap_rows(events[1].id, events[3].id)
    _verify_fails_at(events[1].id, capsys)


def test_it_detects_neighbours_swapped(make_events, capsys):
    events = make_events(4)
    swap_rows(events[2].id, events[3].id)
    _verify_fails_at(events[2].id, capsys)


def test_it_detects_a_forged_event_inserted_before_the_others(make_events, capsys):
    events = make_events(3)
    # A self-consistent event (its own hash is right) slipped in ahead of the first.
    row = list(AuditEvent.objects.filter(pk=events[0].pk).values_list(*_chained()).get())
    row[0] = events[0].id - 1
    row[_chained().index("username")] = "forger"
    columns = ", ".join(f.column for f in AuditEvent._meta.fields)
    values = dict(zip(_chained(), row, strict=True))
    values.update(hash=event_hash(row), hash_version=1)
    ordered = [values[f.attname] for f in AuditEvent._meta.fields]
    tamper(f"INSERT INTO audit_auditevent ({columns}) VALUES ({', '.join(['%s'] * len(ordered))})", ordered)  # noqa: S608
    _verify_fails_at(events[0].id, capsys)


def test_it_detects_an_old_event_replayed_at_the_end(make_events, capsys):
    events = make_events(3)
    replay = AuditEvent.objects.filter(pk=events[0].pk).values().get()
    replay.update(id=events[-1].id + 1, hash="f" * 64)
    AuditEvent.objects.create(**replay)
    _verify_fails_at(events[-1].id + 1, capsys)


def test_the_report_stops_at_the_first_bad_event(make_events):
    events = make_events(6)
    tamper(
        "UPDATE audit_auditevent SET outcome_reason = 'x' WHERE id IN (%s, %s)", [events[2].id, events[4].id]
    )
    report = audit_chain_verify(chunk_size=2)
    assert not report.intact
    assert report.first_bad_id == events[2].id
    assert report.count == 3


def test_the_periodic_check_raises_a_security_alert_when_the_chain_is_broken(make_events):
    events = make_events(4)
    tamper("DELETE FROM audit_auditevent WHERE id = %s", [events[1].id])
    tasks.audit_chain_check()
    alert = AuditEvent.objects.order_by("-id").first()
    assert (alert.event_id, alert.event_type) == (
        EventID.SECURITY_ALERT.code,
        EventType.OBJECT_SECURITY_ATTRIBUTES_CHANGED.code,
    )
    assert alert.outcome == Outcome.MAJOR_FAILURE
    assert alert.detail_data["first_bad_id"] == events[2].id
    assert str(events[2].id) in alert.outcome_reason


def test_the_periodic_check_records_nothing_when_the_chain_is_intact(make_events):
    make_events(3)
    tasks.audit_chain_check()
    assert not AuditEvent.objects.filter(event_id=EventID.SECURITY_ALERT.code).exists()


def _chained() -> list[str]:
    from audit.canonical import CHAINED_FIELDS

    return list(CHAINED_FIELDS)


ODD_TEXT = 'quote" back\\slash ]bracket ünï 😀 \u2028 \x7f'


def _insert_raw(values: dict) -> None:
    """Stores an event exactly as given (hash computed by audit.canonical), bypassing the service."""
    from django.db import connection

    from audit.canonical import CHAINED_FIELDS as names

    values["hash"] = event_hash([values[name] for name in names])
    values["hash_version"] = 1
    stored = {**values, "occurred_at": connection.ops.adapt_datetimefield_value(values["occurred_at"])}
    columns = list(stored)
    placeholders = ", ".join(["%s"] * len(columns))
    insert = f"INSERT INTO audit_auditevent ({', '.join(columns)}) VALUES ({placeholders})"  # noqa: S608
    with connection.cursor() as cursor:
        cursor.execute(insert, [stored[c] for c in columns])


def test_odd_characters_in_every_field_verify_on_this_database(db):
    from datetime import UTC, datetime

    from audit.canonical import GENESIS_HASH, detail_text

    text_fields = [
        "outcome_reason", "username", "role", "source_ip", "user_agent", "session_hash",
        "request_id", "patient_id", "accession", "study_uid", "series_uid", "sop_uid", "model_version",
    ]  # fmt: skip
    first = {
        name: ODD_TEXT + "\x01\t\n" for name in text_fields
    }  # control characters: only by bypassing the service
    first.update(
        id=1,
        occurred_at=datetime(2026, 11, 23, 10, 0, 0, tzinfo=UTC),  # whole second: stored without a fraction
        event_id="110112",
        event_type='1"\\\x02',
        action="E",
        outcome=0,
        user_id=None,
        inference_job_id=None,
        detail=detail_text({"text": ODD_TEXT + "\x00", "nested": {"b": [1, None, True], "a": "x"}}),
        prev_hash=GENESIS_HASH,
    )
    _insert_raw(first)
    second = {**first, "id": 2, "user_id": 5, "inference_job_id": 9, "prev_hash": first["hash"]}
    second["occurred_at"] = datetime(2026, 11, 23, 10, 0, 0, 120, tzinfo=UTC)
    _insert_raw(second)
    from audit.services import audit_record

    audit_record(event=EventID.QUERY, action="E", username=ODD_TEXT, detail={"q": ODD_TEXT})
    report = audit_chain_verify()
    assert report.intact, report.problem
    assert report.count == 3


def test_postgresql_builds_the_same_canonical_bytes_as_python(make_events):
    from django.db import connection

    from audit.canonical import CHAINED_FIELDS, canonical_bytes
    from audit.verification import POSTGRESQL_CANONICAL
    from tests.conftest import require_service

    require_service(connection.vendor == "postgresql", "PostgreSQL", "set DATABASE_URL=postgres://...")
    make_events(2, username=ODD_TEXT, outcome_reason="a\\b")
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT id, {POSTGRESQL_CANONICAL} FROM audit_auditevent ORDER BY id")  # noqa: S608
        from_sql = dict(cursor.fetchall())
    for event in AuditEvent.objects.values_list(*CHAINED_FIELDS):
        assert from_sql[event[0]].encode() == canonical_bytes(event)


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("broken", ["intact", "edited", "deleted"])
def test_processes_sharing_a_long_chain_agree_with_one_process(broken, monkeypatch):
    """Splitting the check over processes (SQLite's path) finds what a single pass finds."""
    from audit import verification_sqlite

    for number in range(40):
        audit_record(event=EventID.QUERY, action="E", username=f"user{number}", detail={"n": number})
    victim = AuditEvent.objects.order_by("id")[29]
    if broken == "edited":
        tamper("UPDATE audit_auditevent SET username = 'mallory' WHERE id = %s", [victim.id])
    elif broken == "deleted":
        tamper("DELETE FROM audit_auditevent WHERE id = %s", [victim.id])
    single = audit_chain_verify(workers=1)
    monkeypatch.setattr(verification_sqlite, "PARALLEL_MIN_EVENTS", 1)
    for workers in (2, 3):
        split = audit_chain_verify(workers=workers)
        assert (split.count, split.first_bad_id, split.problem, split.head_id) == (
            single.count,
            single.first_bad_id,
            single.problem,
            single.head_id,
        )
    assert single.intact == (broken == "intact")
