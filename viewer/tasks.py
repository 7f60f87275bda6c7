"""Celery tasks of the viewer app: thin wrappers over services."""

from __future__ import annotations

from celery import Task, shared_task

from viewer.pacs import pacs_pull_execute


@shared_task(bind=True, name="viewer.pacs_pull_run", acks_late=True, reject_on_worker_lost=True)
def pacs_pull_run(self: Task, *, pull_pk: int) -> None:
    """Runs one queued PACS pull (a second delivery finds it claimed; config.jobs)."""
    pacs_pull_execute(pull_pk=pull_pk, task_id=self.request.id or "")
