"""Celery tasks of the viewer app: thin wrappers over services."""

from __future__ import annotations

from celery import shared_task

from viewer.pacs import pacs_pull_execute


@shared_task(name="viewer.pacs_pull_run", acks_late=True, reject_on_worker_lost=True)
def pacs_pull_run(*, pull_pk: int) -> None:
    """Runs one queued PACS pull; a redelivered message finds it claimed and does nothing."""
    pacs_pull_execute(pull_pk=pull_pk)
