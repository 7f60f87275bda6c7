"""Claiming a background job's row, so each job runs once and none is left stranded.

Tasks are sent with acks_late and reject_on_worker_lost: a message whose
worker died is delivered again, with the same task id. A job row is claimed
from QUEUED to RUNNING together with the claiming task's id; the same task id
may claim it again while it is RUNNING (that is the redelivery of a run that
died, which would otherwise leave the job "running" for ever), any other
delivery may not (a duplicate send, or the task called twice).
"""

from __future__ import annotations

from typing import Any, TypeVar

from django.db.models import Model, Q

M = TypeVar("M", bound=Model)


def job_claim(model: type[Model], *, pk: int, task_id: str, queued: str, running: str) -> bool:
    """True when this task now owns the job and should run it."""
    claimable = Q(status=queued)
    if task_id:
        claimable |= Q(status=running, claimed_by=task_id)
    updated: int = model._default_manager.filter(claimable, pk=pk).update(status=running, claimed_by=task_id)
    return updated == 1


def job_pending(model: type[M], *, user: Any, queued: str, running: str, **same: Any) -> M | None:
    """The user's newest job asking for the same as `same` that is still queued or running.

    Asking again for what is being made (a double click on a button) gets that job: `filters`
    and the like are compared as the values they are, JSON included.
    """
    waiting = model._default_manager.filter(requested_by=user, status__in=[queued, running])
    for job in waiting.order_by("-pk")[:20]:
        if all(getattr(job, name) == value for name, value in same.items()):
            return job
    return None
