"""The worklist: AI triage order then waiting time, filters and search, assigned to me,
self-refreshing rows while AI jobs run, and a constant number of queries per page."""

from __future__ import annotations

import datetime as dt
import itertools
from dataclasses import replace

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse, set_script_prefix
from django.utils import timezone

from inference.models import InferenceJob
from reviews.models import Assignment, MemberRole, ProjectMember, ProjectStudy, Reading, ReadingProject
from reviews.selectors import WorklistFilter, worklist_page
from reviews.services import project_studies_add, project_triage_refresh
from tests.reviews.helpers import api, model_version
from viewer.ingest.rows import study_modalities_refresh
from viewer.links import study_viewer_path_maker
from viewer.models import Patient, Series, Study

pytestmark = pytest.mark.django_db
_numbers = itertools.count(1)


def make_study(
    *,
    hours_waiting: float,
    triage: str = "",
    job_status: str = InferenceJob.Status.SUCCEEDED,
    modality: str = "CT",
    name: str = "",
    description: str = "CHEST CT",
    accession: str = "",
) -> Study:
    n = next(_numbers)
    patient = Patient.objects.create(patient_id=f"P{n:05d}", name=name or f"DOE^PATIENT{n}")
    study = Study.objects.create(
        study_uid=f"1.2.3.{n}",
        patient=patient,
        study_date=dt.date(2026, 1, 1) + dt.timedelta(days=n),
        description=description,
        accession_number=accession or f"ACC{n}",
        modalities=modality,
        acquired_modalities=modality,
    )
    Study.objects.filter(pk=study.pk).update(created_at=timezone.now() - dt.timedelta(hours=hours_waiting))
    study.refresh_from_db()
    series = Series.objects.create(series_uid=f"1.2.3.{n}.1", study=study, modality=modality)
    if triage or job_status != InferenceJob.Status.SUCCEEDED:
        InferenceJob.objects.create(
            model_version=model_version(),
            series=series,
            status=job_status,
            progress=40 if job_status == InferenceJob.Status.RUNNING else 100,
            triage=triage,
            input_hash=f"{n:064d}",
        )
    return study


@pytest.fixture
def worklist_project(rita, rob, anna):
    project = ReadingProject.objects.create(name="Emergency CT")
    for user, role in (
        (rita, MemberRole.RADIOLOGIST),
        (rob, MemberRole.RADIOLOGIST),
        (anna, MemberRole.ANNOTATOR),
    ):
        ProjectMember.objects.create(project=project, user=user, role=role)
    return project


def _uids(page):
    return [row.study.study_uid for row in page.rows]


def test_urgent_studies_come_first_then_priority_then_the_longest_waiting(worklist_project, rita):
    routine_old = make_study(hours_waiting=30, triage="routine")
    no_ai_older = make_study(hours_waiting=40)
    urgent_new = make_study(hours_waiting=1, triage="urgent")
    priority = make_study(hours_waiting=5, triage="priority")
    urgent_old = make_study(hours_waiting=10, triage="urgent")
    routine_new = make_study(hours_waiting=2, triage="routine")
    project_studies_add(project=worklist_project, studies=Study.objects.all())
    page = worklist_page(user=rita, worklist_filter=WorklistFilter())
    expected = [urgent_old, urgent_new, priority, no_ai_older, routine_old, routine_new]
    assert _uids(page) == [s.study_uid for s in expected]
    assert [row.entry.ai_triage for row in page.rows] == [
        "urgent",
        "urgent",
        "priority",
        "",
        "routine",
        "routine",
    ]


def test_the_triage_follows_the_ai_when_a_job_finishes(
    worklist_project, rita, django_capture_on_commit_callbacks
):
    study = make_study(hours_waiting=3)
    project_studies_add(project=worklist_project, studies=[study])
    assert ProjectStudy.objects.get(study=study).ai_triage == ""
    job = InferenceJob.objects.create(
        model_version=model_version(), series=study.series.get(), status="running", input_hash="b" * 64
    )
    InferenceJob.objects.filter(pk=job.pk).update(status="succeeded", triage="urgent")
    job.refresh_from_db()
    from inference.services import job_finished_announce

    with django_capture_on_commit_callbacks(execute=True):
        job_finished_announce(job)
    entry = ProjectStudy.objects.get(study=study)
    assert (entry.ai_triage, entry.triage_rank) == ("urgent", 0)
    project_triage_refresh(study_pk=study.pk)  # idempotent
    assert ProjectStudy.objects.get(study=study).triage_rank == 0


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"priority": "urgent"}, {"urgent"}),
        ({"priority": "none"}, {"no-ai"}),
        ({"modality": "mr"}, {"mr"}),
        ({"q": "smith"}, {"smith"}),
        ({"q": "ACC-XYZ"}, {"accession"}),
        ({"q": "abdomen"}, {"abdomen"}),
        ({"q": "P9"}, set()),
        ({"status": "read"}, {"read"}),
        ({"status": "all"}, {"urgent", "no-ai", "mr", "smith", "accession", "abdomen", "read"}),
        ({}, {"urgent", "no-ai", "mr", "smith", "accession", "abdomen"}),
    ],
)
def test_filters_and_search_narrow_the_list(worklist_project, rita, params, expected):
    studies = {
        "urgent": make_study(hours_waiting=1, triage="urgent"),
        "no-ai": make_study(hours_waiting=2),
        "mr": make_study(hours_waiting=3, triage="routine", modality="MR"),
        "smith": make_study(hours_waiting=4, triage="routine", name="SMITH^JOHN"),
        "accession": make_study(hours_waiting=5, triage="routine", accession="ACC-XYZ-1"),
        "abdomen": make_study(hours_waiting=6, triage="routine", description="CT ABDOMEN"),
        "read": make_study(hours_waiting=7, triage="routine"),
    }
    project_studies_add(project=worklist_project, studies=studies.values())
    ProjectStudy.objects.filter(study=studies["read"]).update(reading_status="read")
    response = api(rita).get("/api/v1/worklist/", params)
    assert response.status_code == 200, response.content
    by_uid = {s.study_uid: key for key, s in studies.items()}
    assert {by_uid[row["study_uid"]] for row in response.json()["results"]} == expected


def test_assigned_to_me_shows_only_my_studies(worklist_project, rita, rob):
    studies = [make_study(hours_waiting=h, triage="routine") for h in (1, 2, 3, 4)]
    project_studies_add(project=worklist_project, studies=studies)
    mine = {a.study.study_uid for a in Assignment.objects.filter(reader=rita)}
    assert len(mine) == 2  # round-robin between Rita and Rob (and Anna, the annotator, reads too)
    rows = api(rita).get("/api/v1/worklist/", {"mine": "true"}).json()["results"]
    assert {row["study_uid"] for row in rows} == mine
    assert all(row["assignees"] == ["rita"] for row in rows)


def test_a_reader_sees_only_the_studies_of_their_projects(worklist_project, rita):
    other = ReadingProject.objects.create(name="Research")
    mine, theirs = make_study(hours_waiting=1, triage="routine"), make_study(hours_waiting=2, triage="urgent")
    project_studies_add(project=worklist_project, studies=[mine])
    project_studies_add(project=other, studies=[theirs])
    rows = api(rita).get("/api/v1/worklist/").json()["results"]
    assert [row["study_uid"] for row in rows] == [mine.study_uid]
    assert rows[0]["viewer_url"] == f"/studies/{mine.study_uid}/?project={worklist_project.pk}"


@pytest.mark.parametrize("prefix", ["/", "/overread/"])
def test_viewer_paths_made_in_bulk_are_the_ones_reverse_gives(prefix):
    set_script_prefix(prefix)
    try:
        path = study_viewer_path_maker()
        for uid in ("1.2.840.10008.1", "2.25.1234567890123456789", "1.2"):
            assert path(uid) == reverse("study-viewer", args=[uid])
    finally:
        set_script_prefix("/")


def test_the_page_lists_rows_that_open_the_viewer_and_polls_while_a_job_runs(worklist_project, rita, client):
    running = make_study(hours_waiting=1, job_status=InferenceJob.Status.RUNNING)
    project_studies_add(project=worklist_project, studies=[running])
    client.force_login(rita)
    page = client.get("/")
    html = page.content.decode()
    # The row opens the study in this project (a reader may read it in several).
    assert f'data-href="/studies/{running.study_uid}/?project={worklist_project.pk}"' in html
    assert "data-keynav" in html
    assert 'hx-trigger="every 5s"' in html
    assert 'aria-label="AI progress"' in html
    partial = client.get("/", HTTP_HX_REQUEST="true").content.decode()
    assert partial.lstrip().startswith("<tbody")
    assert 'hx-trigger="every 5s"' in partial
    InferenceJob.objects.update(status="succeeded", triage="routine", progress=100)
    done = client.get("/", HTTP_HX_REQUEST="true").content.decode()
    assert "hx-trigger" not in done  # the partial stops polling once nothing runs


def test_the_modalities_are_the_acquired_ones_as_a_list(worklist_project, rita, anna, client):
    """The AI's SEG, Parametric Map and SR are not shown: to a reader blind to the AI a SEG
    would say the AI found something."""
    study = make_study(hours_waiting=1, modality="CT")
    Series.objects.create(series_uid=f"{study.study_uid}.2", study=study, modality="PT")
    for n, modality in enumerate(("SEG", "OT", "SR"), start=3):
        Series.objects.create(
            series_uid=f"{study.study_uid}.{n}",
            study=study,
            modality=modality,
            producer_kind=Series.Producer.AI_JOB,
            producer_id=1,
        )
    study_modalities_refresh(study)
    project_studies_add(project=worklist_project, studies=[study])
    for user in (rita, anna):
        client.force_login(user)
        html = client.get("/").content.decode()
        assert "<td>CT / PT</td>" in html  # not as DICOM joins them, CT\\PT
        assert "SEG" not in html
        assert "No studies are waiting for you." in client.get("/", {"modality": "SEG"}).content.decode()
    assert api(anna).get("/api/v1/worklist/").json()["results"][0]["modalities"] == ["CT", "PT"]


def test_an_empty_worklist_says_so(rita, client):
    client.force_login(rita)
    assert b"No studies are waiting for you." in client.get("/").content


def test_annotators_do_not_see_the_ai_when_the_project_hides_it(worklist_project, anna, client):
    study = make_study(hours_waiting=1, triage="urgent")
    project_studies_add(project=worklist_project, studies=[study])
    row = api(anna).get("/api/v1/worklist/").json()["results"][0]
    assert (row["ai"], row["ai_priority"]) == (None, None)
    client.force_login(anna)
    html = client.get("/").content.decode()
    assert 'class="triage-none"' in html
    assert 'data-ai-status="none"' in html
    assert '<span class="muted">hidden</span>' in html
    assert "triage-badge" not in html
    ReadingProject.objects.update(show_ai_to_annotators=True)
    row = api(anna).get("/api/v1/worklist/").json()["results"][0]
    assert (row["ai"]["status"], row["ai_priority"]) == ("succeeded", "urgent")
    html = client.get("/").content.decode()
    assert 'class="triage-urgent"' in html
    assert '<span class="triage-badge urgent">Urgent</span>' in html
    assert '<span class="muted">hidden</span>' not in html
    assert 'data-ai-status="succeeded"' in html


def test_where_the_ai_is_hidden_neither_the_order_nor_the_priority_filter_tells_its_triage(
    worklist_project, rita, anna
):
    waiting_longer = make_study(hours_waiting=5, triage="routine")
    urgent = make_study(hours_waiting=1, triage="urgent")
    project_studies_add(project=worklist_project, studies=[waiting_longer, urgent])
    only_here = WorklistFilter(project=worklist_project.pk)
    everywhere = WorklistFilter()  # anna annotates in the department's project too: pages merged

    def listed(user, **given):
        return [
            _uids(worklist_page(user=user, worklist_filter=replace(f, **given)))
            for f in (only_here, everywhere)
        ]

    urgent_first = [urgent.study_uid, waiting_longer.study_uid]
    longest_waiting_first = urgent_first[::-1]
    assert listed(rita) == [urgent_first, urgent_first]  # the control: a radiologist's triage
    assert listed(anna) == [longest_waiting_first, longest_waiting_first]
    assert listed(anna, priority="urgent") == [[], []]
    assert listed(anna, priority="routine") == [[], []]
    assert listed(anna, priority="none") == [longest_waiting_first, longest_waiting_first]
    assert listed(rita, priority="urgent") == [[urgent.study_uid]] * 2


def test_a_project_can_keep_the_ai_triage_out_of_its_readers_worklist(
    worklist_project, rita, client, admin_user
):
    waiting_longer = make_study(hours_waiting=5, triage="routine")
    urgent = make_study(hours_waiting=1, triage="urgent")
    project_studies_add(project=worklist_project, studies=[waiting_longer, urgent])
    here = WorklistFilter(project=worklist_project.pk)
    urgent_first = [urgent.study_uid, waiting_longer.study_uid]
    assert _uids(worklist_page(user=rita, worklist_filter=here)) == urgent_first

    ReadingProject.objects.filter(pk=worklist_project.pk).update(triage_in_worklist=False)
    assert _uids(worklist_page(user=rita, worklist_filter=here)) == urgent_first[::-1]
    assert _uids(worklist_page(user=rita, worklist_filter=replace(here, priority="urgent"))) == []
    rows = api(rita).get("/api/v1/worklist/").json()["results"]
    assert [(row["ai"], row["ai_priority"]) for row in rows] == [(None, None)] * 2
    client.force_login(rita)
    html = client.get("/").content.decode()
    assert "triage-badge" not in html
    assert 'data-ai-status="succeeded"' not in html
    # The admin keeps the triage (and the order by it).
    assert _uids(worklist_page(user=admin_user, worklist_filter=here)) == urgent_first
    client.force_login(admin_user)
    assert '<span class="triage-badge urgent">Urgent</span>' in client.get("/").content.decode()


def _count_queries(client, url):
    with CaptureQueriesContext(connection) as queries:
        response = client.get(url)
    assert response.status_code == 200
    return len(queries)


def test_a_page_costs_the_same_few_queries_however_many_rows_it_holds(
    worklist_project, rita, client, django_assert_max_num_queries
):
    project_studies_add(project=worklist_project, studies=[make_study(hours_waiting=1, triage="urgent")])
    client.force_login(rita)
    client.get("/")  # warm the session
    few = _count_queries(client, "/")
    studies = [make_study(hours_waiting=h, triage="routine", job_status="running") for h in range(2, 60)]
    project_studies_add(project=worklist_project, studies=studies)
    for study in studies[:10]:
        Assignment.objects.get_or_create(project=worklist_project, study=study, reader=rita)
    assert _count_queries(client, "/") == few
    assert _count_queries(client, "/?mine=1&q=DOE&priority=routine&modality=CT") <= few + 1
    with django_assert_max_num_queries(15):
        client.get("/?page=2")
    api_client = api(rita)
    with django_assert_max_num_queries(12):
        assert len(api_client.get("/api/v1/worklist/").json()["results"]) == 50


def test_pages_hold_fifty_rows_and_link_to_the_next(worklist_project, rita):
    project_studies_add(project=worklist_project, studies=[make_study(hours_waiting=h) for h in range(1, 56)])
    first = api(rita).get("/api/v1/worklist/").json()
    second = api(rita).get("/api/v1/worklist/", {"page": 2}).json()
    assert (len(first["results"]), first["has_next"]) == (50, True)
    assert (len(second["results"]), second["has_next"], second["has_previous"]) == (5, False, True)
    assert not {r["study_uid"] for r in first["results"]} & {r["study_uid"] for r in second["results"]}


def test_a_study_whose_ai_series_holds_no_images_is_refused_not_an_error(worklist_project, rita, client):
    # The AI's series is in the index without an image in the store (its images were removed).
    study = make_study(hours_waiting=1, triage="urgent")
    project_studies_add(project=worklist_project, studies=[study])
    response = api(rita).post("/api/v1/readings/", {"study_uid": study.study_uid}, format="json")
    assert response.status_code == 400
    assert response.json()["detail"] == "the study holds no images to read"
    client.force_login(rita)
    page = client.get(f"/studies/{study.study_uid}/?project={worklist_project.pk}")
    assert page.status_code == 200  # the study page, without a reading panel
    assert not Reading.objects.exists()
