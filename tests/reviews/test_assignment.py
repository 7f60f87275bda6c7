"""Studies reach readers by assignment: round-robin as they join a project (or arrive in an
auto-enrolling one), or by an admin (service, API, admin action)."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Permission

from audit.models import AuditEvent
from reviews.models import Assignment, MemberRole, ProjectMember, ProjectStudy, ReadingProject
from reviews.services import assignment_create, project_studies_add
from tests.factories import UserFactory
from tests.reviews.helpers import api, stored_study
from tests.reviews.test_worklist import make_study
from viewer.models import Study

pytestmark = pytest.mark.django_db


@pytest.fixture
def team(rita, rob, adi):
    project = ReadingProject.objects.create(name="Lung screening")
    ProjectMember.objects.create(project=project, user=rita, role=MemberRole.RADIOLOGIST)
    ProjectMember.objects.create(project=project, user=rob, role=MemberRole.RADIOLOGIST)
    ProjectMember.objects.create(project=project, user=adi, role=MemberRole.ADJUDICATOR)
    return project


def _readers(project):
    order = ProjectStudy.objects.filter(project=project).order_by("pk").values_list("study_id", flat=True)
    by_study = dict(Assignment.objects.filter(project=project).values_list("study_id", "reader__username"))
    return [by_study.get(study) for study in order]


def test_new_studies_go_round_robin_to_the_projects_readers(team):
    for hours in range(5):
        project_studies_add(project=team, studies=[make_study(hours_waiting=hours)])
    assert _readers(team) == ["rita", "rob", "rita", "rob", "rita"]  # never the adjudicator


def test_round_robin_continues_across_batches_and_skips_studies_already_in(team):
    first = [make_study(hours_waiting=h) for h in (1, 2, 3)]
    project_studies_add(project=team, studies=first)
    project_studies_add(project=team, studies=[*first, make_study(hours_waiting=4)])
    assert _readers(team) == ["rita", "rob", "rita", "rob"]
    assert ProjectStudy.objects.filter(project=team).count() == 4


def test_a_study_arriving_in_an_auto_enrolling_project_is_assigned(
    team, store, django_capture_on_commit_callbacks
):
    ReadingProject.objects.filter(pk=team.pk).update(auto_enrol=True)
    with django_capture_on_commit_callbacks(execute=True):
        synthetic = stored_study(seed=21, lesions=0)
    study = Study.objects.get(study_uid=synthetic.study_uid)
    entry = ProjectStudy.objects.get(project=team, study=study)
    assert entry.waiting_since == study.created_at
    assert Assignment.objects.filter(project=team, study=study).count() == 1


def test_an_admin_assigns_a_study_through_the_api(team, ada, rob):
    study = make_study(hours_waiting=1)
    url = f"/api/v1/projects/{team.pk}/assignments/"
    response = api(ada).post(url, {"study_uid": study.study_uid, "reader": "rob"}, format="json")
    assert response.status_code == 201, response.content
    assert Assignment.objects.get(study=study).assigned_by == ada
    assert ProjectStudy.objects.filter(project=team, study=study).exists()
    again = api(ada).post(url, {"study_uid": study.study_uid, "reader": "rob"}, format="json")
    assert again.status_code == 200
    assert AuditEvent.objects.filter(detail__contains='"study assigned"').count() == 1


def test_only_readers_of_the_project_can_be_assigned(team, ada, adi):
    study = make_study(hours_waiting=1)
    url = f"/api/v1/projects/{team.pk}/assignments/"
    response = api(ada).post(url, {"study_uid": study.study_uid, "reader": "adi"}, format="json")
    assert response.status_code == 400
    assert response.json()["field"] == "reader"
    outsider = UserFactory(username="otto")
    with pytest.raises(Exception, match="not a reader"):
        assignment_create(project=team, study=study, reader=outsider, user=ada)
    assert not Assignment.objects.exists()


def test_readers_cannot_assign(team, rita):
    study = make_study(hours_waiting=1)
    response = api(rita).post(
        f"/api/v1/projects/{team.pk}/assignments/",
        {"study_uid": study.study_uid, "reader": "rita"},
        format="json",
    )
    assert response.status_code == 403
    assert not Assignment.objects.exists()


def test_the_admin_action_assigns_the_selected_studies_to_a_reader(team, ada, client):
    studies = [make_study(hours_waiting=h) for h in (1, 2)]
    project_studies_add(project=team, studies=studies, assign=False)
    client.force_login(ada)
    entries = [str(pk) for pk in ProjectStudy.objects.values_list("pk", flat=True)]
    url = "/admin/reviews/projectstudy/"
    form = client.post(url, {"action": "assign_to_reader", "_selected_action": entries})
    assert form.status_code == 200
    assert b"Assign studies to a reader" in form.content
    rob_pk = str(ProjectMember.objects.get(user__username="rob").user_id)
    done = client.post(url, {"action": "assign_to_reader", "_selected_action": entries, "reader": rob_pk})
    assert done.status_code == 302
    assert sorted(Assignment.objects.values_list("reader__username", flat=True)) == ["rob", "rob"]
    assert all(a.assigned_by == ada for a in Assignment.objects.all())


def test_admins_hold_the_assignment_permission_and_readers_do_not(ada, rita):
    assert ada.has_perm("reviews.add_assignment")
    assert not rita.has_perm("reviews.add_assignment")
    assert Permission.objects.filter(codename="export_feedback").exists()


@pytest.mark.parametrize(
    "page",
    [
        "readingproject",
        "readingproject/add",
        "projectstudy",
        "projectstudy/add",
        "assignment",
        "reading",
        "decision",
        "feedbackexport",
    ],
)
def test_the_admin_pages_open_for_admins(team, ada, client, page):
    client.force_login(ada)
    assert client.get(f"/admin/reviews/{page}/").status_code == 200


def test_the_admin_picks_a_study_by_search_newest_first(team, ada, client):
    older, newer = make_study(hours_waiting=5), make_study(hours_waiting=1)
    client.force_login(ada)
    response = client.get(
        "/admin/autocomplete/",
        {"app_label": "reviews", "model_name": "projectstudy", "field_name": "study", "term": ""},
    )
    assert response.status_code == 200
    assert [int(hit["id"]) for hit in response.json()["results"]] == [newer.pk, older.pk]


def test_adding_a_study_in_the_admin_assigns_it_round_robin(team, ada, client):
    study = make_study(hours_waiting=1)
    client.force_login(ada)
    response = client.post("/admin/reviews/projectstudy/add/", {"project": team.pk, "study": study.pk})
    assert response.status_code == 302, response.content[:500]
    assert Assignment.objects.get(study=study).reader.username == "rita"


def test_the_admin_refuses_to_assign_a_study_to_someone_who_does_not_read_in_the_project(
    team, ada, adi, client
):
    study = make_study(hours_waiting=1)
    client.force_login(ada)
    add = "/admin/reviews/assignment/add/"
    refused = client.post(add, {"project": team.pk, "study": study.pk, "reader": adi.pk})
    assert refused.status_code == 200  # the form again, with the reason beside the reader
    assert "adi is not a reader (radiologist or annotator) of Lung screening." in refused.content.decode()
    assert not Assignment.objects.exists()
    assert not ProjectStudy.objects.filter(study=study).exists()
    rob = ProjectMember.objects.get(user__username="rob").user
    assert client.post(add, {"project": team.pk, "study": study.pk, "reader": rob.pk}).status_code == 302
    assert Assignment.objects.get(study=study).reader == rob


def test_a_project_saved_in_the_admin_with_no_label_schema_has_no_questions(ada, client):
    client.force_login(ada)
    form = {
        "name": "Screening",
        "kind": "second-reading",
        "reading_mode": "unaided-first",
        "override_reasons": '[{"code": "wrong_label", "label": "Wrong label"}]',
        "triage_in_worklist": "on",
        "active": "on",
        "reads_per_case": "1",
        "min_dice": "0.7",
        "label_schema": "",
        "memberships-TOTAL_FORMS": "0",
        "memberships-INITIAL_FORMS": "0",
    }
    response = client.post("/admin/reviews/readingproject/add/", form)
    assert response.status_code == 302, response.content.decode()[:2000]
    assert ReadingProject.objects.get(name="Screening").label_schema == {"questions": []}
