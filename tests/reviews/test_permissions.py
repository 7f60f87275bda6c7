"""Who may do what: every role against every reviews endpoint, another project's study by
direct URL, the AI hidden from annotators where the project says so, and every refusal audited."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from audit.models import AuditEvent
from reviews.models import MemberRole, ProjectMember, Reading, ReadingProject
from reviews.services import project_studies_add
from tests.reviews.helpers import api

pytestmark = pytest.mark.django_db

DENIED = "110113"  # Security Alert: Use of Restricted Function


@pytest.fixture
def setting(in_project, rita, rob, anna, adi, ada):
    """Rita's reading of the case (AI revealed); Rob is a radiologist of no project."""
    client = api(rita)
    reading = client.post(
        "/api/v1/readings/", {"study_uid": in_project.study.study_uid}, format="json"
    ).json()
    client.post(f"/api/v1/readings/{reading['id']}/lock/", {"version": 1}, format="json")
    decision = client.post(
        f"/api/v1/readings/{reading['id']}/decisions/",
        {"version": 2, "kind": "added", "label": "lesion", "confidence": 3, "bbox": [[1, 2], [1, 3], [1, 3]]},
        format="json",
    ).json()["decision"]
    return {"reading": reading["id"], "decision": decision["id"], "study_uid": in_project.study.study_uid}


def _endpoints(s):
    r = f"/api/v1/readings/{s['reading']}/"
    project = ReadingProject.objects.get(name="Chest CT second reading").pk
    return {
        "worklist": ("get", "/api/v1/worklist/", None),
        "projects": ("get", "/api/v1/projects/", None),
        "assign": (
            "post",
            f"/api/v1/projects/{project}/assignments/",
            {"study_uid": s["study_uid"], "reader": "anna"},
        ),
        "readings": ("get", "/api/v1/readings/", None),
        "open": ("post", "/api/v1/readings/", {"study_uid": s["study_uid"]}),
        "reading": ("get", r, None),
        "draft": ("patch", r, {"version": 3, "final_impression": "draft"}),
        "heartbeat": ("post", r + "heartbeat/", {"seconds": 5}),
        "lock": ("post", r + "lock/", {"version": 3}),
        "reveal": ("post", r + "reveal/", {"version": 3}),
        "decisions": ("get", r + "decisions/", None),
        "decide": (
            "post",
            r + "decisions/",
            {"version": 3, "kind": "accepted", "finding": 1, "confidence": 5},
        ),
        "mask": ("get", r + f"decisions/{s['decision']}/mask/", None),
        "submit": ("post", r + "submit/", {"version": 3}),
        "export": ("post", "/api/v1/feedback/exports/", {}),
    }


# What each role gets. The reading is Rita's; Rob is in no project; Anna annotates with the AI
# hidden; Adi adjudicates (no reading here); Ada administers (sees all, writes none of it).
# 409/400: allowed through, refused by the workflow (an already locked reading, and so on).
MATRIX = {
    #            rita  anna  adi  ada  rob
    "worklist": (200, 200, 200, 200, 200),
    "projects": (200, 200, 200, 200, 200),
    "assign": (403, 403, 403, 201, 403),
    "readings": (200, 200, 200, 200, 200),
    "open": (200, 201, 403, 403, 404),
    "reading": (200, 404, 404, 200, 404),
    "draft": (200, 404, 404, 403, 404),
    "heartbeat": (200, 404, 404, 403, 404),
    "lock": (409, 404, 404, 403, 404),
    "reveal": (409, 404, 404, 403, 404),
    "decisions": (200, 404, 404, 200, 404),
    "decide": (201, 404, 404, 403, 404),
    "mask": (200, 404, 404, 200, 404),
    "submit": (400, 404, 404, 403, 404),
    "export": (403, 403, 403, 202, 403),
}
USERS = ("rita", "anna", "adi", "ada", "rob")


@pytest.mark.parametrize("endpoint", list(MATRIX))
@pytest.mark.parametrize("who", USERS)
def test_every_role_gets_what_it_may_on_every_endpoint(setting, request, endpoint, who):
    user = request.getfixturevalue(who)
    method, url, body = _endpoints(setting)[endpoint]
    denials_before = AuditEvent.objects.filter(event_id=DENIED).count()
    response = (
        getattr(api(user), method)(url, body, format="json") if body is not None else api(user).get(url)
    )
    expected = MATRIX[endpoint][USERS.index(who)]
    assert response.status_code == expected, (who, endpoint, response.content[:300])
    denials = AuditEvent.objects.filter(event_id=DENIED).count() - denials_before
    if expected in (403, 404):  # every 404 here is of something that exists: a refusal too
        assert denials == 1, f"the refusal of {endpoint} to {who} was not audited"
        assert AuditEvent.objects.filter(event_id=DENIED).latest("id").username == who
    else:
        assert denials == 0


@pytest.mark.parametrize("endpoint", ["worklist", "reading", "open", "export"])
def test_anonymous_callers_get_401(setting, endpoint):
    method, url, body = _endpoints(setting)[endpoint]
    client = APIClient()
    response = getattr(client, method)(url, body, format="json") if body is not None else client.get(url)
    assert response.status_code == 401


def test_another_projects_study_is_not_found_by_direct_url(in_project, rob, client):
    other = ReadingProject.objects.create(name="Another project")
    ProjectMember.objects.create(project=other, user=rob, role=MemberRole.RADIOLOGIST)
    uid = in_project.study.study_uid
    client.force_login(rob)
    assert client.get(f"/studies/{uid}/").status_code == 404
    assert client.get(f"/dicomweb/studies/{uid}/metadata").status_code == 404
    assert client.get(f"/api/v1/studies/{uid}/ai/").status_code == 404
    assert api(rob).post("/api/v1/readings/", {"study_uid": uid}, format="json").status_code == 404
    assert not Reading.objects.exists()
    project_studies_add(project=other, studies=[in_project.study])  # now it is in Rob's project too
    assert client.get(f"/studies/{uid}/").status_code == 200  # opening the study opens his reading
    opened = api(rob).post("/api/v1/readings/", {"study_uid": uid, "project": other.pk}, format="json")
    assert opened.status_code == 200
    assert Reading.objects.get().project == other


def test_members_and_admins_see_the_study_and_nobody_else(in_project, rita, ada, rob, client):
    uid = in_project.study.study_uid
    for user, status in ((rita, 200), (ada, 200), (rob, 404)):
        client.force_login(user)
        assert client.get(f"/studies/{uid}/").status_code == status, user


def test_annotators_do_not_see_the_ai_when_the_project_hides_it(in_project, anna, adi, project):
    uid = in_project.study.study_uid
    assert api(anna).get(f"/api/v1/studies/{uid}/ai/").json()["status"] == "none"
    assert api(anna).get(f"/api/v1/inference/jobs/{in_project.job.pk}/").status_code == 404
    assert api(adi).get(f"/api/v1/studies/{uid}/ai/").json()["job"] == in_project.job.pk  # reads nothing
    reading = api(anna).post("/api/v1/readings/", {"study_uid": uid}, format="json").json()
    locked = api(anna).post(f"/api/v1/readings/{reading['id']}/lock/", {"version": 1}, format="json").json()
    assert (locked["phase"], locked["ai"], locked["project"]["show_ai"]) == ("locked", None, False)
    reveal = api(anna).post(f"/api/v1/readings/{reading['id']}/reveal/", {"version": 2}, format="json")
    assert reveal.status_code == 403
    ReadingProject.objects.filter(pk=project.pk).update(show_ai_to_annotators=True)
    # Her read is still blind (locked, nothing revealed): the AI reaches her through the reveal.
    assert api(anna).get(f"/api/v1/studies/{uid}/ai/").json()["status"] == "none"
    revealed = (
        api(anna).post(f"/api/v1/readings/{reading['id']}/reveal/", {"version": 2}, format="json").json()
    )
    assert (revealed["phase"], revealed["ai"]["job"]) == ("ai_revealed", in_project.job.pk)
    assert api(anna).get(f"/api/v1/studies/{uid}/ai/").json()["job"] == in_project.job.pk


def test_an_inactive_project_stops_its_readers(in_project, rita, project):
    reading = (
        api(rita).post("/api/v1/readings/", {"study_uid": in_project.study.study_uid}, format="json").json()
    )
    ReadingProject.objects.filter(pk=project.pk).update(active=False)
    url = f"/api/v1/readings/{reading['id']}/"
    assert api(rita).get(url).status_code == 404  # the study is no longer hers to see
    assert api(rita).get("/api/v1/worklist/").json()["results"] == []


def test_a_reader_of_an_all_studies_project_reads_any_study_which_then_joins_it(case, rob):
    department = ReadingProject.objects.create(name="Department", all_studies=True)
    ProjectMember.objects.create(project=department, user=rob, role=MemberRole.RADIOLOGIST)
    response = api(rob).post("/api/v1/readings/", {"study_uid": case.study.study_uid}, format="json")
    assert response.status_code == 201, response.content
    assert response.json()["project"]["name"] == "Department"
    entry = department.project_studies.get()
    assert (entry.study, entry.reading_status) == (case.study, "in_progress")
    assert [a.reader for a in department.assignments.all()] == [rob]
