"""audit_record: one chained row per event, with who, from where and what."""

from __future__ import annotations

import hashlib
import threading

import pytest
from django.db import connection
from django.test import RequestFactory

from audit.canonical import GENESIS_HASH
from audit.codes import EventID, EventType
from audit.models import AuditEvent
from audit.services import audit_record
from audit.verification import audit_chain_verify
from tests.audit.helpers import reference_hash

pytestmark = pytest.mark.django_db


def _as_dict(event: AuditEvent) -> dict:
    values = AuditEvent.objects.filter(pk=event.pk).values().get()
    values["occurred_at"] = event.occurred_at.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    values["detail"] = event.detail_data
    return values


def test_each_event_links_to_the_hash_of_the_one_before(make_events):
    first, second, third = make_events(3)
    assert first.prev_hash == GENESIS_HASH
    assert second.prev_hash == first.hash
    assert third.prev_hash == second.hash
    assert [e.id for e in (first, second, third)] == [first.id, first.id + 1, first.id + 2]


def test_the_stored_hash_is_the_documented_sha256_of_the_canonical_form(make_events):
    for event in make_events(2):
        event.refresh_from_db()
        assert event.hash == reference_hash(_as_dict(event))


def test_the_request_gives_address_agent_request_id_and_only_a_hash_of_the_session(client, rita):
    client.force_login(rita)
    session_key = client.session.session_key
    response = client.get("/", HTTP_USER_AGENT="Firefox/140", HTTP_X_REQUEST_ID="req-0123456789")
    request = response.wsgi_request
    event = audit_record(event=EventID.QUERY, action="E", request=request)
    assert event.user_id == rita.pk
    assert event.username == "rita"
    assert event.role == "radiologist"
    assert event.source_ip == "127.0.0.1"
    assert event.user_agent == "Firefox/140"
    assert event.request_id == "req-0123456789" == response["X-Request-ID"]
    assert event.session_hash == hashlib.sha256(session_key.encode()).hexdigest()
    stored = AuditEvent.objects.filter(pk=event.pk).values().get()
    assert session_key not in str(stored)


def test_a_malformed_request_id_is_replaced_by_a_fresh_one(rita):
    request = RequestFactory().get("/", HTTP_X_REQUEST_ID="bad id\nwith newline")
    request.user = rita
    event = audit_record(event=EventID.QUERY, action="E", request=request)
    assert len(event.request_id) == 32
    assert "\n" not in event.request_id


def test_behind_the_proxy_the_address_the_proxy_saw_is_recorded(rita, settings):
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    request = RequestFactory().get(
        "/", REMOTE_ADDR="10.0.0.2", HTTP_X_FORWARDED_FOR="6.6.6.6, 2001:DB8::0001"
    )
    request.user = rita
    assert audit_record(event=EventID.QUERY, action="E", request=request).source_ip == "2001:db8::1"


def test_control_characters_cannot_break_an_export_line():
    event = audit_record(
        event=EventID.QUERY, action="E", username="eve\r\nforged line", outcome_reason="a\x00b"
    )
    assert event.username == "eve\ufffd\ufffdforged line"
    assert event.outcome_reason == "a\ufffdb"


def test_floats_in_detail_are_refused_because_they_do_not_round_trip():
    with pytest.raises(TypeError, match="write floats and decimals as strings"):
        audit_record(event=EventID.QUERY, action="E", detail={"probability": 0.87})
    assert not AuditEvent.objects.exists()


def test_detail_is_stored_as_canonical_json():
    event = audit_record(event=EventID.QUERY, action="E", detail={"b": [1, "ü"], "a": {"y": None, "x": True}})
    assert event.detail == '{"a":{"x":true,"y":null},"b":[1,"ü"]}'


def test_the_model_version_and_job_are_kept_for_ai_events():
    event = audit_record(
        event=EventID.APPLICATION_ACTIVITY,
        event_type=EventType.LOCAL_SERVICE_STARTED,
        action="E",
        username="system:worker",
        model_version="lesion-unet 1.2.0",
        inference_job_id=42,
        study_uid="1.2.3",
    )
    event.refresh_from_db()
    assert (event.model_version, event.inference_job_id) == ("lesion-unet 1.2.0", 42)
    assert event.hash == reference_hash(_as_dict(event))


@pytest.mark.django_db(transaction=True)
def test_concurrent_writers_never_fork_the_chain():
    """Threads with their own database connections record at once; the chain stays one line."""
    writers, per_writer = 8, 15
    start = threading.Barrier(writers)
    failures: list[BaseException] = []

    def write(n: int) -> None:
        try:
            start.wait()
            for i in range(per_writer):
                audit_record(event=EventID.QUERY, action="E", username=f"writer{n}", detail={"i": i})
        except BaseException as exc:  # reported below, in the test's thread
            failures.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=write, args=(n,)) for n in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert failures == []
    rows = list(AuditEvent.objects.order_by("id").values_list("id", "prev_hash", "hash"))
    assert len(rows) == writers * per_writer
    assert [r[0] for r in rows] == list(range(rows[0][0], rows[0][0] + len(rows)))
    assert len({r[1] for r in rows}) == len(rows)  # no two events claim the same predecessor
    report = audit_chain_verify()
    assert report.intact, report.problem
    assert report.count == writers * per_writer
