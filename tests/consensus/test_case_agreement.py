"""A case is compared when its N-th read is submitted: findings matched across readers with
pairwise Dice and HD95 in mm (as reviews.consensus computes them on the same masks), misses,
answers, majority vote and STAPLE; a disagreeing case lands in the adjudication queue."""

from __future__ import annotations

import base64

import numpy as np
import pytest

from reviews.consensus import dice, hd95_mm, majority_vote, match_findings, staple
from reviews.models import ConsensusCase, ProjectStudy, Reading, ReadingProject
from reviews.services import project_studies_add
from reviews.services.consensus.cases import STAPLE_MARGIN
from reviews.tasks import consensus_case_compute_run
from tests.consensus.helpers import SPACING, grown, read, stored_case
from tests.reviews.helpers import api
from viewer.models import Series

pytestmark = pytest.mark.django_db

SOLID = {"nodule_type": "solid", "follow_up": "yes"}


def _queued(callbacks):
    return [c for c in callbacks if "consensus" in getattr(c, "__qualname__", "")]


def consensus_min_dice(row):
    return row.project.min_dice


def _case_of(case):
    return ConsensusCase.objects.get(entry__study=case.study)


def _decoded(body, slice_uids):
    volume = np.zeros((len(slice_uids), body["rows"], body["columns"]), dtype=bool)
    index = {uid: k for k, uid in enumerate(slice_uids)}
    for uid, encoded in body["slices"].items():
        plane = np.frombuffer(base64.b64decode(encoded), dtype=np.uint8).reshape(
            body["rows"], body["columns"]
        )
        volume[index[uid]] = plane != 0
    return volume


@pytest.fixture
def disagreeing(consensus, rita, rob, store, django_capture_on_commit_callbacks):
    """Rita marks both lesions; Rob draws the first a pixel wider and misses the second.
    Returns (case, Rita's volume, Rob's volume, callbacks after Rita, after Rob)."""
    case = stored_case(seed=41, lesions=2)
    project_studies_add(project=consensus, studies=[case.study])
    first, second = case.lesion(1), case.lesion(2)
    with django_capture_on_commit_callbacks() as after_rita:
        read(rita, case, [first, second], SOLID)
    with django_capture_on_commit_callbacks() as after_rob:
        read(rob, case, [grown(first)], SOLID)
    return case, first | second, grown(first), after_rita, after_rob


def test_the_nth_submit_queues_the_comparison_and_the_values_are_the_librarys(disagreeing, adi):
    case, rita_volume, rob_volume, after_rita, after_rob = disagreeing
    row = _case_of(case)
    assert _queued(after_rita) == []
    assert len(_queued(after_rob)) == 1
    assert (row.status, row.reads_done) == ("collecting", 2)
    assert ProjectStudy.objects.get(study=case.study).reading_status == "read"

    consensus_case_compute_run(case_pk=row.pk)
    consensus_case_compute_run(case_pk=row.pk)  # a second delivery computes the same again
    row.refresh_from_db()
    assert row.status == "adjudication"
    readings = row.computed_from
    agreement = row.agreement

    # The same figures as reviews.consensus on the same masks, in mm for 5 x 1.5 x 1.5 voxels.
    expected = match_findings(dict(zip(readings, [rita_volume, rob_volume], strict=True)), min_iou=0.1)
    assert len(agreement["findings"]) == len(expected.groups) == 2
    matched, missed = agreement["findings"]
    (pair,) = matched["pairs"]
    assert (pair["a"], pair["b"]) == tuple(readings)
    assert pair["dice"] == pytest.approx(dice(case.lesion(1), rob_volume), abs=1e-6)
    assert pair["hd95_mm"] == pytest.approx(hd95_mm(case.lesion(1), rob_volume, spacing=SPACING), abs=1e-4)
    assert pair["hd95_mm"] == pytest.approx(expected.group_table(0, spacing=SPACING).hd95_mm[0, 1], abs=1e-4)
    assert pair["hd95_mm"] == pytest.approx(SPACING[2])  # one pixel wider: 1.5 mm, not 1 voxel or 5 mm
    assert pair["dice"] > consensus_min_dice(row)  # the finding agrees; the miss does not
    assert missed["missed_by"] == [readings[1]]
    assert missed["pairs"] == []
    assert [m["reading"] for m in missed["marked_by"]] == [readings[0]]
    assert missed["marked_by"][0]["voxels"] == int(case.lesion(2).sum())
    assert missed["marked_by"][0]["label"] == "nodule"
    assert agreement["worst_dice"] == pytest.approx(pair["dice"], abs=1e-6)
    assert agreement["missed"] == 1
    assert row.worst_dice == 0.0  # a miss counts as no overlap in the queue's order
    assert any("not marked by every reader" in reason for reason in agreement["reasons"])
    assert all(a["agree"] for a in agreement["answers"])

    # Fusion, read back through the adjudicator's API.
    volumes = dict(zip(readings, [rita_volume, rob_volume], strict=True))
    client = api(adi)
    majority = client.get(f"/api/v1/consensus/cases/{row.pk}/masks/majority/")
    assert majority.status_code == 200
    assert np.array_equal(_decoded(majority.json(), case.slice_uids), majority_vote(volumes))
    fused = staple(volumes, margin=STAPLE_MARGIN)
    staple_body = client.get(f"/api/v1/consensus/cases/{row.pk}/masks/staple/").json()
    assert np.array_equal(_decoded(staple_body, case.slice_uids), fused.mask)
    for estimate in row.staple_readers:
        assert estimate["sensitivity"] == pytest.approx(fused.sensitivity[estimate["reading"]], abs=1e-6)
        assert estimate["specificity"] == pytest.approx(fused.specificity[estimate["reading"]], abs=1e-6)
    assert row.staple_readers[0]["sensitivity"] > row.staple_readers[1]["sensitivity"]


def test_an_agreeing_case_is_agreed_and_stays_out_of_the_queue(disagreeing, consensus, rita, rob, adi):
    case, *_ = disagreeing
    agreeing = stored_case(seed=42, lesions=1)
    project_studies_add(project=consensus, studies=[agreeing.study])
    read(rita, agreeing, [agreeing.lesion(1)], SOLID)
    read(rob, agreeing, [agreeing.lesion(1)], SOLID)
    for study_case in (case, agreeing):
        consensus_case_compute_run(case_pk=_case_of(study_case).pk)
    good, bad = _case_of(agreeing), _case_of(case)
    assert good.status == "agreed"
    assert good.agreement["agree"]
    assert good.worst_dice == 1.0
    assert good.agreement["findings"][0]["pairs"][0]["hd95_mm"] == 0.0

    client = api(adi)
    queue = client.get(f"/api/v1/consensus/projects/{consensus.pk}/cases/")
    assert queue.status_code == 200
    assert [c["id"] for c in queue.json()["results"]] == [bad.pk]
    agreed = client.get(f"/api/v1/consensus/projects/{consensus.pk}/cases/?status=agreed").json()["results"]
    assert [c["id"] for c in agreed] == [good.pk]

    # Adjudicating every case: both queue, the lowest agreement first.
    ReadingProject.objects.filter(pk=consensus.pk).update(adjudicate_all=True)
    queue = client.get(f"/api/v1/consensus/projects/{consensus.pk}/cases/").json()["results"]
    assert [c["id"] for c in queue] == [bad.pk, good.pk]
    assert client.get(f"/api/v1/consensus/projects/{consensus.pk}/cases/?status=nonsense").status_code == 400


def test_different_answers_send_an_otherwise_agreeing_case_to_adjudication(consensus, rita, rob, store):
    case = stored_case(seed=43, lesions=1)
    project_studies_add(project=consensus, studies=[case.study])
    read(rita, case, [case.lesion(1)], SOLID)
    read(rob, case, [case.lesion(1)], {**SOLID, "follow_up": "no"})
    consensus_case_compute_run(case_pk=_case_of(case).pk)
    row = _case_of(case)
    assert row.status == "adjudication"
    assert row.worst_dice == 1.0
    by_code = {a["code"]: a for a in row.agreement["answers"]}
    assert by_code["nodule_type"]["agree"]
    assert not by_code["follow_up"]["agree"]
    assert [a["choice"] for a in by_code["follow_up"]["answers"]] == ["yes", "no"]
    assert row.agreement["reasons"] == ["answers differ: Follow-up CT needed"]


def test_a_case_no_reader_marked_agrees_with_empty_fusion(consensus, rita, rob, store, adi):
    case = stored_case(seed=44, lesions=0)
    project_studies_add(project=consensus, studies=[case.study])
    read(rita, case, [], SOLID)
    read(rob, case, [], SOLID)
    consensus_case_compute_run(case_pk=_case_of(case).pk)
    row = _case_of(case)
    assert row.status == "agreed"
    assert row.worst_dice is None
    assert row.agreement["findings"] == []
    assert {e["sensitivity"] for e in row.staple_readers} == {None}
    body = api(adi).get(f"/api/v1/consensus/cases/{row.pk}/masks/staple/").json()
    assert body["slices"] == {}
    assert (body["rows"], body["columns"]) == (64, 64)


def test_the_case_is_compared_only_once_it_has_all_its_reads(consensus, rita, store):
    case = stored_case(seed=45, lesions=1)
    project_studies_add(project=consensus, studies=[case.study])
    read(rita, case, [case.lesion(1)], SOLID)
    row = _case_of(case)
    consensus_case_compute_run(case_pk=row.pk)  # called early (a stray delivery): nothing happens
    row.refresh_from_db()
    assert (row.status, row.reads_done, row.computed_at, row.agreement) == ("collecting", 1, None, {})


def test_reads_that_cannot_be_compared_send_the_case_to_adjudication_with_the_reason(
    consensus, rita, rob, store, adi
):
    case = stored_case(seed=46, lesions=1)
    project_studies_add(project=consensus, studies=[case.study])
    read(rita, case, [case.lesion(1)], SOLID)
    his = read(rob, case, [case.lesion(1)], SOLID)
    other = Series.objects.create(series_uid="1.2.826.0.1.46", study=case.study, modality="CT")
    Reading.objects.filter(pk=his["id"]).update(series=other)  # as if he had read another series
    row = _case_of(case)
    consensus_case_compute_run(case_pk=row.pk)
    row.refresh_from_db()
    assert row.status == "adjudication"
    assert f"reading {his['id']} was made on another series" in row.error
    client = api(adi)
    assert client.get(f"/api/v1/consensus/cases/{row.pk}/").json()["error"] == row.error
    assert client.get(f"/api/v1/consensus/cases/{row.pk}/masks/majority/").status_code == 404
    refused = client.post(
        f"/api/v1/consensus/cases/{row.pk}/reference/",
        {"version": 0, "source": "majority", "answers": SOLID, "rationale": "r"},
        format="json",
    )
    assert refused.status_code == 409
