"""A Celery worker's pool process killed at random points of inference jobs, twenty times:
every job still ends succeeded exactly once, each output exists once, none is left running."""

from __future__ import annotations

import os
import random
import signal
import time
from collections import Counter
from typing import Any

import psutil
import pytest

from fixtures.synthetic import make_ct_study
from inference.models import InferenceJob, JobOutput
from inference.services import job_request
from tests.faults.helpers import media_files, wait_for
from tests.inference.helpers import demo_model, ingest
from viewer.models import Instance

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

ROUNDS = 20
SEED = int(os.environ.get("FAULT_SEED", "20261204"))


def _pool_child(worker: Any, *, not_pid: int | None = None) -> psutil.Process:
    """The worker's live pool process (a new one after a kill, once the worker has started it)."""

    def live() -> psutil.Process | None:
        for child in psutil.Process(worker.pid).children(recursive=True):
            try:
                if child.pid != not_pid and child.status() != psutil.STATUS_ZOMBIE:
                    return child
            except psutil.NoSuchProcess:
                continue
        return None

    return wait_for(live, 30, "the worker's pool process", interval=0.02)


def _finished(job_pk: int) -> InferenceJob | None:
    job = InferenceJob.objects.get(pk=job_pk)
    return job if job.finished else None


def test_twenty_pool_kills_at_random_points_lose_no_job_and_duplicate_no_output(
    celery_worker_process: Any,
) -> None:
    model = demo_model()
    # Tiny on purpose: twenty rounds of a killed attempt and its redelivery fit in about a minute.
    study = make_ct_study(seed=31, slices=12, rows=64, columns=64, lesions=1)
    series = ingest(study.datasets)
    # The automatic job, then a second one on the now warm pool process, run uninterrupted:
    # the second one's duration spreads the kills over a job.
    auto = wait_for(InferenceJob.objects.filter(series=series, status="succeeded").first, 60, "the auto job")
    requested = job_request(series=series, model=model)
    warm = wait_for(lambda: _finished(requested.pk), 60, "an uninterrupted job")
    assert warm.started_at
    assert warm.finished_at
    duration = (warm.finished_at - warm.started_at).total_seconds()
    chance = random.Random(SEED)
    print(f"seed {SEED}; an uninterrupted job takes {duration:.2f} s: {warm.timings}")

    jobs, stages, started = [auto.pk, warm.pk], Counter[str](), time.monotonic()
    for _ in range(ROUNDS):
        job = job_request(series=series, model=model)
        jobs.append(job.pk)
        stages[_kill_once(celery_worker_process, job.pk, delay=chance.uniform(0.0, 0.5 * duration))] += 1
    print(f"{ROUNDS} kills in {time.monotonic() - started:.1f} s, by stage: {dict(stages)}")
    assert stages["succeeded"] <= ROUNDS // 2, "too few kills landed while a job ran"

    assert celery_worker_process.poll() is None  # the worker lived on, with new pool processes
    assert not InferenceJob.objects.filter(status__in=["queued", "running"]).exists()
    finished = InferenceJob.objects.filter(pk__in=jobs)
    assert Counter(finished.values_list("status", flat=True)) == {"succeeded": ROUNDS + 2}
    assert all(1 <= attempts <= 2 for attempts in finished.values_list("attempts", flat=True))
    _assert_each_output_once(jobs, study.study_uid)


def _kill_once(worker: Any, job_pk: int, *, delay: float) -> str:
    """Kills the pool process `delay` seconds into the job; waits for the job to succeed.
    Returns where the kill landed (the running job's stage, or its status)."""
    victim = _pool_child(worker)
    claimed = InferenceJob.objects.filter(pk=job_pk).exclude(status="queued")
    wait_for(claimed.exists, 30, "the job to be claimed", interval=0.01)
    time.sleep(delay)
    status, stage = InferenceJob.objects.values_list("status", "stage").get(pk=job_pk)
    os.kill(victim.pid, signal.SIGKILL)  # as the kernel's OOM killer would
    _pool_child(worker, not_pid=victim.pid)
    done = wait_for(lambda: _finished(job_pk), 60, f"job {job_pk} to finish after a kill in {stage}")
    assert done.status == "succeeded", done.error
    return stage if status == "running" else status


def _assert_each_output_once(job_pks: list[int], study_uid: str) -> None:
    outputs = JobOutput.objects.filter(job_id__in=job_pks)
    per_job = Counter(outputs.values_list("job_id", "kind"))
    assert set(per_job) == {(pk, kind) for pk in job_pks for kind in JobOutput.Kind.values}
    assert set(per_job.values()) == {1}
    # The DICOM store holds each derived object once: one row, one file, nothing beside them.
    dicom = outputs.filter(kind__in=JobOutput.DICOM_KINDS)
    uids = list(dicom.values_list("sop_instance_uid", flat=True))
    assert len(set(uids)) == len(uids) == 3 * len(job_pks)
    stored = Instance.objects.filter(sop_instance_uid__in=uids)
    assert stored.count() == len(uids)
    keys = set(dicom.values_list("storage_key", flat=True))
    assert set(stored.values_list("storage_key", flat=True)) == keys
    in_study = Instance.objects.filter(series__study__study_uid=study_uid)
    assert media_files(f"dicom/{study_uid}") == set(in_study.values_list("storage_key", flat=True))
    arrays = outputs.exclude(kind__in=JobOutput.DICOM_KINDS).values_list("storage_key", flat=True)
    kept = {key for pk in job_pks for key in media_files(f"inference/jobs/{pk}")}
    assert kept == set(arrays)
