"""Blind reads stay blind on every route: the AI's objects while the unaided read is open, a
reader's own SEG and SR from every other reader. The study page, DICOMweb (QIDO, WADO
metadata, retrieve) and the inference API must agree."""

from __future__ import annotations

import re
from typing import Any

import pytest

from reviews.models import Reading
from tests.reviews.helpers import AiResult, api, session, with_derived_objects
from viewer.models import Series

pytestmark = pytest.mark.django_db


def _series_listed(user: Any, study_uid: str) -> set[str]:
    answer = session(user).get(f"/dicomweb/studies/{study_uid}/series")
    assert answer.status_code == 200
    return {item["0020000E"]["Value"][0] for item in answer.json()}


def _ai_series(case: AiResult) -> set[str]:
    return set(
        Series.objects.filter(producer_kind=Series.Producer.AI_JOB, producer_id=case.job.pk).values_list(
            "series_uid", flat=True
        )
    )


def _metadata_mentions(user: Any, study_uid: str, uids: set[str]) -> bool:
    answer = session(user).get(f"/dicomweb/studies/{study_uid}/metadata")
    text = b"".join(answer.streaming_content).decode()
    return any(uid in text for uid in uids)


def test_the_ai_stays_out_of_every_route_until_the_unaided_read_is_locked(in_project: AiResult, rita: Any):
    with_derived_objects(in_project)
    uid = in_project.study.study_uid
    ai_series = _ai_series(in_project)
    assert len(ai_series) == 3  # SEG, Parametric Map, SR
    client = api(rita)
    reading = client.post("/api/v1/readings/", {"study_uid": uid}, format="json").json()
    assert reading["phase"] == "unaided"

    assert not ai_series & _series_listed(rita, uid)
    assert not _metadata_mentions(rita, uid, ai_series)
    assert client.get(f"/api/v1/studies/{uid}/ai/").json()["status"] == "none"
    assert client.get(f"/api/v1/inference/jobs/{in_project.job.pk}/arrays/mask/").status_code == 404
    page = session(rita).get(f"/studies/{uid}/").content.decode()
    assert "data-ai-url" not in page
    assert not any(series_uid in page for series_uid in ai_series)

    locked = client.post(
        f"/api/v1/readings/{reading['id']}/lock/", {"version": reading["version"]}, format="json"
    )
    assert locked.json()["phase"] == "ai_revealed"
    assert ai_series <= _series_listed(rita, uid)
    assert client.get(f"/api/v1/studies/{uid}/ai/").json()["job"] == in_project.job.pk
    assert client.get(f"/api/v1/inference/jobs/{in_project.job.pk}/arrays/mask/").status_code == 200
    # The series list counts what each holds: the CT's images, the SEG's and the Parametric
    # Map's frames (one multi-frame object each), the SR as a document.
    counts = re.findall(
        r'<span class="series-count muted">([^<]+)</span>', session(rita).get(f"/studies/{uid}/").text
    )
    assert counts[0] == "16 images"
    assert sum(1 for count in counts if re.fullmatch(r"\d+ frames", count)) == 2
    assert "1 document" in counts


def test_a_readers_seg_and_sr_are_theirs_and_the_admins_alone(
    in_project: AiResult, rita: Any, rob: Any, ada: Any, project: Any
):
    from reviews.models import MemberRole, ProjectMember

    ProjectMember.objects.create(project=project, user=rob, role=MemberRole.RADIOLOGIST)
    uid = in_project.study.study_uid
    client = api(rita)
    reading = client.post("/api/v1/readings/", {"study_uid": uid}, format="json").json()
    version = client.post(f"/api/v1/readings/{reading['id']}/lock/", {"version": 1}, format="json").json()[
        "version"
    ]
    for finding in (1, 2):
        body = {"version": version, "kind": "accepted", "finding": finding, "confidence": 4}
        version = client.post(f"/api/v1/readings/{reading['id']}/decisions/", body, format="json").json()[
            "version"
        ]
    submitted = client.post(
        f"/api/v1/readings/{reading['id']}/submit/",
        {"version": version, "triage_agreement": "agree"},
        format="json",
    )
    assert submitted.status_code == 200, submitted.content
    theirs = set(
        Series.objects.filter(producer_kind=Series.Producer.READING, producer_id=reading["id"]).values_list(
            "series_uid", flat=True
        )
    )
    assert len(theirs) == 2  # the reader SEG and SR

    assert theirs <= _series_listed(rita, uid)
    assert theirs <= _series_listed(ada, uid)
    assert not theirs & _series_listed(rob, uid)
    assert not _metadata_mentions(rob, uid, theirs)
    sop = Reading.objects.get(pk=reading["id"]).seg_sop_uid
    [series_uid] = Series.objects.filter(instances__sop_instance_uid=sop).values_list("series_uid", flat=True)
    wado = session(rob).get(f"/dicomweb/studies/{uid}/series/{series_uid}/instances/{sop}/metadata")
    assert wado.status_code == 404


def test_a_study_read_in_two_projects_shows_its_ai_in_neither_while_one_unaided_read_is_open(
    in_project: AiResult, rita: Any, project: Any
):
    from reviews.models import MemberRole, ProjectMember, ReadingProject
    from reviews.services import project_studies_add

    other = ReadingProject.objects.create(name="Nodule audit")
    ProjectMember.objects.create(project=other, user=rita, role=MemberRole.RADIOLOGIST)
    project_studies_add(project=other, studies=[in_project.study])
    uid, job = in_project.study.study_uid, in_project.job.pk
    client = api(rita)
    first = client.post("/api/v1/readings/", {"study_uid": uid, "project": project.pk}, format="json").json()
    second = client.post("/api/v1/readings/", {"study_uid": uid, "project": other.pk}, format="json").json()

    # Locking the second read must not show the AI: the first read would no longer be unaided.
    locked = client.post(f"/api/v1/readings/{second['id']}/lock/", {"version": 1}, format="json").json()
    assert (locked["phase"], locked["ai"], locked["ai_ready"]) == ("locked", None, False)
    assert "Chest CT second reading" in locked["ai_withheld"]
    reveal = client.post(
        f"/api/v1/readings/{second['id']}/reveal/", {"version": locked["version"]}, format="json"
    )
    assert reveal.status_code == 409
    assert "lock that read first" in reveal.json()["detail"]
    assert client.get(f"/api/v1/studies/{uid}/ai/").json()["status"] == "none"
    assert client.get(f"/api/v1/inference/jobs/{job}/arrays/mask/").status_code == 404

    # Once the first read is locked, both may show it.
    done = client.post(f"/api/v1/readings/{first['id']}/lock/", {"version": 1}, format="json").json()
    assert done["phase"] == "ai_revealed"
    waiting = client.get(f"/api/v1/readings/{second['id']}/").json()
    assert (waiting["ai_ready"], waiting["ai_withheld"]) == (True, None)
    shown = client.post(
        f"/api/v1/readings/{second['id']}/reveal/", {"version": waiting["version"]}, format="json"
    )
    assert shown.json()["phase"] == "ai_revealed"
    assert client.get(f"/api/v1/inference/jobs/{job}/arrays/mask/").status_code == 200


def test_a_read_opened_after_the_reader_saw_the_studys_ai_elsewhere_is_recorded_as_not_blind(
    in_project: AiResult, rita: Any, project: Any
):
    from reviews.models import MemberRole, ProjectMember, ReadingProject
    from reviews.services import project_studies_add

    other = ReadingProject.objects.create(name="Nodule audit")
    ProjectMember.objects.create(project=other, user=rita, role=MemberRole.RADIOLOGIST)
    project_studies_add(project=other, studies=[in_project.study])
    uid = in_project.study.study_uid
    client = api(rita)
    first = client.post("/api/v1/readings/", {"study_uid": uid, "project": project.pk}, format="json").json()
    assert first["ai_seen_before"] is False
    locked = client.post(f"/api/v1/readings/{first['id']}/lock/", {"version": 1}, format="json").json()
    assert locked["phase"] == "ai_revealed"

    second = client.post("/api/v1/readings/", {"study_uid": uid, "project": other.pk}, format="json").json()
    assert (second["phase"], second["ai_seen_before"]) == ("unaided", True)
    assert Reading.objects.get(pk=second["id"]).ai_seen_before
    assert not Reading.objects.get(pk=first["id"]).ai_seen_before


def test_a_study_waiting_for_a_readers_unaided_read_hides_its_ai_from_them_until_the_lock(
    in_project: AiResult, rita: Any, adi: Any
):
    """Rita reads the project unaided first: before she opens the study, the AI jobs page and
    the inference API show her nothing of its AI (the worklist still ranks it by triage)."""
    uid, job = in_project.study.study_uid, in_project.job.pk
    client = api(rita)
    assert client.get(f"/api/v1/studies/{uid}/ai/").json()["status"] == "none"
    assert client.get(f"/api/v1/inference/jobs/{job}/").status_code == 404
    assert f'id="job-{job}"' not in session(rita).get("/inference/jobs/").content.decode()
    assert f'id="job-{job}"' in session(adi).get("/inference/jobs/").content.decode()  # she reads nothing
    assert client.get("/api/v1/worklist/").json()["results"][0]["ai_priority"] == "urgent"

    reading = client.post("/api/v1/readings/", {"study_uid": uid}, format="json").json()
    assert client.post(f"/api/v1/readings/{reading['id']}/lock/", {"version": 1}, format="json").json()["ai"]
    assert client.get(f"/api/v1/studies/{uid}/ai/").json()["job"] == job
