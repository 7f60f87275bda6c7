"""The inference API and pages: what readers, annotators and admins see of jobs and outputs."""

from __future__ import annotations

import gzip

import numpy as np
import pytest
from django.test import Client

from audit.models import AuditEvent
from inference.execution import job_execute
from inference.models import InferenceJob, ModelVersion
from inference.services import job_request
from tests.inference.helpers import demo_model, ingest, small_study

pytestmark = pytest.mark.django_db


@pytest.fixture
def study(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    return small_study()


@pytest.fixture
def done(study):
    """A succeeded job of the active demo model on the study."""
    model = demo_model()
    job = job_request(series=ingest(study.datasets), model=model)
    job_execute(job_pk=job.pk, task_id="t")
    job.refresh_from_db()
    assert job.status == "succeeded", job.error
    return job


def _client(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_the_viewer_gets_the_overlay_of_a_study(done, study, rita):
    response = _client(rita).get(f"/api/v1/studies/{study.study_uid}/ai/")
    assert response.status_code == 200
    data = response.json()
    assert data["status"] == "succeeded"
    assert data["job"] == done.pk
    assert data["model"] == {
        "name": "overread-demo-lesion",
        "version": done.model_version.version,
        "status": "active",
        "demonstration": True,
        "threshold": done.model_version.threshold,
    }
    assert sorted(data["slices"]) == sorted(ds.SOPInstanceUID for ds in study.datasets)
    assert (data["rows"], data["columns"]) == (128, 128)
    assert data["findings"]
    assert {"index", "bbox", "max_probability", "centroid_voxel"} <= set(data["findings"][0])
    assert AuditEvent.objects.filter(event_id="110103", inference_job_id=done.pk, username="rita").exists()


def test_arrays_come_whole_or_by_slice(done, study, rita):
    client = _client(rita)
    whole = client.get(f"/api/v1/inference/jobs/{done.pk}/arrays/mask/")
    assert whole.status_code == 200
    assert whole["Content-Type"] == "application/octet-stream"
    assert whole["X-Array-Shape"] == "16,128,128"
    mask = np.frombuffer(whole.content, np.uint8).reshape(16, 128, 128)
    k = int(np.argmax(mask.reshape(16, -1).sum(axis=1)))
    one = client.get(f"/api/v1/inference/jobs/{done.pk}/arrays/mask/?slice={k}")
    assert one["X-Array-Shape"] == "1,128,128"
    assert one.content == mask[k].tobytes()
    heat = client.get(f"/api/v1/inference/jobs/{done.pk}/arrays/heatmap/?slice={k}")
    assert len(heat.content) == 128 * 128


@pytest.mark.parametrize("kind", ["mask", "heatmap"])
def test_a_client_that_takes_gzip_gets_the_whole_array_deflated(done, rita, kind):
    client = _client(rita)
    url = f"/api/v1/inference/jobs/{done.pk}/arrays/{kind}/"
    plain = client.get(url)
    assert "Content-Encoding" not in plain
    assert len(plain.content) == 16 * 128 * 128

    for accepts in ("gzip, deflate, br, zstd", "br;q=1.0, gzip;q=0.8", "*"):  # Chromium's, weighted, any
        packed = client.get(url, HTTP_ACCEPT_ENCODING=accepts)
        assert packed["Content-Encoding"] == "gzip", accepts
        assert packed["X-Array-Shape"] == "16,128,128"
        assert "Accept-Encoding" in packed["Vary"]
        assert len(packed.content) < len(plain.content) / 2
        assert gzip.decompress(packed.content) == plain.content
    for refuses in ("identity", "gzip;q=0", "br"):
        assert "Content-Encoding" not in client.get(url, HTTP_ACCEPT_ENCODING=refuses), refuses


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("?slice=16", "0..15"),
        ("?slice=-1", "0..15"),
        ("?slice=x", "whole number"),
        ("?slice=1_0", "whole number"),  # int() reads it as 10
        ("?slice=+1", "whole number"),
        ("?slice=" + "9" * 40, "whole number"),
    ],
)
def test_a_bad_slice_is_a_400_that_says_why(done, rita, query, message):
    response = _client(rita).get(f"/api/v1/inference/jobs/{done.pk}/arrays/heatmap/{query}")
    assert response.status_code == 400
    assert message in response.json()["slice"][0]


def test_unknown_arrays_and_jobs_are_404(done, rita):
    client = _client(rita)
    assert client.get(f"/api/v1/inference/jobs/{done.pk}/arrays/probability/").status_code == 404
    assert client.get(f"/api/v1/inference/jobs/{done.pk + 99}/").status_code == 404


def test_a_shadow_models_outputs_are_hidden_from_readers_but_not_from_admins(study, rita, ada):
    shadow = demo_model(status=ModelVersion.Status.SHADOW)
    job = job_request(series=ingest(study.datasets), model=shadow)
    job_execute(job_pk=job.pk, task_id="t")
    reader, admin = _client(rita), _client(ada)
    assert reader.get(f"/api/v1/studies/{study.study_uid}/ai/").json()["status"] == "none"
    assert reader.get(f"/api/v1/inference/jobs/{job.pk}/").status_code == 404
    assert reader.get(f"/api/v1/inference/jobs/{job.pk}/arrays/mask/").status_code == 404
    assert admin.get(f"/api/v1/inference/jobs/{job.pk}/").json()["status"] == "succeeded"
    # Its DICOM objects stay beside the job, out of the index that DICOMweb serves.
    qido = reader.get(f"/dicomweb/studies/{study.study_uid}/series")
    assert {s["00080060"]["Value"][0] for s in qido.json()} == {"CT"}


def test_a_reader_asks_for_a_job_and_cancels_it(study, rita):
    demo_model()
    series = ingest(study.datasets)
    client = _client(rita)
    response = client.post(
        "/api/v1/inference/jobs/", {"series_uid": series.series_uid, "model": "overread-demo-lesion"}
    )
    assert response.status_code == 202, response.content
    pk = response.json()["job"]
    assert client.post(f"/api/v1/inference/jobs/{pk}/cancel/").json()["status"] == "cancelled"
    again = client.post(f"/api/v1/inference/jobs/{pk}/cancel/")
    assert again.status_code == 409
    assert "already cancelled" in again.json()["detail"]
    rerun = client.post(f"/api/v1/inference/jobs/{pk}/rerun/")
    assert rerun.status_code == 202
    assert rerun.json()["status"] == "queued"


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        ({"series_uid": "1.2.3", "model": "overread-demo-lesion"}, "series_uid", "no such series"),
        ({"model": "overread-demo-lesion"}, "series_uid", "required"),
        ("series", "model", "no model 'nope'"),
    ],
)
def test_a_bad_job_request_is_a_400_that_names_the_field(study, rita, body, field, message):
    demo_model()
    series = ingest(study.datasets)
    if body == "series":
        body = {"series_uid": series.series_uid, "model": "nope"}
    response = _client(rita).post("/api/v1/inference/jobs/", body)
    assert response.status_code == 400
    assert message in response.json()[field][0]
    assert not InferenceJob.objects.exists()


def test_annotators_see_jobs_but_cannot_start_or_cancel_them(done, anna):
    client = _client(anna)
    assert client.get(f"/api/v1/inference/jobs/{done.pk}/").status_code == 200
    assert client.post(f"/api/v1/inference/jobs/{done.pk}/rerun/").status_code == 403
    assert client.post(f"/api/v1/inference/jobs/{done.pk}/cancel/").status_code == 403


def test_the_status_partial_polls_while_running_and_stops_when_done(study, rita):
    model = demo_model()
    job = job_request(series=ingest(study.datasets), model=model)
    client = _client(rita)
    running = client.get(f"/inference/jobs/{job.pk}/status/", headers={"HX-Request": "true"})
    assert running.status_code == 200
    assert b'hx-trigger="every 2s"' in running.content
    job_execute(job_pk=job.pk, task_id="t")
    finished = client.get(f"/inference/jobs/{job.pk}/status/", headers={"HX-Request": "true"})
    assert finished.status_code == 286  # htmx stops polling
    assert b"Succeeded" in finished.content
    assert b"hx-trigger" not in finished.content


def test_the_jobs_page_lists_and_filters_jobs(done, ada):
    client = _client(ada)
    page = client.get("/inference/jobs/")
    assert page.status_code == 200
    assert f"overread-demo-lesion {done.model_version.version}".encode() in page.content
    assert b"demonstration" in page.content
    assert b"No jobs match." in client.get("/inference/jobs/?status=failed").content


def test_the_study_panel_says_it_is_a_demonstration_model(done, study, rita):
    panel = _client(rita).get(f"/inference/studies/{study.study_uid}/panel/")
    assert panel.status_code == 200
    assert b"demonstration model trained on synthetic data, not a medical device" in panel.content
    assert b"data-finding-index" in panel.content


def test_cancelling_a_finished_job_from_the_page_says_why_nothing_happened(done, ada):
    response = _client(ada).post(f"/inference/jobs/{done.pk}/cancel/", HTTP_HX_REQUEST="true")
    assert response.status_code == 409  # swapped in by htmx like a 200 (templates/base.html)
    assert f"Job {done.pk} is already succeeded: there is nothing to cancel.".encode() in response.content
    done.refresh_from_db()
    assert done.status == "succeeded"
