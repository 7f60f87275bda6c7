"""Running one inference job: claim it, read the series, run the engine, keep the outputs.

The task (inference.tasks.job_run) is a thin wrapper over `job_execute`. A job is claimed
with its task id (config.jobs), so a second delivery does nothing and the redelivery of a
run whose worker died runs it again; the outputs are keyed by the job and replaced, never
added to. Errors split three ways: input the model cannot read fails the job with the
engine's message; named transient errors propagate so the task retries; anything else
fails the job with its type and message (and is logged with its traceback).
"""

from __future__ import annotations

import logging
import time
from typing import Any

import pydicom
from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone
from pydicom.dataset import Dataset

from audit.codes import Action, Outcome
from config.jobs import job_claim
from inference.engine.decode import decode_series
from inference.engine.loading import load_network
from inference.engine.memory import retain_freed_memory
from inference.engine.pipeline import run
from inference.engine.types import InferenceResult, InputError, Volume
from inference.models import InferenceJob
from inference.outputs import outputs_discard, outputs_write
from inference.registry import model_network_source, model_spec
from inference.services import job_audit, job_finished_announce
from viewer.store import store_open

logger = logging.getLogger(__name__)

# Overall progress (percent) at the start of each stage; the engine reports within stages.
_STAGE_START = {
    "decode": 0,
    "preprocess": 10,
    "forward": 15,
    "postprocess": 70,
    "saliency": 75,
    "outputs": 90,
}
_STAGE_END = {
    "decode": 10,
    "preprocess": 15,
    "forward": 70,
    "postprocess": 75,
    "saliency": 90,
    "outputs": 100,
}
_REPORT_EVERY_S = 0.5


class JobCancelled(Exception):
    """Someone cancelled the job while it ran; it stops and keeps nothing."""


def job_execute(*, job_pk: int, task_id: str) -> None:
    """Runs a queued job to succeeded, failed or cancelled (see the module docstring)."""
    Status = InferenceJob.Status
    if not job_claim(InferenceJob, pk=job_pk, task_id=task_id, queued=Status.QUEUED, running=Status.RUNNING):
        return
    InferenceJob.objects.filter(pk=job_pk).update(
        started_at=timezone.now(), attempts=F("attempts") + 1, stage="decode", progress=0, error=""
    )
    job = InferenceJob.objects.select_related("model_version", "series__study__patient").get(pk=job_pk)
    progress = _Progress(job.pk)
    try:
        volume, datasets, result = _infer(job, progress)
        progress("outputs", 0.0, force=True)
        started = time.perf_counter()
        outputs_write(job=job, volume=volume, source=datasets, result=result)
        result.timings["outputs"] = time.perf_counter() - started
        _succeed(job, result)
    except InputError as exc:
        _fail(job, f"The model cannot read this series: {exc}")
    except JobCancelled:
        outputs_discard(job=job)
        logger.info("inference job %s cancelled while running", job.pk)
    except SoftTimeLimitExceeded:
        _fail(job, f"The job took longer than {settings.INFERENCE_SOFT_TIME_LIMIT} s and was stopped.")
    except TRANSIENT_ERRORS:
        raise
    except Exception as exc:
        logger.exception("inference job %s failed", job.pk)
        _fail(job, f"Internal error: {type(exc).__name__}: {exc}")


def job_fail_after_retries(*, job_pk: int, error: BaseException) -> None:
    """The task gave up retrying a transient error: the job says so."""
    job = InferenceJob.objects.select_related("model_version", "series__study__patient").get(pk=job_pk)
    _fail(job, f"Gave up after {job.attempts} attempts: {type(error).__name__}: {error}")


def _transient_errors() -> tuple[type[Exception], ...]:
    import torch
    from django.db import InterfaceError, OperationalError

    from viewer.store import StoreError

    return (OperationalError, InterfaceError, StoreError, torch.OutOfMemoryError, ConnectionError)


# Retried with a cap (inference.tasks): a database or store that went away for a moment,
# a GPU momentarily out of memory. Everything else is a property of the input or the model.
TRANSIENT_ERRORS = _transient_errors()


def _infer(job: InferenceJob, progress: _Progress) -> tuple[Volume, list[Dataset], InferenceResult]:
    import torch

    if settings.INFERENCE_TORCH_THREADS:
        torch.set_num_threads(settings.INFERENCE_TORCH_THREADS)
    retain_freed_memory()  # once per worker process: activations reuse freed memory
    spec = model_spec(job.model_version)
    started = time.perf_counter()
    datasets = _series_datasets(job)
    progress("decode", 0.5, force=True)
    volume = decode_series(datasets, spec.input)
    decoded = time.perf_counter()
    device = torch.device(settings.INFERENCE_DEVICE) if settings.INFERENCE_DEVICE else None
    network = load_network(model_network_source(job.model_version), device or _default_device())
    loaded = time.perf_counter()
    result = run(network, volume, spec, device=device, progress=progress)
    result.timings = {"read_decode": decoded - started, "load": loaded - decoded, **result.timings}
    return volume, datasets, result


def _default_device() -> Any:
    import torch

    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _series_datasets(job: InferenceJob) -> list[Dataset]:
    datasets: list[Dataset] = []
    for key in job.series.instances.order_by("instance_number", "pk").values_list("storage_key", flat=True):
        with store_open(key) as handle:
            datasets.append(pydicom.dcmread(handle))
    if not datasets:
        raise InputError("the series holds no instances")
    return datasets


class _Progress:
    """The engine's progress callback: writes percent and stage now and then, and notices a
    cancel (the conditional update finds the job no longer running) by raising JobCancelled."""

    def __init__(self, job_pk: int) -> None:
        self._job_pk = job_pk
        self._last = 0.0

    def __call__(self, stage: str, fraction: float, *, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last < _REPORT_EVERY_S:
            return
        self._last = now
        start, end = _STAGE_START.get(stage, 0), _STAGE_END.get(stage, 100)
        percent = int(start + (end - start) * min(max(fraction, 0.0), 1.0))
        running = InferenceJob.objects.filter(pk=self._job_pk, status=InferenceJob.Status.RUNNING)
        if running.update(stage=stage, progress=min(percent, 99)) == 0:
            raise JobCancelled()


def _succeed(job: InferenceJob, result: InferenceResult) -> None:
    model = job.model_version
    score = float(result.study_score)
    if score >= model.triage_urgent:
        triage = InferenceJob.Triage.URGENT
    elif score >= model.triage_priority:
        triage = InferenceJob.Triage.PRIORITY
    else:
        triage = InferenceJob.Triage.ROUTINE
    with transaction.atomic():
        done = InferenceJob.objects.filter(pk=job.pk, status=InferenceJob.Status.RUNNING).update(
            status=InferenceJob.Status.SUCCEEDED,
            progress=100,
            stage="done",
            study_score=score,
            triage=triage,
            device=result.device,
            timings={k: round(v, 4) for k, v in result.timings.items()},
            finished_at=timezone.now(),
        )
        if not done:  # cancelled at the very end: its outputs go
            outputs_discard(job=job)
            return
        job.refresh_from_db()
        job_audit(
            job,
            action=Action.EXECUTE,
            detail={"findings": len(result.findings), "score": f"{score:.4f}", "triage": triage},
        )
        job_finished_announce(job)


def _fail(job: InferenceJob, message: str) -> None:
    outputs_discard(job=job)
    InferenceJob.objects.filter(pk=job.pk, status=InferenceJob.Status.RUNNING).update(
        status=InferenceJob.Status.FAILED, error=message[:4000], stage="failed", finished_at=timezone.now()
    )
    job.refresh_from_db()
    job_audit(job, action=Action.EXECUTE, outcome=Outcome.SERIOUS_FAILURE, outcome_reason=message[:500])
    job_finished_announce(job)
