"""Audit exports: one module per format, each turning event rows into text.

Every format writes every chained field (audit.canonical.CHAINED_FIELDS),
`hash` and `hash_version`, so a third party can re-compute each event's
hash, and the chain across an unfiltered export. Rows come in as
audit.canonical.EXPORT_FIELDS tuples (the time already as canonical text),
oldest first; text goes out in chunks of about 64 KiB, so memory stays flat
however many events there are.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Final

from django.http import HttpResponseBase
from django.utils import timezone

from audit.exporters import csv_export, fhir_export, jsonl_export, syslog_export

Rows = Iterable[tuple[Any, ...]]


@dataclass(frozen=True)
class ExportFormat:
    name: str
    label: str
    content_type: str
    extension: str
    pieces: Callable[[Rows], Iterator[str]]


FORMATS: Final = {
    "csv": ExportFormat("csv", "CSV", "text/csv; charset=utf-8", "csv", csv_export.pieces),
    "jsonl": ExportFormat(
        "jsonl", "JSON Lines", "application/jsonl; charset=utf-8", "jsonl", jsonl_export.pieces
    ),
    "fhir": ExportFormat(
        "fhir", "FHIR R4 Bundle", "application/fhir+json; charset=utf-8", "fhir.json", fhir_export.pieces
    ),
    "syslog": ExportFormat(
        "syslog", "Syslog (RFC 5424)", "text/plain; charset=utf-8", "log", syslog_export.pieces
    ),
}

_CHUNK_CHARACTERS: Final = 64 * 1024


def export_chunks(
    export_format: ExportFormat, rows: Rows, *, progress: Callable[[int], None] | None = None
) -> Iterator[str]:
    """The export's text in chunks of about 64 KiB; `progress(rows_done)` is called per chunk."""
    buffer: list[str] = []
    size = 0
    done = 0

    def counted(source: Rows) -> Iterator[tuple[Any, ...]]:
        nonlocal done
        for row in source:
            done += 1
            yield row

    for piece in export_format.pieces(counted(rows)):
        buffer.append(piece)
        size += len(piece)
        if size >= _CHUNK_CHARACTERS:
            yield "".join(buffer)
            buffer.clear()
            size = 0
            if progress is not None:
                progress(done)
    if buffer:
        yield "".join(buffer)
    if progress is not None:
        progress(done)


def attach(response: HttpResponseBase, export_format: ExportFormat) -> HttpResponseBase:
    """Makes a response a download of an export (type, file name, never cached)."""
    stamp = timezone.now().strftime("%Y%m%dT%H%M%SZ")
    response["Content-Type"] = export_format.content_type
    response["Content-Disposition"] = (
        f'attachment; filename="overread-audit-{stamp}.{export_format.extension}"'
    )
    response["Cache-Control"] = "no-store"
    return response
