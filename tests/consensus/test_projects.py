"""Consensus projects: N reads per case, balanced assignment of distinct readers, cases handed
on when a reader leaves, only assigned readers read, and the label schema's answers."""

from __future__ import annotations

from collections import Counter

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from reviews.errors import Invalid
from reviews.models import (
    Assignment,
    ConsensusCase,
    MemberRole,
    ProjectMember,
    ProjectStudy,
    Reading,
    ReadingProject,
    validate_label_schema,
)
from reviews.services import (
    assignment_create,
    consensus_reassign_inactive,
    project_studies_add,
    reading_update,
)
from tests.reviews.helpers import api
from tests.reviews.test_worklist import make_study

pytestmark = pytest.mark.django_db


@pytest.fixture
def three_readers(consensus, ray):
    ProjectMember.objects.create(project=consensus, user=ray, role=MemberRole.RADIOLOGIST)
    return consensus


def _readers_by_case(project):
    cases: dict[int, list[str]] = {}
    for study_pk, name in Assignment.objects.filter(project=project).values_list(
        "study_id", "reader__username"
    ):
        cases.setdefault(study_pk, []).append(name)
    return cases


def _open_load(project):
    submitted = set(
        Reading.objects.filter(project=project, phase=Reading.Phase.SUBMITTED).values_list(
            "study_id", "reader_id"
        )
    )
    return Counter(
        a.reader.username
        for a in Assignment.objects.filter(project=project).select_related("reader")
        if (a.study_id, a.reader_id) not in submitted
    )


def test_a_consensus_project_needs_two_or_more_reads_per_case(db):
    project = ReadingProject(name="Too few", kind=ReadingProject.Kind.CONSENSUS, reads_per_case=1)
    with pytest.raises(ValidationError) as refused:
        project.full_clean()
    assert "reads_per_case" in refused.value.message_dict
    with pytest.raises(IntegrityError), transaction.atomic():
        project.save()
    ReadingProject.objects.create(name="Second reading")  # one read per case stays the default


@pytest.mark.parametrize(
    "schema",
    [
        {"questions": [{"code": "a", "text": "A?", "choices": ["yes"]}]},  # one choice
        {"questions": [{"code": "a", "text": "A?", "choices": ["yes", "yes"]}]},
        {"questions": [{"code": "a b", "text": "A?", "choices": ["yes", "no"]}]},
        {"questions": [{"code": "a", "text": "", "choices": ["yes", "no"]}]},
        {"questions": [{"code": "a", "text": "A?", "choices": ["y", "n"]}] * 2},
        {"questions": [{"code": "a", "text": "A?", "choices": ["y", "n"], "extra": 1}]},
        ["a"],
    ],
)
def test_a_label_schema_is_checked(schema):
    with pytest.raises(ValidationError):
        validate_label_schema(schema)


def test_each_case_gets_n_distinct_readers_balanced_across_readers(three_readers):
    first = [make_study(hours_waiting=h) for h in range(4)]
    project_studies_add(project=three_readers, studies=first)
    project_studies_add(project=three_readers, studies=[make_study(hours_waiting=h) for h in (5, 6)])
    cases = _readers_by_case(three_readers)
    assert len(cases) == 6
    for readers in cases.values():
        assert len(readers) == 2
        assert len(set(readers)) == 2
        assert "adi" not in readers
    load = Counter(name for readers in cases.values() for name in readers)
    assert set(load) == {"rita", "rob", "ray"}
    assert max(load.values()) - min(load.values()) <= 1
    assert ConsensusCase.objects.filter(project=three_readers, status="collecting").count() == 6


def test_assignment_goes_to_the_readers_with_the_fewest_open_cases(three_readers, rita):
    busy = [make_study(hours_waiting=h) for h in (1, 2)]
    for study in busy:
        assignment_create(project=three_readers, study=study, reader=rita)
    new = make_study(hours_waiting=3)
    project_studies_add(project=three_readers, studies=[new])
    assert sorted(Assignment.objects.filter(study=new).values_list("reader__username", flat=True)) == [
        "ray",
        "rob",
    ]
    # Once Rita's cases are submitted they no longer weigh on her: her open load is back to 0.
    for study in busy:
        Reading.objects.create(
            project=three_readers,
            study=study,
            reader=rita,
            reader_role="radiologist",
            reading_mode="unaided-first",
            phase=Reading.Phase.SUBMITTED,
            series=study.series.get(),
            rows=1,
            columns=1,
        )
    later = make_study(hours_waiting=4)
    project_studies_add(project=three_readers, studies=[later])
    assert "rita" in Assignment.objects.filter(study=later).values_list("reader__username", flat=True)


def test_a_reader_who_leaves_hands_on_the_cases_they_had_not_submitted(three_readers, rita):
    studies = [make_study(hours_waiting=h) for h in range(6)]
    project_studies_add(project=three_readers, studies=studies)
    hers = [s for s in studies if Assignment.objects.filter(study=s, reader=rita).exists()]
    done = hers[0]
    Reading.objects.create(
        project=three_readers,
        study=done,
        reader=rita,
        reader_role="radiologist",
        reading_mode="unaided-first",
        phase=Reading.Phase.SUBMITTED,
        series=done.series.get(),
        rows=1,
        columns=1,
    )
    ProjectMember.objects.get(project=three_readers, user=rita).delete()

    cases = _readers_by_case(three_readers)
    assert "rita" in cases[done.pk]  # her submitted read stays hers
    for study in hers[1:]:
        assert "rita" not in cases[study.pk]
        assert len(cases[study.pk]) == 2
        assert len(set(cases[study.pk])) == 2
    assert _open_load(three_readers)["rita"] == 0


def test_a_deactivated_readers_cases_are_handed_on(three_readers, rob):
    studies = [make_study(hours_waiting=h) for h in range(3)]
    project_studies_add(project=three_readers, studies=studies)
    his = Assignment.objects.filter(project=three_readers, reader=rob).count()
    rob.is_active = False
    rob.save()
    assert consensus_reassign_inactive(project=three_readers) == his
    assert not Assignment.objects.filter(project=three_readers, reader=rob).exists()
    for readers in _readers_by_case(three_readers).values():
        assert sorted(readers) == ["ray", "rita"]
    # New cases never go to a deactivated reader.
    project_studies_add(project=three_readers, studies=[make_study(hours_waiting=9)])
    assert not Assignment.objects.filter(project=three_readers, reader=rob).exists()


def test_removing_a_project_does_not_reassign(three_readers, rita):
    # Deleting a user's memberships along with something else (here the whole project) hands
    # nothing on: only a membership deleted on its own does.
    project_studies_add(project=three_readers, studies=[make_study(hours_waiting=1)])
    ReadingProject.objects.filter(pk=three_readers.pk).delete()
    assert not Assignment.objects.exists()


def test_only_the_cases_assigned_readers_may_open_a_reading(three_readers, store):
    from tests.consensus.helpers import stored_case

    case = stored_case(seed=31, lesions=1)
    project_studies_add(project=three_readers, studies=[case.study])
    assigned = set(Assignment.objects.filter(study=case.study).values_list("reader__username", flat=True))
    outsider = ({"rita", "rob", "ray"} - assigned).pop()
    user = ProjectMember.objects.get(project=three_readers, user__username=outsider).user
    refused = api(user).post("/api/v1/readings/", {"study_uid": case.study.study_uid}, format="json")
    assert refused.status_code == 403
    assert not Reading.objects.filter(reader=user).exists()
    assert ProjectStudy.objects.get(study=case.study).reading_status == "waiting"


def test_answers_are_checked_against_the_schema_and_needed_to_submit(consensus, rita, store):
    from tests.consensus.helpers import stored_case

    case = stored_case(seed=32, lesions=1)
    project_studies_add(project=consensus, studies=[case.study])
    client = api(rita)
    reading = client.post("/api/v1/readings/", {"study_uid": case.study.study_uid}, format="json").json()
    saved = Reading.objects.get(pk=reading["id"])
    for answers in ({"colour": "red"}, {"follow_up": "maybe"}, ["yes"]):
        with pytest.raises(Invalid) as refused:
            reading_update(reading=saved, version=saved.version, answers=answers)
        assert refused.value.field == "answers"
    url = f"/api/v1/readings/{reading['id']}/"
    version = client.post(url + "lock/", {"version": 1}, format="json").json()["version"]
    saved = reading_update(
        reading=Reading.objects.get(pk=reading["id"]), version=version, answers={"follow_up": "no"}
    )
    assert saved.answers == {"follow_up": "no"}
    early = client.post(url + "submit/", {"version": saved.version}, format="json")
    assert early.status_code == 400
    assert early.json()["field"] == "answers"
    assert "still open: Main nodule type (nodule_type)" in early.json()["detail"]  # as the reader reads it
    saved = reading_update(reading=saved, version=saved.version, answers={"nodule_type": "solid"})
    assert saved.answers == {"follow_up": "no", "nodule_type": "solid"}  # merged
    done = client.post(url + "submit/", {"version": saved.version}, format="json")
    assert done.status_code == 200, done.content
