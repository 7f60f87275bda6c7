"""Inference with a real Celery worker: a study arrives, settles, is read by the model, and its
results are valid DICOM over DICOMweb; a worker process killed mid-job loses nothing and
duplicates nothing."""

from __future__ import annotations

import os
import signal
import time

import numpy as np
import psutil
import pytest
from django.test import Client
from requests_toolbelt.multipart.decoder import MultipartDecoder

from fixtures.synthetic import make_ct_study
from inference.derived.files import dciodvfy_check
from inference.models import Finding, InferenceJob, JobOutput
from tests.inference.helpers import demo_model, dice, in_job_order, ingest
from viewer.models import Instance

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

SEG, PARAMETRIC_MAP, COMPREHENSIVE_3D_SR = (
    "1.2.840.10008.5.1.4.1.1.66.4",
    "1.2.840.10008.5.1.4.1.1.30",
    "1.2.840.10008.5.1.4.1.1.88.34",
)


def _wait_for(predicate, timeout: float, what: str, interval: float = 0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def _finished(series) -> InferenceJob | None:
    job = InferenceJob.objects.filter(series=series).first()
    return job if job is not None and job.finished else None


def test_an_arriving_study_is_read_and_its_results_are_valid_dicom_over_dicomweb(
    celery_worker_process, rita, tmp_path
):
    demo_model()
    study = make_ct_study(seed=21, slices=24, rows=128, columns=128, lesions=2)
    series = ingest(study.datasets)  # announced after commit: settles after 1 s, then the job runs

    job = _wait_for(lambda: _finished(series), 120, "the job to finish")
    assert job.status == "succeeded", job.error
    assert job.trigger == "auto"
    assert job.claimed_by  # run by the worker's task

    truth = in_job_order(study.mask, job.slice_uids, study) > 0
    for finding in Finding.objects.filter(job=job):
        (z0, z1), (y0, y1), (x0, x1) = finding.bbox
        assert truth[z0:z1, y0:y1, x0:x1].any(), "a finding off every true lesion"
    client = Client()
    client.force_login(rita)
    raw = client.get(f"/api/v1/inference/jobs/{job.pk}/arrays/mask/").content
    mask = np.frombuffer(raw, np.uint8).reshape(study.mask.shape) > 0
    overlap = dice(mask, truth)
    print(f"end to end: Dice {overlap:.3f} with the true lesions, {job.findings.count()} findings")
    assert overlap > 0.5

    # The SEG, Parametric Map and SR are in the study over DICOMweb, and each is valid DICOM.
    listed = client.get(f"/dicomweb/studies/{study.study_uid}/instances").json()
    classes = {item["00080016"]["Value"][0]: item for item in listed}
    assert {SEG, PARAMETRIC_MAP, COMPREHENSIVE_3D_SR} <= set(classes)
    for sop_class in (SEG, PARAMETRIC_MAP, COMPREHENSIVE_3D_SR):
        item = classes[sop_class]
        series_uid, sop_uid = item["0020000E"]["Value"][0], item["00080018"]["Value"][0]
        response = client.get(
            f"/dicomweb/studies/{study.study_uid}/series/{series_uid}/instances/{sop_uid}",
            headers={"Accept": 'multipart/related; type="application/dicom"; transfer-syntax=*'},
        )
        assert response.status_code == 200
        body = b"".join(response.streaming_content) if response.streaming else response.content
        (part,) = MultipartDecoder(body, response["Content-Type"]).parts
        path = tmp_path / f"{sop_uid}.dcm"
        path.write_bytes(part.content)
        assert dciodvfy_check(path) == [], f"{sop_class} does not validate"


def _pool_child(worker: psutil.Popen | object) -> psutil.Process:
    children = psutil.Process(worker.pid).children(recursive=True)  # type: ignore[attr-defined]
    assert children, "the worker has no pool process"
    return children[0]


def test_a_worker_process_killed_mid_job_loses_nothing_and_duplicates_nothing(celery_worker_process):
    model = demo_model()
    study = make_ct_study(seed=22, slices=64, rows=256, columns=256, lesions=2, spacing=(2.5, 1.4, 1.4))
    series = ingest(study.datasets)

    running = _wait_for(
        lambda: InferenceJob.objects.filter(
            series=series, status="running", stage__in=["forward", "saliency"]
        ).first(),
        120,
        "the job to be running",
        interval=0.02,
    )
    victim = _pool_child(celery_worker_process)
    os.kill(victim.pid, signal.SIGKILL)  # as the kernel's OOM killer would

    job = _wait_for(lambda: _finished(series), 180, "the redelivered job to finish")
    assert job.pk == running.pk
    assert job.status == "succeeded", job.error
    assert job.attempts == 2
    assert InferenceJob.objects.filter(series=series).count() == 1
    assert JobOutput.objects.filter(job=job).count() == len(JobOutput.Kind.values)
    assert Finding.objects.filter(job=job).count() == len({f.index for f in job.findings.all()})
    derived = Instance.objects.filter(series__study__study_uid=study.study_uid).exclude(series=series)
    assert derived.count() == 3  # one SEG, one Parametric Map, one SR
    assert celery_worker_process.poll() is None  # the worker lived on with a new pool process
    assert model.pk == job.model_version_id
