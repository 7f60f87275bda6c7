"""Blinding: a reader of a consensus project never sees another reader's read (reading,
decisions, masks), the case, its agreement, fused masks or reference, the queue or the
dashboard, through any endpoint, before adjudication or after; nor who else reads a case.
The adjudicator and the admin see everything; an outsider is told nothing exists."""

from __future__ import annotations

from typing import Any

import pytest

from audit.models import AuditEvent
from reviews.models import Assignment, ConsensusCase, MemberRole, ProjectMember, ReadingProject
from reviews.services import project_studies_add
from reviews.tasks import consensus_case_compute_run
from tests.consensus.helpers import grown, read, stored_case
from tests.reviews.helpers import api, session

pytestmark = pytest.mark.django_db

SOLID = {"nodule_type": "solid", "follow_up": "yes"}
DENIED_EVENT = "110113"


@pytest.fixture
def world(consensus, rita, rob, ray, store):
    """One case both read and compared (with a second case Rob has open), and Ray, a reader of
    another project. Returns names -> objects."""
    case = stored_case(seed=71, lesions=1)
    other = stored_case(seed=72, lesions=1)
    project_studies_add(project=consensus, studies=[case.study, other.study])
    mine = read(rita, case, [case.lesion(1)], SOLID)
    his = read(rob, case, [grown(case.lesion(1))], SOLID)
    open_read = read(rob, other, [other.lesion(1)], SOLID, submit=False)
    row = ConsensusCase.objects.get(entry__study=case.study)
    consensus_case_compute_run(case_pk=row.pk)
    elsewhere = ReadingProject.objects.create(name="Elsewhere")
    ProjectMember.objects.create(project=elsewhere, user=ray, role=MemberRole.RADIOLOGIST)
    return {"case": case, "other": other, "row": row, "mine": mine, "his": his, "open": open_read}


def _their_urls(world):
    his, row, project = world["his"], world["row"], world["row"].project_id
    decision = his["decisions"][0]["id"]
    return {
        "reading": (f"/api/v1/readings/{his['id']}/", 404),
        "open reading": (f"/api/v1/readings/{world['open']['id']}/", 404),
        "decisions": (f"/api/v1/readings/{his['id']}/decisions/?history=1", 404),
        "decision mask": (f"/api/v1/readings/{his['id']}/decisions/{decision}/mask/", 404),
        "dashboard": (f"/api/v1/consensus/projects/{project}/", 403),
        "queue": (f"/api/v1/consensus/projects/{project}/cases/", 403),
        "all cases": (f"/api/v1/consensus/projects/{project}/cases/?status=all", 403),
        "case": (f"/api/v1/consensus/cases/{row.pk}/", 403),
        "majority": (f"/api/v1/consensus/cases/{row.pk}/masks/majority/", 403),
        "staple": (f"/api/v1/consensus/cases/{row.pk}/masks/staple/", 403),
        "reference mask": (f"/api/v1/consensus/cases/{row.pk}/masks/reference/", 403),
        "their finding's mask": (f"/api/v1/consensus/cases/{row.pk}/decisions/{decision}/mask/", 403),
    }


def _assert_blind(client, world):
    for name, (url, status) in _their_urls(world).items():
        response = client.get(url)
        assert response.status_code == status, (name, url, response.status_code)
        assert b"rob" not in response.content, name
    listed = client.get(f"/api/v1/readings/?study_uid={world['case'].study.study_uid}").json()
    assert [r["id"] for r in listed] == [world["mine"]["id"]]
    assert client.get("/api/v1/consensus/projects/").json() == []
    reference = client.post(
        f"/api/v1/consensus/cases/{world['row'].pk}/reference/",
        {"version": 0, "source": "majority", "answers": SOLID, "rationale": "mine"},
        format="json",
    )
    assert reference.status_code == 403
    write = client.patch(world["his"]["urls"]["self"], {"version": 1, "final_impression": "x"}, format="json")
    assert write.status_code == 404


def test_a_reader_sees_nothing_of_another_readers_read_before_or_after_adjudication(world, rita, adi):
    client = api(rita)
    before = AuditEvent.objects.filter(event_id=DENIED_EVENT).count()
    _assert_blind(client, world)
    assert AuditEvent.objects.filter(event_id=DENIED_EVENT).count() > before  # refusals are audited

    recorded = api(adi).post(
        f"/api/v1/consensus/cases/{world['row'].pk}/reference/",
        {"version": 0, "source": "majority", "answers": SOLID, "rationale": "agreed"},
        format="json",
    )
    assert recorded.status_code == 201
    _assert_blind(client, world)  # adjudication reveals nothing to the readers


def test_a_reader_does_not_learn_who_else_reads_a_case(world, rita, rob, adi, ada):
    def assignees(user):
        rows = api(user).get("/api/v1/worklist/?status=all").json()["results"]
        return {row["study_uid"]: row["assignees"] for row in rows}

    for uid in (world["case"].study.study_uid, world["other"].study.study_uid):  # both read by both
        assert assignees(rita)[uid] == ["rita"]
        assert assignees(rob)[uid] == ["rob"]
        assert sorted(assignees(adi)[uid]) == ["rita", "rob"]
        assert sorted(assignees(ada)[uid]) == ["rita", "rob"]


def test_the_adjudicator_and_the_admin_see_every_read_and_an_outsider_nothing(world, adi, ada, ray):
    for user in (adi, ada):
        client = api(user)
        for name, (url, _) in _their_urls(world).items():
            if name in ("reading", "open reading", "decisions", "decision mask") and user == adi:
                continue  # the adjudicator reads reads through the case, not the reading API
            if name == "reference mask":
                continue  # no reference yet
            response = client.get(url)
            assert response.status_code == 200, (user.username, name, response.content)
        case = client.get(f"/api/v1/consensus/cases/{world['row'].pk}/").json()
        assert [r["reader"] for r in case["reads"]] == ["rita", "rob"]
        assert [p["id"] for p in client.get("/api/v1/consensus/projects/").json()] == [
            world["row"].project_id
        ]
    outsider = api(ray)
    for name, (url, _) in _their_urls(world).items():
        assert outsider.get(url).status_code == 404, name


def test_another_readers_seg_and_sr_are_not_listed_over_dicomweb(world, rita):
    """The reader objects written on submit are in the study; only their reader (and admins)
    may list them."""
    from viewer.models import Instance

    theirs = set(
        Instance.objects.filter(
            sop_instance_uid__in=[world["his"]["seg_sop_uid"], world["his"]["sr_sop_uid"]]
        ).values_list("series__series_uid", flat=True)
    )
    mine = set(
        Instance.objects.filter(
            sop_instance_uid__in=[world["mine"]["seg_sop_uid"], world["mine"]["sr_sop_uid"]]
        ).values_list("series__series_uid", flat=True)
    )
    assert len(theirs) == 2
    assert len(mine) == 2
    client = session(rita)
    listed = client.get(
        f"/dicomweb/studies/{world['case'].study.study_uid}/series", HTTP_ACCEPT="application/dicom+json"
    )
    assert listed.status_code == 200
    series = {item["0020000E"]["Value"][0] for item in listed.json()}
    assert mine <= series
    assert not theirs & series


def test_a_reader_finds_only_their_own_cases_in_the_worklist(
    consensus: Any, rita: Any, rob: Any, ray: Any, adi: Any, ada: Any, store: Any
) -> None:
    """Three readers, two reads per case: each case is on two worklists only, and a case another
    reader has open shows nobody else that it is in progress. The adjudicator and the admin
    see every case."""
    ProjectMember.objects.create(project=consensus, user=ray, role=MemberRole.RADIOLOGIST)
    cases = [stored_case(seed=seed, lesions=1) for seed in (81, 82, 83)]
    project_studies_add(project=consensus, studies=[case.study for case in cases])
    assigned = {
        user.username: {
            uid
            for uid in Assignment.objects.filter(project=consensus, reader=user).values_list(
                "study__study_uid", flat=True
            )
        }
        for user in (rita, rob, ray)
    }
    every = {case.study.study_uid for case in cases}
    assert all(len(uids) == 2 for uids in assigned.values())
    assert set().union(*assigned.values()) == every
    not_ritas = next(case for case in cases if case.study.study_uid not in assigned["rita"])
    other = next(user for user in (rob, ray) if not_ritas.study.study_uid in assigned[user.username])
    read(other, not_ritas, [not_ritas.lesion(1)], SOLID, submit=False)  # now in progress

    def listed(user: Any, query: str = "?status=all") -> dict[str, str]:
        rows = api(user).get(f"/api/v1/worklist/{query}").json()["results"]
        return {row["study_uid"]: row["reading_status"] for row in rows}

    for user in (rita, rob, ray):
        assert set(listed(user)) == assigned[user.username], user.username
        assert set(listed(user, "")) <= assigned[user.username], user.username  # to read
    page = session(rita).get("/?status=all").content.decode()
    assert not_ritas.study.study_uid not in page
    assert all(uid in page for uid in assigned["rita"])  # the control: her own cases are there
    assert listed(other)[not_ritas.study.study_uid] == "in_progress"  # the control: it is there
    for user in (adi, ada):
        assert set(listed(user)) == every, user.username


def test_a_readers_worklist_status_is_their_own_read_not_the_others(
    consensus: ReadingProject, rita: Any, rob: Any, store: Any
) -> None:
    case = stored_case(seed=61, lesions=1)
    project_studies_add(project=consensus, studies=[case.study])
    read(rita, case, [case.lesion(1)], {"nodule_type": "solid", "follow_up": "no"})  # Rob has not opened it

    def row(user: Any, status: str) -> list[str]:
        answer = api(user).get(f"/api/v1/worklist/?status={status}&project={consensus.pk}").json()
        return [r["reading_status"] for r in answer["results"]]

    assert row(rita, "read") == ["read"]
    assert row(rita, "to_read") == []
    assert row(rob, "to_read") == ["waiting"]
    assert row(rob, "read") == []
