"""The admin audit review page: filters, quick filters, keyset pages, htmx partials, exports."""

from __future__ import annotations

import json
import re

import pytest
from django.core.files.storage import default_storage

from audit import services, tasks
from audit.codes import EventID, EventType, Outcome
from audit.models import AuditEvent, AuditExport
from audit.services import audit_record
from reviews.roles import Role
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

USED = EventID.AUDIT_LOG_USED.code


@pytest.fixture
def admin_client(client, ada):
    client.force_login(ada)
    return client


def _ids_on(response) -> list[int]:
    return [int(n) for n in re.findall(r'<td class="num">(\d+)</td>', response.content.decode())]


def test_the_page_lists_the_newest_events_first_and_records_its_use(admin_client, make_events):
    events = make_events(3)
    response = admin_client.get("/audit/")
    assert response.status_code == 200
    assert b"<html" in response.content
    assert _ids_on(response)[:3] == [e.id for e in reversed(events)]
    used = AuditEvent.objects.order_by("-id").first()
    assert (used.event_id, used.username) == (USED, "ada")


@pytest.mark.parametrize(
    ("params", "expected_usernames"),
    [
        ({"username": "rita"}, {"rita"}),
        ({"patient_id": "PAT-2"}, {"bob"}),
        ({"study_uid": "1.2.3.9"}, {"bob"}),
        ({"event_id": EventID.USER_AUTHENTICATION.code, "outcome": "failure"}, {"mallory"}),
        ({"outcome": "4"}, {"mallory"}),
    ],
)
def test_filters_narrow_the_table(admin_client, make_events, login_failure_event, params, expected_usernames):
    make_events(2)
    make_events(2, username="bob", patient_id="PAT-2", study_uid="1.2.3.9")
    response = admin_client.get("/audit/", params)
    ids = _ids_on(response)
    assert ids
    assert set(AuditEvent.objects.filter(id__in=ids).values_list("username", flat=True)) == expected_usernames


def test_a_date_range_takes_whole_days(admin_client, make_events):
    make_events(2)
    today = AuditEvent.objects.first().occurred_at.date().isoformat()
    assert _ids_on(admin_client.get("/audit/", {"since": today, "until": today}))
    assert not _ids_on(admin_client.get("/audit/", {"until": "2000-01-01"}))


@pytest.mark.parametrize(
    "params",
    [
        {"since": "not a date"},
        {"until": "9999-12-31"},  # a day added to it would overflow
        {"since": "0001-01-01T00:00:00+14:00"},  # in UTC it would be before year 1
        {"patient_id": "PAT-9", "since": "2026-13-01"},
        {"since": "2026-12-07", "until": "2026-12-06"},  # To before From
    ],
)
def test_a_bad_filter_is_explained_and_offers_no_export(admin_client, make_events, params):
    make_events(2)
    response = admin_client.get("/audit/", params)
    assert response.status_code == 400
    assert b"Correct the filter" in response.content
    # Exporting "these events" of a filter that does not hold would export the whole trail.
    assert b"/audit/export/" not in response.content
    assert b"Prepare large export" not in response.content
    partial = admin_client.get("/audit/", params, HTTP_HX_REQUEST="true")
    assert partial.status_code == 200  # htmx swaps the explanation into the page
    assert b"Correct the filter" in partial.content


def test_a_date_outside_the_years_a_filter_can_mean_is_refused_everywhere(admin_client, make_events):
    make_events(2)
    exports_before = AuditExport.objects.count()
    for since in ("0001-01-01T00:00:00+14:00", "1899-12-31"):
        assert b"from the year 1900 to 9000" in admin_client.get("/audit/", {"since": since}).content
        download = admin_client.get("/audit/export/csv/", {"since": since})
        assert download.status_code == 400
        assert b"from the year 1900 to 9000" in download.content
        queued = admin_client.post("/audit/exports/", {"export_format": "jsonl", "since": since})
        assert queued.status_code == 400
        assert b"since" in queued.content
        assert admin_client.get("/api/v1/audit/events/", {"until": "9999-12-31"}).status_code == 400
    assert AuditExport.objects.count() == exports_before
    assert admin_client.get("/audit/").status_code == 200  # and the page goes on serving


def test_to_before_from_is_pointed_out_and_one_day_is_from_and_to_the_same_date(admin_client, make_events):
    make_events(1)
    response = admin_client.get("/audit/", {"since": "2026-12-07", "until": "2026-12-06"})
    assert b"To: is before From" in response.content
    assert (
        admin_client.get("/api/v1/audit/events/", {"since": "2026-12-07", "until": "2026-12-06"}).status_code
        == 400
    )
    assert admin_client.get("/audit/", {"since": "2026-12-07", "until": "2026-12-07"}).status_code == 200


def test_a_background_export_in_an_unknown_format_says_which_formats_there_are(admin_client):
    response = admin_client.post("/audit/exports/", {"export_format": "xls"})
    assert response.status_code == 400
    assert b"export_format must be one of csv" in response.content


def test_paging_ids_that_are_not_ids_are_ignored(admin_client, make_events):
    make_events(2)
    for value in ("\u00b2", "99999999999999999999999", "-1"):
        assert admin_client.get("/audit/", {"before": value}).status_code == 200


def test_quick_filters_are_offered(admin_client):
    content = admin_client.get("/audit/").content.decode()
    for label in (
        "One patient&#x27;s access history",
        "One user&#x27;s activity",
        "Failed sign-ins",
        "Exports",
    ):
        assert label in content
    assert f"event_id={EventID.USER_AUTHENTICATION.code}&amp;outcome=failure" in content
    assert f"event_id={EventID.EXPORT.code}" in content


def test_pages_go_older_and_back_newer_by_keyset(admin_client, make_events):
    make_events(120, username="bulk")
    first = admin_client.get("/audit/", {"username": "bulk"})
    page_one = _ids_on(first)
    assert len(page_one) == 50
    assert page_one == sorted(page_one, reverse=True)
    older = re.search(r'href="\?username=bulk&amp;before=(\d+)"', first.content.decode())
    assert "&amp;after=" not in first.content.decode()  # the newest page has no newer link
    page_two = _ids_on(admin_client.get("/audit/", {"username": "bulk", "before": older.group(1)}))
    assert page_two[0] == page_one[-1] - 1
    last = admin_client.get("/audit/", {"username": "bulk", "before": page_two[-1]})
    assert len(_ids_on(last)) == 20
    assert "before=" not in last.content.decode().split('class="pager"')[1]
    back = _ids_on(admin_client.get("/audit/", {"username": "bulk", "after": page_two[0]}))
    assert back == page_one


def test_an_htmx_request_gets_only_the_results_partial(admin_client, make_events):
    make_events(2)
    response = admin_client.get("/audit/", {"username": "rita"}, HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    assert b"<html" not in response.content
    assert response.content.lstrip().startswith(b'<div id="audit-results">')
    assert len(_ids_on(response)) == 2


def test_the_page_has_no_inline_styles_or_scripts(admin_client, make_events):
    make_events(1)
    content = admin_client.get("/audit/").content.decode()
    assert "style=" not in content
    assert re.findall(r"<script[^>]*>", content) == [
        '<script src="/static/dist/htmx.min.js" defer>',
        '<script type="module" src="/static/dist/overread.js">',
    ]


def test_only_admins_see_the_audit_link(client, rita, ada):
    client.force_login(rita)
    assert b'href="/audit/"' not in client.get("/").content
    client.force_login(ada)
    assert b'href="/audit/"' in client.get("/").content


def test_export_buttons_carry_the_current_filter(admin_client, make_events):
    make_events(1)
    content = admin_client.get("/audit/", {"patient_id": "PAT-1"}).content.decode()
    for export_format in ("csv", "jsonl", "fhir", "syslog"):
        assert f'href="/audit/export/{export_format}/?patient_id=PAT-1"' in content
    assert '<input type="hidden" name="patient_id" value="PAT-1">' in content


def test_a_direct_export_streams_and_is_recorded_as_export_and_audit_log_used(admin_client, make_events):
    make_events(3)
    make_events(2, patient_id="PAT-9")
    response = admin_client.get("/audit/export/jsonl/", {"patient_id": "PAT-9"})
    assert response.status_code == 200
    assert response.streaming
    assert response["Content-Disposition"].startswith('attachment; filename="overread-audit-')
    lines = b"".join(response.streaming_content).decode().splitlines()
    assert [json.loads(line)["patient_id"] for line in lines] == ["PAT-9", "PAT-9"]
    export, used = AuditEvent.objects.order_by("-id")[:2][::-1]
    assert (export.event_id, used.event_id) == (EventID.EXPORT.code, USED)
    assert export.username == "ada"
    assert export.detail_data["filters"] == {"patient_id": "PAT-9"}


def test_an_export_that_breaks_while_streaming_is_recorded_as_failed(admin_client, make_events, monkeypatch):
    make_events(2)

    def breaking(format_, rows):
        yield "first line\n"
        raise OSError("the connection to the database was lost")

    monkeypatch.setattr(services.exports, "export_chunks", breaking)
    response = admin_client.get("/audit/export/csv/")
    with pytest.raises(OSError, match="connection to the database was lost"):
        b"".join(response.streaming_content)
    failed = AuditEvent.objects.order_by("-id").first()
    assert (failed.event_id, failed.outcome) == (EventID.EXPORT.code, Outcome.SERIOUS_FAILURE)
    assert failed.outcome_reason == "the export stopped while streaming: OSError"
    assert failed.detail_data["format"] == "csv"


def test_an_unknown_format_is_not_found(admin_client):
    assert admin_client.get("/audit/export/xls/").status_code == 404


def test_a_background_export_shows_progress_then_a_download(
    admin_client, make_events, django_capture_on_commit_callbacks
):
    make_events(30)
    with django_capture_on_commit_callbacks() as callbacks:
        response = admin_client.post(
            "/audit/exports/", {"export_format": "csv", "username": "rita"}, HTTP_HX_REQUEST="true"
        )
    assert response.status_code == 200
    assert len(callbacks) == 1  # the task is sent only once the request's transaction commits
    export = AuditExport.objects.get()
    assert 'hx-trigger="every 1s"' in response.content.decode()  # the partial polls itself
    assert AuditEvent.objects.order_by("-id").first().event_id == USED

    tasks.audit_export_run(export_pk=export.pk)
    tasks.audit_export_run(export_pk=export.pk)  # a redelivery changes nothing
    export.refresh_from_db()
    assert (export.status, export.total, export.written) == ("done", 30, 30)

    status = admin_client.get(f"/audit/exports/{export.pk}/", HTTP_HX_REQUEST="true").content.decode()
    assert "hx-trigger" not in status  # finished: polling stops
    assert f'href="/audit/exports/{export.pk}/download/"' in status
    download = admin_client.get(f"/audit/exports/{export.pk}/download/")
    assert len(b"".join(download.streaming_content).decode().splitlines()) == 31  # header + 30
    assert AuditEvent.objects.order_by("-id").first().event_id == EventID.EXPORT.code
    default_storage.delete(export.file_name)


def test_the_same_export_asked_for_twice_while_it_is_written_is_made_once(admin_client, make_events):
    make_events(3)
    ask = {"export_format": "csv", "username": "rita"}
    first = admin_client.post("/audit/exports/", ask, HTTP_HX_REQUEST="true")
    again = admin_client.post("/audit/exports/", ask, HTTP_HX_REQUEST="true")  # a double click
    assert (first.status_code, again.status_code) == (200, 204)  # nothing more to show
    assert AuditExport.objects.count() == 1
    other = admin_client.post("/audit/exports/", {**ask, "export_format": "jsonl"}, HTTP_HX_REQUEST="true")
    assert other.status_code == 200
    assert AuditExport.objects.count() == 2  # another format is another export
    AuditExport.objects.update(status=AuditExport.Status.DONE)
    admin_client.post("/audit/exports/", ask, HTTP_HX_REQUEST="true")
    assert AuditExport.objects.count() == 3  # asked again once the first is done: a new one


def test_a_background_export_is_only_for_the_admin_who_asked(admin_client, make_events):
    make_events(1)
    admin_client.post("/audit/exports/", {"export_format": "jsonl"})
    export = AuditExport.objects.get()
    other = UserFactory(username="otto", role=Role.ADMIN)
    admin_client.force_login(other)
    assert admin_client.get(f"/audit/exports/{export.pk}/").status_code == 404


def test_the_api_lists_events_with_keyset_paging_and_records_its_use(admin_client, make_events):
    make_events(5, username="api-user")
    body = admin_client.get("/api/v1/audit/events/", {"username": "api-user", "limit": 2}).json()
    assert len(body["results"]) == 2
    assert body["newer_than"] is None
    first = body["results"][0]
    assert first["detail"] == {"n": 4, "note": "ünïcode ✓"}
    assert len(first["hash"]) == 64
    more = admin_client.get(
        "/api/v1/audit/events/", {"username": "api-user", "before": body["older_than"]}
    ).json()
    assert [r["detail"]["n"] for r in more["results"]] == [2, 1, 0]
    assert AuditEvent.objects.order_by("-id").first().event_id == USED


def test_the_api_rejects_a_bad_filter(admin_client):
    assert admin_client.get("/api/v1/audit/events/", {"outcome": "7"}).status_code == 400


def test_the_api_export_streams_a_format_for_admins(admin_client, make_events):
    make_events(2)
    response = admin_client.get("/api/v1/audit/events/export/fhir/")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/fhir+json")
    document = json.loads(b"".join(response.streaming_content))
    assert len(document["entry"]) >= 2


def test_a_security_alert_is_shown_as_a_failure(admin_client):
    audit_record(
        event=EventID.SECURITY_ALERT,
        event_type=EventType.USE_OF_RESTRICTED_FUNCTION,
        action="E",
        outcome=Outcome.MINOR_FAILURE,
        username="eve",
    )
    content = admin_client.get("/audit/", {"username": "eve"}).content.decode()
    assert '<tr class="failed">' in content
    assert "Use of Restricted Function" in content


def test_an_export_whose_worker_died_is_finished_by_the_redelivered_task(admin_client, make_events):
    make_events(5)
    admin_client.post("/audit/exports/", {"export_format": "jsonl"}, HTTP_HX_REQUEST="true")
    export = AuditExport.objects.get()
    # The first run claimed it, then its worker died: the row says "running" and nothing is written.
    AuditExport.objects.filter(pk=export.pk).update(status="running", claimed_by="task-1")

    services.audit_export_write(export_pk=export.pk, task_id="task-2")  # another delivery: no
    export.refresh_from_db()
    assert export.status == "running"

    services.audit_export_write(export_pk=export.pk, task_id="task-1")  # the redelivery: yes
    export.refresh_from_db()
    assert export.status == "done"
    assert export.written == export.total == AuditEvent.objects.filter(id__lte=export.up_to_id).count()
    default_storage.delete(export.file_name)
