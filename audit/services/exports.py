"""Exports of the audit trail: streamed at once, or prepared in the background with progress.

Every export is itself audited: reading the trail for it is 110101 Audit Log
Used, and the data leaving the system is 110106 Export.
"""

from __future__ import annotations

import logging
import secrets
import tempfile
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

from django.contrib.auth.models import AnonymousUser
from django.core.exceptions import PermissionDenied
from django.core.files import File
from django.core.files.storage import default_storage
from django.db import transaction
from django.http import HttpRequest
from django.utils import timezone

from audit.codes import EventID, Outcome
from audit.exporters import FORMATS, export_chunks
from audit.filters import AuditFilter, filter_from_params
from audit.models import AuditEvent, AuditExport
from audit.selectors import audit_event_count, audit_event_last_id, audit_event_rows
from audit.services.recording import audit_record
from config.jobs import job_claim, job_pending

logger = logging.getLogger(__name__)


def audit_export_stream(
    *, export_format: str, audit_filter: AuditFilter, request: HttpRequest | None = None, username: str = ""
) -> Iterator[str]:
    """Records an export (110106 Export and 110101 Audit Log Used) and returns its text, streamed.

    The export holds the matching events as of this call: events recorded
    while it streams (its own two included) are not in it. The caller
    checks the export permission first.
    """
    up_to_id = audit_event_last_id()
    detail = {"format": export_format, "filters": audit_filter.as_params(), "up_to_id": up_to_id}
    _record_audit_read(request=request, username=username, detail=detail, exported=True)
    rows = audit_event_rows(audit_filter=audit_filter, up_to_id=up_to_id)
    return _failures_recorded(export_chunks(FORMATS[export_format], rows), request, username, detail)


def _failures_recorded(
    chunks: Iterator[str], request: HttpRequest | None, username: str, detail: dict[str, Any]
) -> Iterator[str]:
    """The chunks; an export that breaks while it streams leaves a second 110106 Export, a
    failure naming the error, beside the one recorded when it started (the client got part of
    the file at most)."""
    try:
        yield from chunks
    except Exception as exc:
        audit_record(
            event=EventID.EXPORT,
            action="R",
            request=request,
            username=username,
            detail=detail,
            outcome=Outcome.SERIOUS_FAILURE,
            outcome_reason=f"the export stopped while streaming: {type(exc).__name__}",
        )
        raise


def _record_audit_read(
    *, request: HttpRequest | None, username: str, detail: dict[str, Any], exported: bool, user: Any = None
) -> None:
    with transaction.atomic():
        if exported:
            audit_record(
                event=EventID.EXPORT, action="R", request=request, user=user, username=username, detail=detail
            )
        audit_record(
            event=EventID.AUDIT_LOG_USED,
            action="R",
            request=request,
            user=user,
            username=username,
            detail=detail,
        )


def audit_export_request(
    *, export_format: str, audit_filter: AuditFilter, request: HttpRequest
) -> tuple[AuditExport, bool]:
    """Starts a background export for the request's user; records 110101 Audit Log Used.
    Returns it and whether it is new: the same export asked for again while the user's first
    one is still being written (a double click) is that one.

    The file is written by the `audit_export_run` task (enqueued after
    commit); fetching it records the 110106 Export (audit_export_fetched).
    """
    if export_format not in FORMATS:
        raise ValueError(f"unknown export format {export_format!r}")
    if isinstance(request.user, AnonymousUser):
        raise PermissionDenied("exports are for signed-in users")
    filters = audit_filter.as_params()
    Status = AuditExport.Status
    pending = job_pending(
        AuditExport,
        user=request.user,
        queued=Status.QUEUED,
        running=Status.RUNNING,
        export_format=export_format,
        filters=filters,
    )
    if pending is not None:
        return pending, False
    with transaction.atomic():
        export = AuditExport.objects.create(
            requested_by=request.user,
            export_format=export_format,
            filters=filters,
            up_to_id=audit_event_last_id(),
        )
        detail = {
            "export": export.pk,
            "format": export_format,
            "filters": export.filters,
            "up_to_id": export.up_to_id,
        }
        _record_audit_read(request=request, username="", detail=detail, exported=False)
        from audit.tasks import audit_export_run  # the task module imports this one

        pk = export.pk
        transaction.on_commit(lambda: audit_export_run.delay(export_pk=pk))
    return export, True


def audit_export_write(*, export_pk: int, task_id: str = "", progress_every: int = 10_000) -> None:
    """Writes a queued background export to storage, counting progress on its row.

    Claims the export first (config.jobs): a second delivery does nothing,
    and the redelivery of a run whose worker died writes it again.
    """
    claimed = job_claim(
        AuditExport,
        pk=export_pk,
        task_id=task_id,
        queued=AuditExport.Status.QUEUED,
        running=AuditExport.Status.RUNNING,
    )
    if not claimed:
        return
    export = AuditExport.objects.get(pk=export_pk)
    try:
        audit_filter = filter_from_params(export.filters)
        total = audit_event_count(audit_filter=audit_filter, up_to_id=export.up_to_id)
        AuditExport.objects.filter(pk=export_pk).update(total=total)
        export_format = FORMATS[export.export_format]
        rows = audit_event_rows(audit_filter=audit_filter, up_to_id=export.up_to_id)
        last_reported = 0

        def progress(done: int) -> None:
            nonlocal last_reported
            if done - last_reported >= progress_every or done == total:
                AuditExport.objects.filter(pk=export_pk).update(written=done)
                last_reported = done

        with tempfile.TemporaryFile("w+b") as scratch:
            for chunk in export_chunks(export_format, rows, progress=progress):
                scratch.write(chunk.encode())
            scratch.seek(0)
            name = f"exports/audit-{export_pk}-{secrets.token_hex(8)}.{export_format.extension}"
            stored = default_storage.save(name, File(scratch, name=name))
    except Exception as exc:  # any failure is written on the row for the person waiting on it
        logger.exception("audit export %s failed", export_pk)
        export.finish(error=f"{type(exc).__name__}: the export could not be written")
        return
    export.finish(file_name=stored)


def audit_export_fetched(*, export: AuditExport, request: HttpRequest) -> AuditEvent:
    """Records that a background export's file left the system (110106 Export)."""
    return audit_record(
        event=EventID.EXPORT,
        action="R",
        request=request,
        detail={
            "export": export.pk,
            "format": export.export_format,
            "filters": export.filters,
            "up_to_id": export.up_to_id,
        },
    )


def audit_export_prune(*, older_than: timedelta = timedelta(hours=24)) -> int:
    """Deletes background export files (and their rows) older than `older_than`; returns how many."""
    cutoff = timezone.now() - older_than
    old = list(AuditExport.objects.filter(created_at__lt=cutoff))
    for export in old:
        if export.file_name:
            default_storage.delete(export.file_name)
        export.delete()
    return len(old)
