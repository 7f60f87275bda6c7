"""Celery tasks of the reviews app: thin wrappers over the services."""

from __future__ import annotations

from celery import Task, shared_task

from reviews import services


@shared_task(bind=True, acks_late=True, reject_on_worker_lost=True)
def feedback_export_run(self: Task, *, export_pk: int) -> None:
    """Writes one background feedback export (a second delivery finds it claimed; config.jobs)."""
    services.feedback_export_build(export_pk=export_pk, task_id=self.request.id or "")


@shared_task(acks_late=True, reject_on_worker_lost=True)
def consensus_case_compute_run(*, case_pk: int) -> None:
    """Compares a consensus case's reads and fuses their masks (idempotent: a second delivery
    computes the same result and replaces it)."""
    services.consensus_case_compute(case_pk=case_pk)
