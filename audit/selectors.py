"""Reads of the audit app (keyword-only, typed, named <entity>_<action>)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import Func, TextField
from django.db.models.sql.compiler import SQLCompiler

from audit.canonical import EXPORT_FIELDS
from audit.filters import AuditFilter
from audit.models import AuditEvent, AuditExport


@dataclass(frozen=True)
class AuditPage:
    events: list[AuditEvent]
    newer_than: int | None  # pass as `after` for the next newer page; None when this is the newest
    older_than: int | None  # pass as `before` for the next older page; None when this is the oldest


def audit_event_page(
    *, audit_filter: AuditFilter, before: int | None = None, after: int | None = None, limit: int = 50
) -> AuditPage:
    """One page of matching events, newest first, by keyset on id (no COUNT, no OFFSET).

    `before` gives the page of events older than that id, `after` the page of
    events newer than it; neither gives the newest page. Each page costs an
    index range scan of `limit` rows whatever the table's size.
    """
    matching = audit_filter.apply(AuditEvent.objects.all())
    if after is not None:
        rows = list(matching.filter(id__gt=after).order_by("id")[: limit + 1])
        more_newer = len(rows) > limit
        events = rows[:limit][::-1]
        more_older = bool(events) and matching.filter(id__lt=events[-1].id).exists()
    else:
        page = matching.filter(id__lt=before) if before is not None else matching
        rows = list(page.order_by("-id")[: limit + 1])
        more_older = len(rows) > limit
        events = rows[:limit]
        more_newer = bool(events) and matching.filter(id__gt=events[0].id).exists()
    return AuditPage(
        events=events,
        newer_than=events[0].id if more_newer else None,
        older_than=events[-1].id if more_older else None,
    )


def audit_event_last_id() -> int:
    """The id of the newest event (0 when the trail is empty): what an export is "as of"."""
    last = AuditEvent.objects.order_by("-id").values_list("id", flat=True).first()
    return last or 0


def audit_event_rows(
    *, audit_filter: AuditFilter, up_to_id: int, chunk_size: int = 5_000
) -> Iterator[tuple[Any, ...]]:
    """Matching events up to `up_to_id` as EXPORT_FIELDS tuples, oldest first, in constant memory.

    `occurred_at` comes as its canonical text (audit.canonical.timestamp_text),
    spelt by the database: parsing a million timestamps in Python costs more
    than the rest of an export.
    """
    matching = audit_filter.apply(AuditEvent.objects.filter(id__lte=up_to_id)).order_by("id")
    fields = ("id", "at_text", *EXPORT_FIELDS[2:])
    rows = matching.annotate(at_text=CanonicalTimestamp("occurred_at")).values_list(*fields)
    yield from rows.iterator(chunk_size=chunk_size)


class CanonicalTimestamp(Func):
    """An event time as audit.canonical.timestamp_text spells it: UTC, microseconds, "Z"."""

    output_field = TextField()

    def as_postgresql(self, compiler: SQLCompiler, connection: BaseDatabaseWrapper, **extra: Any) -> Any:
        template = """to_char(%(expressions)s AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')"""
        return self.as_sql(compiler, connection, template=template, **extra)

    def as_sqlite(self, compiler: SQLCompiler, connection: BaseDatabaseWrapper, **extra: Any) -> Any:
        # SQLite keeps "YYYY-MM-DD HH:MM:SS[.ffffff]" in UTC (no fraction when it is zero).
        template = (
            "CASE WHEN length(%(expressions)s) = 26 THEN replace(%(expressions)s, ' ', 'T') || 'Z' "
            "ELSE replace(%(expressions)s, ' ', 'T') || '.000000Z' END"
        )
        return self.as_sql(compiler, connection, template=template, **extra)


def audit_event_count(*, audit_filter: AuditFilter, up_to_id: int) -> int:
    """How many events an export will hold (once per background export, for its progress bar)."""
    return audit_filter.apply(AuditEvent.objects.filter(id__lte=up_to_id)).count()


def audit_export_for_user(*, export_pk: int, user: Any) -> AuditExport | None:
    """A background export, only for the user who asked for it."""
    return AuditExport.objects.filter(pk=export_pk, requested_by=user).first()
