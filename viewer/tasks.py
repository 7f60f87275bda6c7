"""Celery tasks of the viewer app: thin wrappers over services."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

from celery import Task, shared_task
from django.conf import settings
from django.core.files.storage import default_storage
from django.utils import timezone

from viewer.models import Instance
from viewer.pacs import pacs_pull_execute
from viewer.store import store_delete

# Ingest writes a file before its rows, and a spool file lives as long as its request:
# only files older than this can be left over from a crash rather than still in use.
ORPHAN_MINUTES = 60
# Temporary files of ingest (viewer.ingest.spool) and of Django's large-upload handler.
_SPOOL_PATTERNS = ("ingest-*.part", "tmp*.upload*")
_BATCH = 500


@shared_task(bind=True, name="viewer.pacs_pull_run", acks_late=True, reject_on_worker_lost=True)
def pacs_pull_run(self: Task, *, pull_pk: int) -> None:
    """Runs one queued PACS pull (a second delivery finds it claimed; config.jobs)."""
    pacs_pull_execute(pull_pk=pull_pk, task_id=self.request.id or "")


@shared_task(name="viewer.ingest_orphans_remove")
def ingest_orphans_remove(*, older_than_minutes: int = ORPHAN_MINUTES) -> dict[str, int]:
    """Removes what an ingest that crashed left behind, once it is older than the given age:
    spool files in FILE_UPLOAD_TEMP_DIR, and files under the store's dicom/ with no Instance
    row. Indexed files and anything younger are never touched. Safe to run at any time."""
    cutoff = timezone.now() - timedelta(minutes=older_than_minutes)
    return {
        "spool_files": _spool_orphans_remove(cutoff.timestamp()),
        "store_files": _store_orphans_remove(cutoff),
    }


def _spool_orphans_remove(cutoff: float) -> int:
    folder = Path(settings.FILE_UPLOAD_TEMP_DIR or tempfile.gettempdir())
    removed = 0
    for pattern in _SPOOL_PATTERNS:
        for path in folder.glob(pattern):
            try:
                if path.is_file() and path.stat().st_mtime < cutoff:
                    path.unlink()
                    removed += 1
            except FileNotFoundError:  # its request finished meanwhile
                continue
    return removed


def _store_orphans_remove(cutoff: datetime) -> int:
    removed = 0
    batch: list[str] = []
    for key in _store_keys("dicom"):
        batch.append(key)
        if len(batch) == _BATCH:
            removed += _unindexed_remove(batch, cutoff)
            batch = []
    return removed + _unindexed_remove(batch, cutoff)


def _store_keys(folder: str) -> Iterator[str]:
    if not default_storage.exists(folder):
        return
    folders, files = default_storage.listdir(folder)
    for name in files:
        yield f"{folder}/{name}"
    for name in folders:
        yield from _store_keys(f"{folder}/{name}")


def _unindexed_remove(keys: list[str], cutoff: datetime) -> int:
    indexed = set(Instance.objects.filter(storage_key__in=keys).values_list("storage_key", flat=True))
    removed = 0
    for key in keys:
        if key in indexed or default_storage.get_modified_time(key) >= cutoff:
            continue
        if not Instance.objects.filter(storage_key=key).exists():  # not indexed since the batch query
            store_delete(key)
            removed += 1
    return removed
