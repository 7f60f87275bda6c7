"""A reading's life: unaided first (lock freezes, reveal records the job), AI first, active
time, optimistic concurrency, and the reader's SEG and SR on submission."""

from __future__ import annotations

import pydicom
import pytest

from inference.derived import codes, dciodvfy_check
from reviews.models import Decision, ProjectStudy, Reading, ReadingProject
from tests.reviews.helpers import api, encode_mask
from viewer.models import Instance
from viewer.store import store_open

pytestmark = pytest.mark.django_db


def _start(client, case):
    response = client.post("/api/v1/readings/", {"study_uid": case.study.study_uid}, format="json")
    assert response.status_code in (200, 201), response.content
    return response.json()


def test_an_unaided_first_reading_hides_the_ai_until_the_lock(in_project, rita):
    client = api(rita)
    reading = _start(client, in_project)
    assert reading["phase"] == "unaided"
    assert reading["ai"] is None
    assert reading["slice_uids"] == in_project.slice_uids
    assert reading["version"] == 1


def test_locking_freezes_the_unaided_read_and_reveals_the_ai_recording_the_job(in_project, rita):
    client = api(rita)
    reading = _start(client, in_project)
    url = f"/api/v1/readings/{reading['id']}/"
    added = client.post(
        url + "decisions/",
        {
            "version": 1,
            "kind": "added",
            "label": "lesion",
            "confidence": 4,
            "mask": encode_mask(in_project.mask == 1, in_project.slice_uids),
        },
        format="json",
    )
    assert added.status_code == 201, added.content
    assert added.json()["decision"]["phase"] == "unaided"
    locked = client.post(url + "lock/", {"version": 2, "unaided_impression": "one nodule"}, format="json")
    assert locked.status_code == 200, locked.content
    body = locked.json()
    assert body["phase"] == "ai_revealed"
    assert body["ai"]["job"] == in_project.job.pk
    assert [f["index"] for f in body["ai"]["findings"]] == [1, 2]
    saved = Reading.objects.get(pk=reading["id"])
    assert saved.revealed_job == in_project.job
    assert saved.locked_at is not None
    assert saved.revealed_at is not None

    # The unaided read is frozen: its impression and its findings can no longer change.
    again = client.patch(url, {"version": body["version"], "unaided_impression": "changed"}, format="json")
    assert again.status_code == 409
    assert "locked" in again.json()["detail"]
    withdraw = client.post(
        url + "decisions/",
        {"version": body["version"], "kind": "withdrawn", "target": "added-1", "confidence": 3},
        format="json",
    )
    assert withdraw.status_code == 409
    assert "unaided" in withdraw.json()["detail"]
    relock = client.post(url + "lock/", {"version": body["version"]}, format="json")
    assert relock.status_code == 409
    saved.refresh_from_db()
    assert saved.unaided_impression == "one nodule"
    assert saved.version == body["version"]


def test_an_ai_first_reading_starts_with_the_ai_revealed(in_project, rita, project):
    ReadingProject.objects.filter(pk=project.pk).update(reading_mode=ReadingProject.Mode.AI_FIRST)
    reading = _start(api(rita), in_project)
    assert reading["phase"] == "ai_revealed"
    assert reading["reading_mode"] == "ai-first"
    assert reading["ai"]["job"] == in_project.job.pk
    assert Reading.objects.get(pk=reading["id"]).revealed_job == in_project.job


def test_opening_a_reading_twice_returns_the_same_one(in_project, rita):
    client = api(rita)
    first = client.post("/api/v1/readings/", {"study_uid": in_project.study.study_uid}, format="json")
    second = client.post("/api/v1/readings/", {"study_uid": in_project.study.study_uid}, format="json")
    assert (first.status_code, second.status_code) == (201, 200)
    assert first.json()["id"] == second.json()["id"]
    assert ProjectStudy.objects.get(study=in_project.study).reading_status == "in_progress"


@pytest.mark.parametrize("value", [0, -1, 2**63, 10**23, "\u00b2"])
def test_a_project_that_cannot_be_an_id_is_refused_and_starts_nothing(in_project, rita, value):
    response = api(rita).post(
        "/api/v1/readings/", {"study_uid": in_project.study.study_uid, "project": value}, format="json"
    )
    assert response.status_code == 400
    assert response.json()["field"] == "project"
    assert not Reading.objects.exists()


def test_heartbeats_count_active_time_per_phase_and_refuse_idle_gaps(in_project, rita):
    client = api(rita)
    reading = _start(client, in_project)
    url = f"/api/v1/readings/{reading['id']}/"
    assert client.post(url + "heartbeat/", {"seconds": 15}, format="json").json()["unaided_seconds"] == 15
    assert client.post(url + "heartbeat/", {"seconds": 20}, format="json").json()["unaided_seconds"] == 35
    too_long = client.post(url + "heartbeat/", {"seconds": 600}, format="json")
    assert too_long.status_code == 400
    assert too_long.json()["field"] == "seconds"
    assert client.post(url + "heartbeat/", {"seconds": 0}, format="json").status_code == 400
    flag = client.post(url + "heartbeat/", {"seconds": True}, format="json")  # not 1 second
    assert (flag.status_code, flag.json()["field"]) == (400, "seconds")
    client.post(url + "lock/", {"version": 1}, format="json")
    beat = client.post(url + "heartbeat/", {"seconds": 10}, format="json").json()
    assert (beat["unaided_seconds"], beat["aided_seconds"]) == (35, 10)
    assert beat["version"] == 2  # heartbeats do not move the version


def test_a_stale_write_gets_409_and_changes_nothing(in_project, rita):
    client = api(rita)
    reading = _start(client, in_project)
    url = f"/api/v1/readings/{reading['id']}/"
    assert client.patch(url, {"version": 1, "unaided_impression": "first"}, format="json").status_code == 200
    stale = client.patch(url, {"version": 1, "unaided_impression": "second"}, format="json")
    assert stale.status_code == 409
    assert stale.json()["version"] == 2
    assert "changed since you read it" in stale.json()["detail"]
    stale_lock = client.post(url + "lock/", {"version": 1}, format="json")
    assert stale_lock.status_code == 409
    stale_decision = client.post(
        url + "decisions/",
        {"version": 1, "kind": "added", "label": "lesion", "confidence": 3, "bbox": [[1, 3], [1, 5], [1, 5]]},
        format="json",
    )
    assert stale_decision.status_code == 409
    saved = Reading.objects.get(pk=reading["id"])
    assert (saved.version, saved.phase, saved.unaided_impression) == (2, "unaided", "first")
    assert not Decision.objects.exists()
    # A write that changes nothing leaves the version as it is: no other window goes stale.
    idle = client.patch(url, {"version": 2}, format="json")
    assert (idle.status_code, idle.json()["version"]) == (200, 2)
    assert client.patch(url, {"version": 2, "unaided_impression": "third"}, format="json").status_code == 200


def _decide_all(client, url, case, version):
    for body in (
        {"kind": "accepted", "finding": 1, "confidence": 5},
        {"kind": "overridden", "finding": 2, "confidence": 4, "reason_code": "false_positive_benign"},
        {"kind": "added", "label": "nodule", "confidence": 3, "bbox": [[2, 4], [10, 16], [10, 16]]},
    ):
        response = client.post(url + "decisions/", {"version": version, **body}, format="json")
        assert response.status_code == 201, response.content
        version = response.json()["version"]
    return version


def _locked_and_decided(client, case):
    """A reading of the case, locked, with a decision on each AI finding and one added: the
    reading, its URL and its version."""
    reading = _start(client, case)
    url = f"/api/v1/readings/{reading['id']}/"
    version = client.post(url + "lock/", {"version": 1}, format="json").json()["version"]
    return reading, url, _decide_all(client, url, case, version)


def _stored(sop_uid):
    instance = Instance.objects.get(sop_instance_uid=sop_uid)
    with store_open(instance.storage_key) as handle:
        return handle.read(), instance


def test_submitting_writes_a_valid_reader_seg_and_sr_into_the_study(in_project, rita):
    client = api(rita)
    _, url, version = _locked_and_decided(client, in_project)
    early = client.post(url + "submit/", {"version": version}, format="json")
    assert early.status_code == 400
    assert early.json()["field"] == "triage_agreement"
    submitted = client.post(
        url + "submit/",
        {"version": version, "triage_agreement": "agree", "final_impression": "one lesion"},
        format="json",
    )
    assert submitted.status_code == 200, submitted.content
    body = submitted.json()
    assert body["phase"] == "submitted"
    assert ProjectStudy.objects.get(study=in_project.study).reading_status == "read"

    seg_bytes, seg_instance = _stored(body["seg_sop_uid"])
    sr_bytes, sr_instance = _stored(body["sr_sop_uid"])
    assert seg_instance.series.study == in_project.study
    assert sr_instance.series.study == in_project.study
    assert dciodvfy_check(seg_bytes) == []
    assert dciodvfy_check(sr_bytes) == []

    seg = pydicom.dcmread(__import__("io").BytesIO(seg_bytes))
    assert [int(s.SegmentNumber) for s in seg.SegmentSequence] == [1, 2, 3]
    assert [s.SegmentLabel for s in seg.SegmentSequence] == ["lesion", "lesion", "nodule"]
    assert seg.ContentCreatorName == "Reader^Rita"
    sr = pydicom.dcmread(__import__("io").BytesIO(sr_bytes))
    text = str(sr)
    assert "Reader^Rita" in text
    assert codes.ACCEPTED.value in text
    assert codes.OVERRIDDEN.value in text
    assert codes.ADDED_BY_READER.value in text
    assert codes.FALSE_POSITIVE_BENIGN.value in text
    assert any(
        item.CodingSchemeDesignator == codes.LOCAL_SCHEME for item in sr.CodingSchemeIdentificationSequence
    )

    # Submitted means final: nothing changes any more.
    after = client.post(
        url + "decisions/",
        {"version": body["version"], "kind": "accepted", "finding": 2, "confidence": 5},
        format="json",
    )
    assert after.status_code == 409


def test_submitting_needs_a_decision_on_every_ai_finding(in_project, rita):
    client = api(rita)
    reading = _start(client, in_project)
    url = f"/api/v1/readings/{reading['id']}/"
    version = client.post(url + "lock/", {"version": 1}, format="json").json()["version"]
    version = client.post(
        url + "decisions/",
        {"version": version, "kind": "accepted", "finding": 1, "confidence": 5},
        format="json",
    ).json()["version"]
    response = client.post(
        url + "submit/", {"version": version, "triage_agreement": "disagree"}, format="json"
    )
    assert response.status_code == 400
    assert "still open: 2" in response.json()["detail"]
    assert Reading.objects.get(pk=reading["id"]).phase == "ai_revealed"


def test_a_reading_that_overrides_every_ai_finding_still_submits_valid_objects(in_project, rita):
    client = api(rita)
    reading = _start(client, in_project)
    url = f"/api/v1/readings/{reading['id']}/"
    version = client.post(url + "lock/", {"version": 1}, format="json").json()["version"]
    for finding in (1, 2):
        body = {
            "version": version,
            "kind": "overridden",
            "finding": finding,
            "confidence": 4,
            "reason_code": "wrong_label",
        }
        version = client.post(url + "decisions/", body, format="json").json()["version"]
    submitted = client.post(
        url + "submit/", {"version": version, "triage_agreement": "disagree"}, format="json"
    )
    assert submitted.status_code == 200, submitted.content
    body = submitted.json()
    assert dciodvfy_check(_stored(body["seg_sop_uid"])[0]) == []
    assert dciodvfy_check(_stored(body["sr_sop_uid"])[0]) == []


def test_a_study_with_one_finding_gives_a_one_segment_seg_the_sr_references(store, project, rita):
    from reviews.services import project_studies_add
    from tests.reviews.helpers import ai_result, stored_study

    case = ai_result(stored_study(seed=21, lesions=1))
    project_studies_add(project=project, studies=[case.study])
    client = api(rita)
    reading = _start(client, case)
    url = f"/api/v1/readings/{reading['id']}/"
    version = client.post(url + "lock/", {"version": 1}, format="json").json()["version"]
    body = {"version": version, "kind": "accepted", "finding": 1, "confidence": 5}
    version = client.post(url + "decisions/", body, format="json").json()["version"]
    submitted = client.post(url + "submit/", {"version": version, "triage_agreement": "agree"}, format="json")
    assert submitted.status_code == 200, submitted.content
    assert dciodvfy_check(_stored(submitted.json()["seg_sop_uid"])[0]) == []
    assert dciodvfy_check(_stored(submitted.json()["sr_sop_uid"])[0]) == []


def test_a_reading_whose_images_left_the_store_is_refused_at_submit_and_stays_open(in_project, rita):
    client = api(rita)
    reading, url, version = _locked_and_decided(client, in_project)
    Instance.objects.filter(series=in_project.series).delete()  # an operator removed them
    response = client.post(url + "submit/", {"version": version, "triage_agreement": "agree"}, format="json")
    assert response.status_code == 409
    assert "holds no images" in response.json()["detail"]
    saved = Reading.objects.get(pk=reading["id"])
    assert (saved.phase, saved.version, saved.seg_sop_uid) == ("ai_revealed", version, "")
