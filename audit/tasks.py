"""Celery tasks of the audit app: thin wrappers over the services."""

from __future__ import annotations

from celery import Task, shared_task

from audit import services


@shared_task(bind=True, acks_late=True, reject_on_worker_lost=True)
def audit_export_run(self: Task, *, export_pk: int) -> None:
    """Writes one background export (a second delivery finds it claimed; config.jobs)."""
    services.audit_export_write(export_pk=export_pk, task_id=self.request.id or "")


@shared_task
def audit_chain_check() -> None:
    """The periodic integrity check: verifies the chain, raises a Security Alert when broken."""
    services.audit_chain_check()


@shared_task
def audit_export_prune() -> None:
    """Deletes background export files older than a day (they hold patient identifiers)."""
    services.audit_export_prune()
