"""Celery tasks of the inference app: thin wrappers over inference.services and .execution.

`job_run` goes to the "inference" queue (CELERY_TASK_ROUTES): a GPU worker consumes only
that queue with concurrency 1 and prefetch 1, one per GPU (docs/operations.md).
"""

from __future__ import annotations

from celery import Task, shared_task
from django.conf import settings

from inference.execution import TRANSIENT_ERRORS, job_execute, job_fail_after_retries
from inference.services import series_settle_check


@shared_task(
    bind=True,
    name="inference.job_run",
    acks_late=True,
    reject_on_worker_lost=True,
    soft_time_limit=settings.INFERENCE_SOFT_TIME_LIMIT,
    time_limit=settings.INFERENCE_TIME_LIMIT,
    max_retries=settings.INFERENCE_MAX_RETRIES,
)
def job_run(self: Task, *, job_pk: int) -> None:
    """Runs one inference job; retries only the named transient errors, with a cap and backoff.
    A retry keeps the task id, so it may claim the job its earlier attempt left running."""
    try:
        job_execute(job_pk=job_pk, task_id=self.request.id or "")
    except TRANSIENT_ERRORS as exc:
        if self.request.retries >= (self.max_retries or 0):
            job_fail_after_retries(job_pk=job_pk, error=exc)
            return
        raise self.retry(exc=exc, countdown=2 ** (self.request.retries + 1)) from exc


@shared_task(bind=True, name="inference.series_settle", acks_late=True, max_retries=None)
def series_settle(self: Task, *, series_pk: int) -> None:
    """Queues a series' jobs once it has stopped growing; looks again later if it has not."""
    wait = series_settle_check(series_pk=series_pk)
    if wait is not None:
        raise self.retry(countdown=wait + 0.1)
