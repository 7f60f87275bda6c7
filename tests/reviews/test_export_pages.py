"""The feedback export pages: an admin asks for an export with filters, watches its progress
(an htmx partial that stops polling when done), downloads the zip; nobody else may."""

from __future__ import annotations

import datetime as dt
import io
import json
import zipfile

import pytest
from django.utils import timezone

from audit.models import AuditEvent
from reviews.models import FeedbackExport, ReadingProject
from reviews.roles import Role
from reviews.services import feedback_export_build
from tests.factories import UserFactory
from tests.reviews.helpers import api

pytestmark = pytest.mark.django_db
DENIED = "110113"  # Security Alert: Use of Restricted Function
EXPORT = "110106"


@pytest.fixture
def submitted(in_project, rita):
    """Rita's submitted reading: both AI findings accepted and one finding added by box."""
    client = api(rita)
    reading = client.post(
        "/api/v1/readings/", {"study_uid": in_project.study.study_uid}, format="json"
    ).json()
    url = f"/api/v1/readings/{reading['id']}/"
    version = client.post(url + "lock/", {"version": 1}, format="json").json()["version"]
    for body in (
        {"kind": "accepted", "finding": 1, "confidence": 5},
        {"kind": "accepted", "finding": 2, "confidence": 4},
        {"kind": "added", "label": "nodule", "confidence": 2, "bbox": [[3, 5], [20, 26], [30, 34]]},
    ):
        response = client.post(url + "decisions/", {"version": version, **body}, format="json")
        assert response.status_code == 201, response.content
        version = response.json()["version"]
    response = client.post(url + "submit/", {"version": version, "triage_agreement": "agree"}, format="json")
    assert response.status_code == 200, response.content
    return in_project


@pytest.fixture
def admin_client(client, ada):
    client.force_login(ada)
    return client


def _midnight(day: dt.date) -> str:
    return timezone.make_aware(dt.datetime.combine(day, dt.time())).isoformat()


def _ask(admin_client, django_capture_on_commit_callbacks, **fields) -> FeedbackExport:
    with django_capture_on_commit_callbacks() as callbacks:
        response = admin_client.post("/feedback/", fields)
    export = FeedbackExport.objects.get()
    assert response.status_code == 302
    assert response["Location"] == f"/feedback/{export.pk}/"
    assert len(callbacks) == 1  # the build is sent once the request's transaction commits
    return export


def test_the_form_offers_the_projects_models_and_decision_kinds(admin_client, submitted, project):
    content = admin_client.get("/feedback/").content.decode()
    assert f'<option value="{project.pk}">Chest CT second reading</option>' in content
    assert '<option value="demo-unet:1.0.0">demo-unet:1.0.0</option>' in content
    for kind in ("accepted", "edited", "overridden", "added", "withdrawn"):
        assert f'<option value="{kind}">' in content
    assert 'type="checkbox" name="reference"' in content
    assert "No exports yet." in content


def test_the_form_queues_an_export_with_the_chosen_filters(
    admin_client, submitted, project, django_capture_on_commit_callbacks
):
    today = timezone.localdate()
    export = _ask(
        admin_client,
        django_capture_on_commit_callbacks,
        project=project.pk,
        model="demo-unet:1.0.0",
        since=today.isoformat(),
        until=today.isoformat(),
        decision="accepted",
    )
    assert export.filters == {
        "project": str(project.pk),
        "model": "demo-unet:1.0.0",
        "since": _midnight(today),
        "until": _midnight(today + dt.timedelta(days=1)),  # "To" takes the whole day
        "decision": "accepted",
    }
    assert export.requested_by.username == "ada"
    assert export.status == "queued"


def test_the_reference_box_asks_for_the_reference_standards(
    admin_client, db, django_capture_on_commit_callbacks
):
    consensus = ReadingProject.objects.create(
        name="Nodules", kind=ReadingProject.Kind.CONSENSUS, reads_per_case=2
    )
    export = _ask(admin_client, django_capture_on_commit_callbacks, project=consensus.pk, reference="on")
    assert export.filters == {"project": str(consensus.pk), "reference": "1"}


def test_the_status_page_shows_progress_then_the_download(
    admin_client, submitted, django_capture_on_commit_callbacks
):
    today = timezone.localdate().isoformat()
    export = _ask(
        admin_client, django_capture_on_commit_callbacks, since=today, until=today, decision="accepted"
    )
    page = admin_client.get(f"/feedback/{export.pk}/").content.decode()
    assert "Feedback export #" in page
    assert 'hx-trigger="every 2s"' in page  # the partial polls itself while queued
    assert "Queued…" in page

    feedback_export_build(export_pk=export.pk)
    export.refresh_from_db()
    assert (export.status, export.total, export.written) == ("done", 2, 2)  # today's accepted ones

    done = admin_client.get(f"/feedback/{export.pk}/", HTTP_HX_REQUEST="true")
    assert done.status_code == 286  # htmx stops polling
    assert done["Content-Type"].startswith("text/html")
    partial = done.content.decode()
    assert "hx-trigger" not in partial
    link = f"/api/v1/feedback/exports/{export.pk}/file/"
    assert f'href="{link}"' in partial
    assert "Download the zip (2 decisions)" in partial

    exports_before = AuditEvent.objects.filter(event_id=EXPORT).count()
    download = admin_client.get(link)
    assert download.status_code == 200
    archive = zipfile.ZipFile(io.BytesIO(b"".join(download.streaming_content)))
    lines = [json.loads(line) for line in archive.read("feedback/manifest.jsonl").decode().splitlines()]
    assert [line["decision"] for line in lines] == ["accepted", "accepted"]
    assert AuditEvent.objects.filter(event_id=EXPORT).count() == exports_before + 1

    listed = admin_client.get("/feedback/").content.decode()
    assert f'href="/feedback/{export.pk}/"' in listed
    assert f'href="{link}"' in listed
    assert "2 of 2" in listed


def test_a_running_export_shows_how_far_it_got(admin_client, ada):
    export = FeedbackExport.objects.create(requested_by=ada, status="running", total=40, written=25)
    response = admin_client.get(f"/feedback/{export.pk}/", HTTP_HX_REQUEST="true")
    assert response.status_code == 200  # htmx keeps polling
    partial = response.content.decode()
    assert partial.lstrip().startswith('<div class="export-status"')  # only the partial
    assert '<progress value="25" max="40"' in partial
    assert "25 of 40 decisions written" in partial
    assert 'hx-trigger="every 2s"' in partial
    assert "25 of 40" in admin_client.get("/feedback/").content.decode()


def test_a_failed_export_shows_its_error(admin_client, ada, monkeypatch):
    refused = FeedbackExport.objects.create(requested_by=ada, filters={"decision": "misread"})
    feedback_export_build(export_pk=refused.pk)
    response = admin_client.get(f"/feedback/{refused.pk}/", HTTP_HX_REQUEST="true")
    assert response.status_code == 286
    assert "The export failed: its filters are refused: decision must be one of" in response.content.decode()
    assert "/file/" not in response.content.decode()
    # Any other failure names its kind only: its message may hold paths or data.
    from reviews.services import export as export_module

    def disk_full(**_):
        raise OSError(28, "No space left on device: /srv/overread/private")

    monkeypatch.setattr(export_module, "feedback_export_write", disk_full)
    failed = FeedbackExport.objects.create(requested_by=ada, filters={})
    feedback_export_build(export_pk=failed.pk)
    page = admin_client.get(f"/feedback/{failed.pk}/", HTTP_HX_REQUEST="true").content.decode()
    assert "The export failed: OSError: the export could not be written" in page
    assert "/srv/overread" not in page


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"since": "soon"}, "Enter a valid date."),
        ({"since": "2025-03-10", "until": "2025-03-09"}, "The end date is before the start date."),
        ({"reference": "on", "decision": "accepted"}, "A reference export is filtered by project"),
        ({"model": "no-such-model:9"}, "Select a valid choice."),
        ({"until": "9999-12-31"}, "Enter a date from the year 1900 to 9000."),  # a day later overflows
        ({"since": "0001-01-01"}, "Enter a date from the year 1900 to 9000."),
    ],
)
def test_a_bad_filter_is_shown_in_the_form_and_nothing_is_queued(admin_client, fields, message):
    response = admin_client.post("/feedback/", fields)
    assert response.status_code == 400
    assert message in response.content.decode()
    assert 'role="alert"' in response.content.decode()
    assert not FeedbackExport.objects.exists()


def test_an_export_stored_with_a_date_no_filter_takes_now_still_lists(admin_client, ada):
    """Exports asked for before dates were bounded may hold year 1: the page still serves."""
    FeedbackExport.objects.create(requested_by=ada, filters={"since": "0001-01-01T00:00:00+14:00"})
    response = admin_client.get("/feedback/")
    assert response.status_code == 200
    assert "from 0001-01-01T00:00:00+14:00" in response.content.decode()


def test_radiologists_are_refused_and_the_refusal_audited(client, rita, ada):
    client.force_login(rita)
    for method in (client.get, client.post):
        before = AuditEvent.objects.filter(event_id=DENIED, username="rita").count()
        assert method("/feedback/").status_code == 403
        assert AuditEvent.objects.filter(event_id=DENIED, username="rita").count() == before + 1
    assert not FeedbackExport.objects.exists()
    assert b'href="/feedback/"' not in client.get("/").content
    client.force_login(ada)
    assert b'href="/feedback/"' in client.get("/").content


def test_another_admins_export_is_not_found_and_the_refusal_audited(client, ada):
    export = FeedbackExport.objects.create(requested_by=ada, filters={})
    otto = UserFactory(username="otto", role=Role.ADMIN)
    client.force_login(otto)
    assert client.get(f"/feedback/{export.pk}/").status_code == 404
    assert AuditEvent.objects.filter(event_id=DENIED).latest("id").username == "otto"
    assert f'href="/feedback/{export.pk}/"' not in client.get("/feedback/").content.decode()
    before = AuditEvent.objects.filter(event_id=DENIED).count()
    assert client.get(f"/feedback/{export.pk + 1000}/").status_code == 404  # none such: nothing to audit
    assert AuditEvent.objects.filter(event_id=DENIED).count() == before
