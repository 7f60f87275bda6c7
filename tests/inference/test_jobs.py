"""Inference jobs in-process: queued when a series settles, run once, outputs replaced, bad input
failed with a message, cancelled on request. (tests/inference/test_worker.py runs a real worker.)"""

from __future__ import annotations

import datetime as dt
import gzip
import io
import re

import numpy as np
import pydicom
import pytest
from django.core.files.storage import default_storage
from django.utils import timezone
from pydicom.data import get_testdata_file

from audit.models import AuditEvent
from inference.execution import job_execute
from inference.models import Finding, InferenceJob, JobOutput, ModelVersion, PendingSeries
from inference.services import (
    job_cancel,
    job_request,
    job_rerun,
    jobs_for_new_series,
    series_settle_check,
)
from tests.inference.helpers import (
    demo_model,
    dice,
    in_job_order,
    in_study_order,
    ingest,
    part10,
    small_study,
)
from viewer.ingest.service import ingest_file
from viewer.models import Instance, Series

pytestmark = pytest.mark.django_db


@pytest.fixture
def model(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    return demo_model()


@pytest.fixture
def study():
    return small_study()


@pytest.fixture
def series(study, model):
    return ingest(study.datasets)


def _read(key: str) -> bytes:
    with default_storage.open(key) as handle:
        return handle.read()


def _array(job: InferenceJob, kind: str) -> bytes:
    """The job's stored array, raw: its file is one gzip member (inference.arrays)."""
    return gzip.decompress(_read(f"inference/jobs/{job.pk}/{kind}.u8.gz"))


def _run(job: InferenceJob, task_id: str = "task-1") -> InferenceJob:
    job_execute(job_pk=job.pk, task_id=task_id)
    job.refresh_from_db()
    return job


# --- Queueing -------------------------------------------------------------------------------------
def test_stored_instances_mark_their_series_pending_and_it_settles_into_one_job(
    model, study, django_capture_on_commit_callbacks, settings, monkeypatch
):
    from inference import tasks

    settings.INFERENCE_SERIES_STABLE_SECONDS = 30
    settles, runs = [], []  # what would go to the broker (the worker tests send it for real)
    monkeypatch.setattr(tasks.series_settle, "apply_async", lambda **kw: settles.append(kw))
    monkeypatch.setattr(tasks.job_run, "apply_async", lambda **kw: runs.append(kw))
    with django_capture_on_commit_callbacks(execute=True):
        series = ingest(study.datasets)
    pending = PendingSeries.objects.get(series=series)
    assert pending.due_at > timezone.now() + dt.timedelta(seconds=25)
    assert settles == [{"kwargs": {"series_pk": series.pk}, "countdown": 30}]  # once, not per instance

    # Not yet due: the settle check says how long to wait and queues nothing.
    assert 25 < series_settle_check(series_pk=series.pk) <= 30
    assert not InferenceJob.objects.exists()

    PendingSeries.objects.filter(series=series).update(due_at=timezone.now() - dt.timedelta(seconds=1))
    with django_capture_on_commit_callbacks(execute=True):
        assert series_settle_check(series_pk=series.pk) is None
    job = InferenceJob.objects.get()
    assert (job.model_version, job.series, job.status, job.trigger) == (model, series, "queued", "auto")
    assert job.instance_count == len(study.datasets)
    assert runs == [{"kwargs": {"job_pk": job.pk}}]  # the job's task, sent after commit
    assert not PendingSeries.objects.exists()


def test_a_series_reported_complete_twice_is_read_once(series, model):
    assert len(jobs_for_new_series(series=series)) == 1
    assert jobs_for_new_series(series=series) == []
    assert InferenceJob.objects.count() == 1


def test_only_matching_active_and_shadow_models_get_jobs(series, model):
    demo_model(status=ModelVersion.Status.SHADOW, version="9.0.1")
    demo_model(status=ModelVersion.Status.RETIRED, version="9.0.2")
    demo_model(version="9.0.3", input_spec={"modality": "MR"})
    jobs = jobs_for_new_series(series=series)
    assert sorted(job.model_version.version for job in jobs) == sorted([model.version, "9.0.1"])


def test_a_derived_object_is_not_sent_to_the_models(model, study, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        ingest_file(source=io.BytesIO(part10(study.datasets[0])), name="x", origin="derived")
    assert not PendingSeries.objects.exists()


# --- Running --------------------------------------------------------------------------------------
def test_a_job_finds_the_lesions_and_keeps_its_outputs(series, model, study):
    job = _run(job_request(series=series, model=model))

    assert job.status == "succeeded", job.error
    assert job.progress == 100
    assert job.finished_at is not None
    assert job.device == "cpu"
    stages = {"read_decode", "load", "preprocess", "forward", "postprocess", "saliency", "outputs"}
    assert stages <= set(job.timings)
    assert job.rows == 128
    assert job.columns == 128
    # Slice k of the arrays is the instance slice_uids[k], in order along the slice normal.
    assert sorted(job.slice_uids) == sorted(ds.SOPInstanceUID for ds in study.datasets)

    mask = np.frombuffer(_array(job, "mask"), np.uint8)
    mask = in_study_order(mask.reshape(study.mask.shape), job.slice_uids, study)
    overlap = dice(mask > 0, study.mask > 0)
    print(f"Dice of the job's mask with the true lesions: {overlap:.3f}")
    assert overlap > 0.5
    findings = list(job.findings.all())
    assert len(findings) >= 1
    truth = in_job_order(study.mask, job.slice_uids, study)
    for finding in findings:  # each finding lies on a true lesion
        (z0, z1), (y0, y1), (x0, x1) = finding.bbox
        assert truth[z0:z1, y0:y1, x0:x1].any()

    heatmap = np.frombuffer(_array(job, "heatmap"), np.uint8)
    heatmap = in_study_order(heatmap.reshape(study.mask.shape), job.slice_uids, study)
    assert heatmap.max() == 255
    assert heatmap[study.mask > 0].mean() > heatmap[study.mask == 0].mean()
    assert job.study_score > model.triage_priority
    assert job.triage in ("urgent", "priority")

    events = AuditEvent.objects.filter(inference_job_id=job.pk)
    assert {e.action for e in events} >= {"C", "E"}


def test_the_jobs_list_says_how_long_a_finished_job_took_and_where_the_time_went(series, model, ada, client):
    job = _run(job_request(series=series, model=model))
    client.force_login(ada)

    page = client.get("/inference/jobs/").content.decode()

    shown = re.search(r'data-testid="job-time" title="([^"]*)">([0-9.]+) s on cpu<', page)
    assert shown is not None
    took = (job.finished_at - job.started_at).total_seconds()
    assert abs(float(shown[2]) - took) <= 0.051
    stages = shown[1]
    for words, stage in [("forward", "forward"), ("saliency", "saliency"), ("DICOM outputs", "outputs")]:
        assert f"{words} {job.timings[stage]:.1f} s" in stages
    # In the order they ran, whatever order the database keeps the JSON's keys in.
    ran = ["read and decode", "load the model", "preprocess", "forward", "findings", "saliency"]
    at = [stages.index(f"{words} ") for words in [*ran, "DICOM outputs"]]
    assert at == sorted(at), stages


def test_stages_come_in_the_order_they_run_and_unknown_ones_last():
    timings = {"load": 0.1, "forward": 2.0, "outputs": 1.0, "warm_up": 0.3, "read_decode": 0.5}
    job = InferenceJob(timings=timings)  # keys as PostgreSQL's jsonb may give them back
    order = [stage for stage, _ in job.stage_timings()]
    assert order == ["read_decode", "load", "forward", "outputs", "warm_up"]
    assert job.timings_text == (
        "read and decode 0.5 s, load the model 0.1 s, forward 2.0 s, DICOM outputs 1.0 s, warm_up 0.3 s"
    )


def test_a_second_delivery_does_nothing_and_a_redelivery_replaces_the_outputs(series, model):
    job = job_request(series=series, model=model)
    # The first delivery died while running: the job is left running, claimed by task-1.
    InferenceJob.objects.filter(pk=job.pk).update(status="running", claimed_by="task-1")

    assert _run(job, "task-2").status == "running"  # another delivery leaves it alone
    assert not JobOutput.objects.exists()

    assert _run(job, "task-1").status == "succeeded"  # the redelivery runs it
    outputs, findings = JobOutput.objects.count(), Finding.objects.count()
    instances = Instance.objects.count()

    # Run again by the same task id (as if it died after writing): replaced, not added.
    InferenceJob.objects.filter(pk=job.pk).update(status="running")
    assert _run(job, "task-1").status == "succeeded"
    assert (JobOutput.objects.count(), Finding.objects.count(), Instance.objects.count()) == (
        outputs,
        findings,
        instances,
    )
    assert _run(job, "task-1").status == "succeeded"  # finished: a late duplicate does nothing


def test_a_normal_study_scores_lower_than_one_with_lesions(model, series):
    normal = ingest(small_study(seed=12, lesions=0).datasets)
    sick = _run(job_request(series=series, model=model))
    well = _run(job_request(series=normal, model=model))
    assert well.status == "succeeded"
    assert well.study_score < sick.study_score


# --- Bad input fails the job with a message ---------------------------------------------------------
def _failed_with(job: InferenceJob, *words: str) -> None:
    job = _run(job)
    assert job.status == "failed"
    for word in words:
        assert word in job.error, job.error
    assert not JobOutput.objects.filter(job=job).exists()
    assert job.finished_at is not None


def test_a_series_of_the_wrong_modality_fails_with_a_message(model):
    ds = pydicom.dcmread(get_testdata_file("MR_small.dcm"))
    series = ingest([ds])
    _failed_with(job_request(series=series, model=model), "cannot read", "MR")


def test_a_series_with_missing_slices_fails_with_a_message(model):
    study = small_study(seed=13, lesions=0)
    datasets = [ds for k, ds in enumerate(study.datasets) if k not in (6, 7)]
    _failed_with(job_request(series=ingest(datasets), model=model), "missing")


def test_a_non_image_object_fails_with_a_message(model):
    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    series = ingest([ds])
    sr = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    sr.SOPClassUID = "1.2.840.10008.5.1.4.1.1.88.33"  # Comprehensive SR in an image series
    sr.SOPInstanceUID = "1.2.3.4.5.6.7.8.9"
    sr.file_meta.MediaStorageSOPClassUID = sr.SOPClassUID
    sr.file_meta.MediaStorageSOPInstanceUID = sr.SOPInstanceUID
    del sr.PixelData
    ingest([sr])
    _failed_with(job_request(series=series, model=model), "cannot read")


def _study_without(*keywords: str, seed: int) -> list[pydicom.Dataset]:
    """A small synthetic study with `keywords` left out of every slice (ingest accepts that)."""
    datasets = small_study(seed=seed, lesions=1).datasets
    for ds in datasets:
        for keyword in keywords:
            delattr(ds, keyword)
    return datasets


def test_a_series_without_a_frame_of_reference_fails_with_a_message(model):
    series = ingest(_study_without("FrameOfReferenceUID", "PatientSex", "StudyID", seed=17))

    _failed_with(
        job_request(series=series, model=model), "cannot read", "no Frame of Reference UID (0020,0052)"
    )


def test_a_series_without_its_type_2_attributes_still_gets_its_derived_objects(model):
    type_2 = ("PatientBirthDate", "PatientSex", "ReferringPhysicianName", "StudyID")
    series = ingest(_study_without(*type_2, seed=19))

    job = _run(job_request(series=series, model=model))

    assert job.status == "succeeded", job.error
    outputs = JobOutput.objects.filter(job=job, kind__in=JobOutput.DICOM_KINDS)
    assert {o.kind for o in outputs} == set(JobOutput.DICOM_KINDS)
    for output in outputs:
        written = pydicom.dcmread(io.BytesIO(_read(output.storage_key)))
        assert [written[keyword].value for keyword in type_2] == ["", "", "", ""]


# --- Cancel and re-run ----------------------------------------------------------------------------
def test_a_cancelled_queued_job_never_runs(series, model, rita):
    job = job_request(series=series, model=model)
    assert job_cancel(job=job, user=rita)
    assert _run(job).status == "cancelled"
    assert not JobOutput.objects.exists()
    assert not job_cancel(job=job, user=rita)  # already finished


def test_a_job_cancelled_while_running_stops_and_keeps_nothing(series, model, monkeypatch):
    job = job_request(series=series, model=model)
    from inference import execution

    real_run = execution.run

    def cancel_midway(network, volume, spec, *, device=None, progress=None):
        InferenceJob.objects.filter(pk=job.pk).update(status="cancelled")
        return real_run(network, volume, spec, device=device, progress=lambda *a: progress(*a, force=True))

    monkeypatch.setattr(execution, "run", cancel_midway)
    job = _run(job)
    assert job.status == "cancelled"
    assert not JobOutput.objects.exists()
    assert not Finding.objects.exists()


def test_a_rerun_is_a_new_job_beside_the_old(series, model, rita):
    first = _run(job_request(series=series, model=model))
    second = job_rerun(job=first, user=rita)
    assert (second.rerun_of, second.trigger, second.status) == (first, "rerun", "queued")
    assert _run(second).status == "succeeded"
    assert first.outputs.count() == second.outputs.count() > 0
    assert Series.objects.filter(study=series.study).count() > 1  # the derived series


def test_asking_again_while_the_job_asked_for_waits_gets_that_job(series, model, rita, ada, client):
    """A double click, or a client's retry, does not run the model twice."""
    asked = job_request(series=series, model=model, user=rita)
    assert job_request(series=series, model=model, user=rita) == asked
    assert job_request(series=series, model=model, user=ada) != asked  # someone else's request
    InferenceJob.objects.filter(pk=asked.pk).update(status=InferenceJob.Status.SUCCEEDED)
    asked.refresh_from_db()
    rerun = job_rerun(job=asked, user=rita)
    assert job_rerun(job=asked, user=rita) == rerun
    InferenceJob.objects.filter(pk=rerun.pk).update(status=InferenceJob.Status.RUNNING)
    assert job_rerun(job=asked, user=rita) == rerun  # still running: the same
    InferenceJob.objects.filter(pk=rerun.pk).update(status=InferenceJob.Status.SUCCEEDED)
    assert job_rerun(job=asked, user=rita) != rerun  # done: a new run
    # Through the jobs list's button: the second click answers with the job the first made.
    client.force_login(ada)
    before = InferenceJob.objects.count()
    for _ in range(2):
        assert client.post(f"/inference/jobs/{asked.pk}/rerun/", HTTP_HX_REQUEST="true").status_code == 200
    assert InferenceJob.objects.count() == before + 1
    # A header no URL parses is no page of ours: the job is made once, the answer is not a 500.
    again = client.post(
        f"/inference/jobs/{asked.pk}/rerun/", HTTP_HX_REQUEST="true", HTTP_HX_CURRENT_URL="http://[::1"
    )
    assert again.status_code == 200
    assert InferenceJob.objects.count() == before + 1


def test_a_rerun_from_the_jobs_list_reloads_the_list_and_in_a_study_panel_shows_the_new_job(
    series, model, ada, client
):
    done = []
    for _ in range(2):
        done.append(job_request(series=series, model=model))
        InferenceJob.objects.filter(pk=done[-1].pk).update(status=InferenceJob.Status.SUCCEEDED)
    client.force_login(ada)
    on_page = {"HTTP_HX_REQUEST": "true"}

    # In the list the clicked row must keep its own job: the list is reloaded, new job first.
    listed = client.post(
        f"/inference/jobs/{done[0].pk}/rerun/",
        **on_page,
        HTTP_HX_CURRENT_URL="http://testserver/inference/jobs/?status=succeeded",
    )
    assert (listed.status_code, listed.headers.get("HX-Refresh")) == (200, "true")
    # In a study's AI panel the status shown is the study's job: now the new one.
    panel = client.post(
        f"/inference/jobs/{done[1].pk}/rerun/",
        **on_page,
        HTTP_HX_CURRENT_URL="http://testserver/studies/1.2/",
    )
    newest = InferenceJob.objects.latest("pk")
    assert newest.rerun_of == done[1]
    assert f'id="job-{newest.pk}"' in panel.content.decode()
    assert InferenceJob.objects.filter(trigger="rerun").count() == 2
