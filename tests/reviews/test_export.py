"""The labelled feedback export: a training-ready folder (manifest, NIfTI, SEG) from the
command and from the API's background export; filters; every export audited."""

from __future__ import annotations

import io
import json
import re
import zipfile

import nibabel as nib
import numpy as np
import pydicom
import pytest
from django.core.management import CommandError, call_command

from audit.models import AuditEvent
from inference.derived import dciodvfy_check
from reviews.masks import series_geometry
from reviews.models import FeedbackExport
from reviews.services.export import MANIFEST_FIELDS
from reviews.tasks import feedback_export_run
from tests.reviews.helpers import api, encode_mask

pytestmark = pytest.mark.django_db
EXPORT = "110106"


@pytest.fixture
def submitted(in_project, rita):
    """Rita's submitted reading: finding 1 accepted, finding 2 edited (one slice erased), one
    finding added by box; returns (case, the edited mask)."""
    client = api(rita)
    reading = client.post(
        "/api/v1/readings/", {"study_uid": in_project.study.study_uid}, format="json"
    ).json()
    url = f"/api/v1/readings/{reading['id']}/"
    version = client.post(url + "lock/", {"version": 1}, format="json").json()["version"]
    edited = (in_project.mask == 2).copy()
    edited[np.nonzero(edited.any(axis=(1, 2)))[0][-1]] = False
    for body in (
        {"kind": "accepted", "finding": 1, "confidence": 5},
        {"kind": "edited", "finding": 2, "confidence": 4, "mask": encode_mask(edited, in_project.slice_uids)},
        {"kind": "added", "label": "nodule", "confidence": 2, "bbox": [[3, 5], [20, 26], [30, 34]]},
    ):
        response = client.post(url + "decisions/", {"version": version, **body}, format="json")
        assert response.status_code == 201, response.content
        version = response.json()["version"]
    response = client.post(url + "submit/", {"version": version, "triage_agreement": "agree"}, format="json")
    assert response.status_code == 200, response.content
    return in_project, edited


def _manifest(folder):
    return [json.loads(line) for line in (folder / "manifest.jsonl").read_text().splitlines()]


def test_the_command_writes_a_training_ready_folder(submitted, tmp_path):
    case, edited = submitted
    folder = tmp_path / "feedback"
    call_command("export_feedback", "-o", str(folder))
    lines = _manifest(folder)
    assert [line["decision"] for line in lines] == ["accepted", "edited", "added"]
    for line in lines:
        assert tuple(line) == MANIFEST_FIELDS
        assert line["reader"] == "rita"
        assert line["reader_role"] == "radiologist"
        assert line["project"] == "Chest CT second reading"
        assert line["reading_mode"] == "unaided-first"
        assert line["phase"] == "ai_revealed"
        assert line["ai_seen_before"] is False
        assert line["study_uid"] == case.study.study_uid
        assert line["triage_agreement"] == "agree"
        assert line["seg"] == f"seg/reading-{line['reading_id']}.dcm"
    accepted, edited_line, added = lines
    assert (accepted["model_name"], accepted["model_version"]) == ("demo-unet", "1.0.0")
    assert accepted["inference_job"] == case.job.pk
    assert accepted["input_hash"] == case.job.input_hash
    assert accepted["ai_mask"] == {
        "inference_job": case.job.pk,
        "array": "mask",
        "value": 1,
        "slice_uids": "job",
    }
    assert accepted["dice"] == 1.0
    assert 0 < edited_line["dice"] < 1
    assert (added["dice"], added["ai_finding_index"], added["mask_source"]) == (None, None, "box")
    assert [line["segment_number"] for line in lines] == [1, 2, 3]

    # NIfTI: [column, row, slice], the series' spacing and orientation (RAS+).
    geometry = series_geometry(case.series, slice_uids=case.slice_uids)
    image = nib.load(folder / edited_line["mask_nifti"])
    assert image.shape == (64, 64, 16)
    data = np.asarray(image.dataobj)
    assert np.array_equal(data.transpose(2, 1, 0).astype(bool), edited)
    assert np.allclose(np.abs(np.diag(image.affine)[:3]), [4.0, 4.0, 4.0])
    first = pydicom.dcmread(io.BytesIO(_instance_bytes(case.slice_uids[0])))
    x, y, z = (float(v) for v in first.ImagePositionPatient)
    assert np.allclose(image.affine[:3, 3], [-x, -y, z])
    assert np.allclose(image.affine @ [0, 0, 1, 1], [-x, -y, z + geometry.spacing[0] * geometry.normal[2], 1])
    accepted_mask = np.asarray(nib.load(folder / accepted["mask_nifti"]).dataobj).transpose(2, 1, 0)
    assert np.array_equal(accepted_mask.astype(bool), case.mask == 1)

    # The reader's SEG, as stored at submission.
    seg_bytes = (folder / accepted["seg"]).read_bytes()
    assert dciodvfy_check(seg_bytes) == []
    assert pydicom.dcmread(io.BytesIO(seg_bytes)).Modality == "SEG"
    event = AuditEvent.objects.filter(event_id=EXPORT).latest("id")
    assert event.username.startswith("os:")
    assert '"decisions":3' in event.detail


def _instance_bytes(sop_uid):
    from viewer.models import Instance
    from viewer.store import store_open

    with store_open(Instance.objects.get(sop_instance_uid=sop_uid).storage_key) as handle:
        return handle.read()


@pytest.mark.parametrize(
    ("options", "kinds"),
    [
        ({"decision": "edited"}, ["edited"]),
        ({"project": "Chest CT second reading"}, ["accepted", "edited", "added"]),
        # The added finding was drawn with the AI in view: the model missed it, it belongs to it.
        ({"model": "demo-unet:1.0.0"}, ["accepted", "edited", "added"]),
        ({"since": "2000-01-01", "until": "2999-01-01"}, ["accepted", "edited", "added"]),
        ({"until": "2000-01-01"}, []),
    ],
)
def test_the_export_filters_by_project_model_date_and_decision(submitted, tmp_path, options, kinds):
    folder = tmp_path / "out"
    call_command("export_feedback", "-o", str(folder), *[f"--{k}={v}" for k, v in options.items()])
    assert [line["decision"] for line in _manifest(folder)] == kinds


@pytest.mark.parametrize(
    ("option", "message"),
    [
        ("--project=Another", "no project has the name or id 'Another'"),
        ("--project=99999999999999999999999", "no project has the name or id"),
        ("--model=other-model", "no model 'other-model' is registered"),
        ("--model=demo-unet:9.9.9", "no model 'demo-unet:9.9.9'"),
        ("--since=0001-01-01T00:00:00+14:00", "from the year 1900 to 9000"),
        ("--since=2024-02-30", "since is not a date"),
        ("--until=2024-01-01", "until must be after since"),
    ],
)
def test_the_command_refuses_a_filter_that_could_only_fail_or_come_out_empty(
    submitted, tmp_path, option, message
):
    """A typing slip in a name gives an error, not an empty folder that looks like an answer."""
    with pytest.raises(CommandError, match=re.escape(message)):
        call_command("export_feedback", "-o", str(tmp_path / "out"), "--since=2024-06-01", option)
    assert not (tmp_path / "out").exists()


def test_the_command_refuses_a_folder_that_is_not_empty_or_a_bad_date(tmp_path):
    (tmp_path / "x").write_text("x")
    with pytest.raises(CommandError, match="not empty"):
        call_command("export_feedback", "-o", str(tmp_path))
    with pytest.raises(CommandError, match="date"):
        call_command("export_feedback", "-o", str(tmp_path / "new"), "--since", "yesterday")


def test_readings_not_yet_submitted_are_not_exported(in_project, rita, tmp_path):
    client = api(rita)
    reading = client.post(
        "/api/v1/readings/", {"study_uid": in_project.study.study_uid}, format="json"
    ).json()
    client.post(f"/api/v1/readings/{reading['id']}/lock/", {"version": 1}, format="json")
    client.post(
        f"/api/v1/readings/{reading['id']}/decisions/",
        {"version": 2, "kind": "accepted", "finding": 1, "confidence": 5},
        format="json",
    )
    call_command("export_feedback", "-o", str(tmp_path / "out"))
    assert _manifest(tmp_path / "out") == []


def test_an_empty_filter_field_narrows_nothing_as_the_api_reference_offers_it(ada):
    # /api/docs/ fills a request with every field, the text ones as "".
    body = {"project": "", "model": "", "since": "", "until": "", "decision": "", "reference": False}
    started = api(ada).post("/api/v1/feedback/exports/", body, format="json")
    assert started.status_code == 202, started.content
    assert FeedbackExport.objects.get(pk=started.json()["id"]).filters == {}


def test_the_same_export_asked_for_twice_while_it_is_written_is_made_once(ada):
    client = api(ada)
    ask = {"decision": "accepted"}
    first, again = (client.post("/api/v1/feedback/exports/", ask, format="json") for _ in range(2))
    assert first.json()["id"] == again.json()["id"]  # a double click
    other = client.post("/api/v1/feedback/exports/", {"decision": "edited"}, format="json")
    assert other.json()["id"] != first.json()["id"]
    FeedbackExport.objects.update(status=FeedbackExport.Status.DONE)
    assert client.post("/api/v1/feedback/exports/", ask, format="json").json()["id"] != first.json()["id"]
    assert FeedbackExport.objects.count() == 3


def test_admins_export_in_the_background_and_fetching_is_audited(
    submitted, ada, django_capture_on_commit_callbacks
):
    client = api(ada)
    with django_capture_on_commit_callbacks() as callbacks:
        started = client.post("/api/v1/feedback/exports/", {"decision": "accepted"}, format="json")
    assert started.status_code == 202, started.content
    export_id = started.json()["id"]
    assert len(callbacks) == 1  # the task is sent after commit
    feedback_export_run(export_pk=export_id)  # as the worker would, twice: the second does nothing
    feedback_export_run(export_pk=export_id)
    status = client.get(f"/api/v1/feedback/exports/{export_id}/").json()
    assert (status["status"], status["total"], status["written"]) == ("done", 1, 1)
    before = AuditEvent.objects.filter(event_id=EXPORT).count()
    response = client.get(status["file_url"])
    assert response.status_code == 200
    archive = zipfile.ZipFile(io.BytesIO(b"".join(response.streaming_content)))
    names = set(archive.namelist())
    assert "feedback/manifest.jsonl" in names
    assert any(name.startswith("feedback/masks/") and name.endswith(".nii.gz") for name in names)
    assert any(name.startswith("feedback/seg/") for name in names)
    lines = [json.loads(line) for line in archive.read("feedback/manifest.jsonl").decode().splitlines()]
    assert [line["decision"] for line in lines] == ["accepted"]
    assert AuditEvent.objects.filter(event_id=EXPORT).count() == before + 1
    assert FeedbackExport.objects.get(pk=export_id).file_name


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"since": "soon"}, "since must be a date"),
        ({"since": "2024-02-30"}, "since is not a date: day is out of range for month"),
        ({"since": "9999-12-31T23:59:59-14:00"}, "since: Enter a date from the year 1900 to 9000."),
        ({"until": "0001-01-01T00:00:00+14:00"}, "until: Enter a date from the year 1900 to 9000."),
        ({"since": "2025-03-10", "until": "2025-03-09"}, "until must be after since"),
        ({"project": "\u00b2"}, "no project has the name or id"),
        ({"project": "99999999999999999999999"}, "no project has the name or id"),
        ({"model": "no-such-model"}, "no model 'no-such-model' is registered"),
        ({"decision": "ADDED"}, "decision must be one of"),
        ({"reference": True, "decision": "added"}, "a reference export is filtered by project"),
        (
            {"since": "2024-01-01T00:00:00+99:00"},
            "since is not a date: its time zone offset is not between -24:00 and +24:00",
        ),
    ],
)
def test_a_bad_export_filter_gets_400_and_queues_nothing(in_project, ada, body, message):
    response = api(ada).post("/api/v1/feedback/exports/", body, format="json")
    assert response.status_code == 400
    assert message in response.json()["detail"]
    # The field at fault is named, as every other refusal of the API names it.
    assert response.json()["field"] == ("until" if "until" in body else next(iter(body)))
    assert not FeedbackExport.objects.exists()
