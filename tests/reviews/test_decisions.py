"""Per-finding decisions: provenance, final masks and Dice; a change supersedes, nothing is
overwritten; bad input gets a specific 400 and leaves nothing behind; decisions are append-only."""

from __future__ import annotations

import base64

import numpy as np
import pytest
from django.db import DatabaseError, connection, transaction
from django.test.utils import CaptureQueriesContext

from audit.models import AuditEvent
from reviews.models import Decision, Reading
from reviews.services import DecisionInput, decision_record
from tests.conftest import require_postgresql
from tests.inference.helpers import dice as reference_dice
from tests.reviews.helpers import api, encode_mask, npz

pytestmark = pytest.mark.django_db


@pytest.fixture
def revealed(in_project, rita):
    """Rita's reading of the case, locked with the AI revealed: (client, decisions URL, version)."""
    client = api(rita)
    reading = client.post(
        "/api/v1/readings/", {"study_uid": in_project.study.study_uid}, format="json"
    ).json()
    url = f"/api/v1/readings/{reading['id']}/"
    version = client.post(url + "lock/", {"version": 1}, format="json").json()["version"]
    return client, url + "decisions/", version


def _post(revealed, **body):
    client, url, version = revealed
    return client.post(url, {"version": version, **body}, format="json")


def test_accept_records_the_ai_finding_with_full_provenance(revealed, in_project, rita):
    response = _post(revealed, kind="accepted", finding=2, confidence=5, time_spent_s=12.5)
    assert response.status_code == 201, response.content
    decision = Decision.objects.get(pk=response.json()["decision"]["id"])
    job = in_project.job
    assert (decision.reader, decision.reader_role, decision.project.name) == (
        rita,
        "radiologist",
        "Chest CT second reading",
    )
    assert (decision.reading_mode, decision.phase, decision.kind, decision.target) == (
        "unaided-first",
        "ai_revealed",
        "accepted",
        "ai-2",
    )
    assert decision.inference_job == job
    assert decision.model_version == job.model_version
    assert decision.input_hash == job.input_hash
    finding = job.findings.get(index=2)
    assert (decision.ai_finding_index, decision.ai_label, decision.ai_bbox) == (2, "lesion", finding.bbox)
    assert decision.ai_max_probability == pytest.approx(finding.max_probability)
    assert (decision.final_label, decision.final_bbox, decision.mask_source) == ("lesion", finding.bbox, "ai")
    assert decision.mask_voxels == finding.voxel_count
    assert decision.dice == 1.0
    assert decision.confidence == 5
    assert decision.time_spent_s == 12.5
    assert decision.supersedes is None
    assert response.json()["version"] == revealed[2] + 1


@pytest.mark.parametrize("body", [{}, {"confidence": None}])
def test_a_confidence_the_reader_did_not_give_is_recorded_as_not_given(revealed, body):
    response = _post(revealed, kind="accepted", finding=1, **body)

    assert response.status_code == 201, response.content
    assert response.json()["decision"]["confidence"] is None
    assert Decision.objects.get(pk=response.json()["decision"]["id"]).confidence is None


def test_a_decision_reads_the_readers_roles_once_and_its_audit_event_names_them(revealed):
    with CaptureQueriesContext(connection) as queries:
        response = _post(revealed, kind="accepted", finding=1, confidence=3)

    assert response.status_code == 201, response.content
    group_reads = [q["sql"] for q in queries.captured_queries if '"auth_user_groups"' in q["sql"]]
    # The permission check's read of the groups serves the audit event too; the other
    # query through the table is the model backend's join to the groups' permissions.
    assert len([sql for sql in group_reads if "auth_permission" not in sql]) == 1
    event = AuditEvent.objects.latest("id")  # the decision's
    assert '"decision"' in event.detail or "decision" in event.detail, event.detail
    assert (event.username, event.role) == ("rita", "radiologist")


def test_edit_stores_the_new_mask_compactly_and_its_dice(revealed, in_project):
    edited = (in_project.mask == 1).copy()
    z = int(np.nonzero(edited.any(axis=(1, 2)))[0][0])
    edited[z] = False  # the reader erases the finding's first slice
    response = _post(
        revealed, kind="edited", finding=1, confidence=4, mask=encode_mask(edited, in_project.slice_uids)
    )
    assert response.status_code == 201, response.content
    decision = Decision.objects.get(pk=response.json()["decision"]["id"])
    assert decision.mask_source == "reader"
    assert decision.dice == pytest.approx(reference_dice(in_project.mask == 1, edited), abs=1e-6)
    assert 0 < decision.dice < 1
    assert decision.mask_voxels == int(edited.sum())
    stored = npz(decision.mask_key)
    assert list(stored["sop_uids"]) == [in_project.slice_uids[k] for k in stored["slice_indices"]]
    rebuilt = np.zeros_like(edited)
    rebuilt[stored["slice_indices"]] = stored["masks"].astype(bool)
    assert np.array_equal(rebuilt, edited)
    mask_api = revealed[0].get(response.json()["decision"]["mask_url"]).json()
    assert set(mask_api["slices"]) == set(encode_mask(edited, in_project.slice_uids))


def test_edit_of_the_label_or_box_alone_keeps_the_ai_mask(revealed, in_project):
    response = _post(
        revealed, kind="edited", finding=1, confidence=3, label="nodule", bbox=[[1, 5], [2, 30], [2, 30]]
    )
    decision = Decision.objects.get(pk=response.json()["decision"]["id"])
    assert (decision.final_label, decision.final_bbox, decision.mask_source, decision.dice) == (
        "nodule",
        [[1, 5], [2, 30], [2, 30]],
        "ai",
        1.0,
    )
    assert decision.mask_key == ""


def test_override_needs_a_reason_of_the_project_and_text_for_other(revealed):
    response = _post(
        revealed, kind="overridden", finding=1, confidence=4, reason_code="other", reason_text="motion"
    )
    assert response.status_code == 201, response.content
    decision = Decision.objects.get(pk=response.json()["decision"]["id"])
    assert (decision.kind, decision.reason_code, decision.reason_text, decision.dice) == (
        "overridden",
        "other",
        "motion",
        0.0,
    )
    assert decision.mask_source == ""


def test_added_findings_are_numbered_and_have_no_dice(revealed, in_project):
    drawn = _post(
        revealed,
        kind="added",
        label="nodule",
        confidence=2,
        mask=encode_mask(in_project.mask == 2, in_project.slice_uids),
    )
    assert drawn.status_code == 201, drawn.content
    client, url, _ = revealed
    boxed = client.post(
        url,
        {
            "version": drawn.json()["version"],
            "kind": "added",
            "label": "lesion",
            "confidence": 3,
            "bbox": [[0, 2], [0, 4], [0, 3]],
        },
        format="json",
    )
    first, second = (Decision.objects.get(pk=r.json()["decision"]["id"]) for r in (drawn, boxed))
    assert (first.target, second.target) == ("added-1", "added-2")
    assert (first.mask_source, second.mask_source) == ("reader", "box")
    assert (first.dice, second.dice) == (None, None)
    # Added with the AI in view: a finding that AI result missed, so it names the job.
    reading = first.reading
    assert (first.inference_job, first.ai_finding_index) == (reading.revealed_job, None)
    assert first.model_version == reading.revealed_job.model_version
    assert first.input_hash == reading.revealed_job.input_hash
    assert second.mask_voxels == 2 * 4 * 3
    assert first.final_bbox == [[int(a), int(b)] for a, b in _bbox(in_project.mask == 2)]


def _bbox(volume):
    return [(idx.min(), idx.max() + 1) for idx in np.nonzero(volume)]


def test_a_change_supersedes_the_previous_decision_and_overwrites_nothing(revealed):
    first = _post(revealed, kind="accepted", finding=1, confidence=5)
    client, url, _ = revealed
    second = client.post(
        url,
        {
            "version": first.json()["version"],
            "kind": "overridden",
            "finding": 1,
            "confidence": 3,
            "reason_code": "wrong_location",
        },
        format="json",
    )
    assert second.status_code == 201
    old, new = (
        Decision.objects.get(pk=first.json()["decision"]["id"]),
        Decision.objects.get(pk=second.json()["decision"]["id"]),
    )
    assert new.supersedes == old
    assert (old.kind, old.confidence, old.dice) == ("accepted", 5, 1.0)  # untouched
    current = client.get(url).json()
    assert [(d["target"], d["kind"]) for d in current] == [("ai-1", "overridden")]
    history = client.get(url + "?history=1").json()
    assert [(d["kind"], d["supersedes"]) for d in history] == [("accepted", None), ("overridden", old.pk)]


def test_the_database_keeps_one_current_decision_per_finding(revealed):
    from django.db import IntegrityError

    first = Decision.objects.get(
        pk=_post(revealed, kind="accepted", finding=1, confidence=5).json()["decision"]["id"]
    )
    copy = {
        f.attname: getattr(first, f.attname)
        for f in Decision._meta.concrete_fields
        if f.attname not in {"id", "created_at", "supersedes_id"}
    }
    with pytest.raises(IntegrityError), transaction.atomic():
        Decision.objects.create(**copy)  # a second first decision on ai-1
    Decision.objects.create(**copy, supersedes=first)
    with pytest.raises(IntegrityError), transaction.atomic():
        Decision.objects.create(**copy, supersedes=first)  # a fork: two rows superseding one
    assert Decision.objects.filter(superseded_by__isnull=True, target="ai-1").count() == 1


PLANE = 64 * 64


@pytest.mark.parametrize(
    ("body", "field", "words"),
    [
        (
            {"kind": "added", "label": "lesion", "confidence": 3, "mask": "SOP"},
            "mask",
            "Expected a dictionary",
        ),
        (
            {"kind": "added", "label": "lesion", "confidence": 3, "mask": {"WRONG": "AAAA"}},
            "mask",
            "not an image of the series",
        ),
        ({"kind": "added", "label": "lesion", "confidence": 3, "mask": "SIZE"}, "mask", "expected 4096"),
        ({"kind": "added", "label": "lesion", "confidence": 3, "mask": "UINT16"}, "mask", "16-bit"),
        ({"kind": "added", "label": "lesion", "confidence": 3, "mask": "EMPTY"}, "mask", "empty"),
        ({"kind": "added", "label": "lesion", "confidence": 3, "mask": "NOTBASE64"}, "mask", "base64"),
        (
            {"kind": "overridden", "finding": 1, "confidence": 3, "reason_code": "bored"},
            "reason_code",
            "unknown reason",
        ),
        (
            {"kind": "overridden", "finding": 1, "confidence": 3, "reason_code": "other"},
            "reason_text",
            "free text",
        ),
        ({"kind": "overridden", "finding": 1, "confidence": 3}, "reason_code", "unknown reason"),
        ({"kind": "accepted", "finding": 1, "confidence": 0}, "confidence", "1 to 5"),
        ({"kind": "accepted", "finding": 1, "confidence": 6}, "confidence", "1 to 5"),
        ({"kind": "accepted", "finding": 9, "confidence": 3}, "finding", "no finding 9"),
        (
            {"kind": "added", "label": "tumour", "confidence": 3, "bbox": [[0, 1], [0, 1], [0, 1]]},
            "label",
            "unknown label",
        ),
        (
            {"kind": "added", "label": "lesion", "confidence": 3, "bbox": [[0, 99], [0, 1], [0, 1]]},
            "bbox",
            "within 16 slices",
        ),
        ({"kind": "added", "label": "lesion", "confidence": 3}, "mask", "mask or a box"),
        (  # the mask fills slice 3; the box holds a corner of slice 0
            {"kind": "added", "label": "lesion", "mask": "SLICE", "bbox": [[0, 1], [0, 2], [0, 2]]},
            "bbox",
            "does not hold the whole mask",
        ),
        (
            {"kind": "edited", "finding": 1, "mask": "SLICE", "bbox": [[3, 4], [0, 64], [0, 63]]},
            "bbox",
            "does not hold the whole mask",
        ),
        ({"kind": "accepted", "finding": 1, "time_spent_s": True}, "time_spent_s", "not true or false"),
        ({"kind": "edited", "finding": 1, "confidence": 3}, "mask", "at least one"),
        ({"kind": "accepted", "finding": 1, "confidence": 3, "mask": "SLICE"}, "kind", "takes no mask"),
        ({"kind": "withdrawn", "target": "added-7", "confidence": 3}, "target", "no added finding"),
        ({"kind": "sideways", "finding": 1, "confidence": 3}, "kind", ""),
    ],
)
def test_bad_input_gets_a_specific_400_and_leaves_nothing_behind(
    revealed, in_project, store, body, field, words
):
    uid = in_project.slice_uids[3]
    masks = {
        "SOP": "not a mapping",
        "SIZE": {uid: base64.b64encode(b"\x01" * (PLANE - 1)).decode()},
        "UINT16": {uid: base64.b64encode(np.ones(PLANE, dtype=np.uint16).tobytes()).decode()},
        "EMPTY": {uid: base64.b64encode(bytes(PLANE)).decode()},
        "NOTBASE64": {uid: "@@@"},
        "SLICE": {uid: base64.b64encode(b"\x01" * PLANE).decode()},
    }
    if isinstance(body.get("mask"), str):
        body = {**body, "mask": masks[body["mask"]]}
    files_before = sorted(p for p in store.rglob("*") if p.is_file())
    reading = Reading.objects.get()
    response = _post(revealed, **body)
    assert response.status_code == 400, response.content
    assert response.json()["field"] == field
    assert words in response.json()["detail"]
    assert not Decision.objects.exists()
    assert Reading.objects.get().version == reading.version
    assert sorted(p for p in store.rglob("*") if p.is_file()) == files_before


def test_decisions_cannot_be_changed_or_deleted_through_the_orm(revealed):
    _post(revealed, kind="accepted", finding=1, confidence=5)
    decision = Decision.objects.get()
    decision.confidence = 1
    with pytest.raises(ValueError, match="append-only"):
        decision.save()
    with pytest.raises(ValueError, match="append-only"):
        decision.delete()
    with pytest.raises(ValueError, match="append-only"):
        Decision.objects.filter(pk=decision.pk).update(confidence=1)
    with pytest.raises(ValueError, match="append-only"):
        Decision.objects.all().delete()
    assert Decision.objects.get().confidence == 5


@pytest.mark.parametrize(
    "statement", ["UPDATE reviews_decision SET confidence = 1", "DELETE FROM reviews_decision"]
)
def test_postgresql_refuses_to_change_a_decision(revealed, statement):
    require_postgresql()
    _post(revealed, kind="accepted", finding=1, confidence=5)
    verb = statement.split()[0]
    with (
        pytest.raises(DatabaseError, match=f"append-only: {verb} is not allowed"),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute(statement)
    assert Decision.objects.get().confidence == 5


def test_the_service_refuses_decisions_before_the_ai_is_revealed(in_project, rita):
    from reviews.errors import Conflict

    client = api(rita)
    reading_id = client.post(
        "/api/v1/readings/", {"study_uid": in_project.study.study_uid}, format="json"
    ).json()["id"]
    reading = Reading.objects.get(pk=reading_id)
    with pytest.raises(Conflict, match="not revealed yet"):
        decision_record(
            reading=reading, version=1, given=DecisionInput(kind="accepted", finding=1, confidence=5)
        )
    assert not Decision.objects.exists()
