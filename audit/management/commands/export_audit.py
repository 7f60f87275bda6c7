"""`manage.py export_audit --format csv|jsonl|fhir|syslog [filters] -o FILE`.

Writes the matching events to FILE ("-" for standard output) in constant
memory. The export is itself audited (110106 Export and 110101 Audit Log
Used), by the operating-system account that ran the command.
"""

from __future__ import annotations

import getpass
import sys
from contextlib import nullcontext
from datetime import datetime
from typing import Any, TextIO

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from audit.exporters import FORMATS
from audit.filters import AuditFilter
from audit.services import audit_export_stream


def _moment(text: str) -> datetime:
    moment = datetime.fromisoformat(text)
    return moment if timezone.is_aware(moment) else timezone.make_aware(moment)


def _open_for_writing(path: str) -> TextIO:
    # newline="": the CSV writer's CRLF line ends are written as they are.
    return open(path, "w", encoding="utf-8", newline="")


class Command(BaseCommand):
    help = "Exports audit events (csv, jsonl, fhir, syslog) to a file; the export is itself audited."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--format", required=True, choices=sorted(FORMATS), dest="export_format")
        parser.add_argument(
            "-o", "--output", required=True, help='the file to write ("-" for standard output)'
        )
        parser.add_argument("--since", type=_moment, help="ISO 8601 date or time, inclusive")
        parser.add_argument("--until", type=_moment, help="ISO 8601 date or time, exclusive")
        parser.add_argument("--user", default="", help="username")
        parser.add_argument("--patient", default="", help="patient ID")
        parser.add_argument("--study", default="", help="Study Instance UID")
        parser.add_argument("--event", default="", help="DICOM CID 400 event id, e.g. 110114")

    def handle(self, *args: Any, export_format: str, output: str, **options: Any) -> None:
        audit_filter = AuditFilter(
            since=options["since"],
            until=options["until"],
            username=options["user"],
            patient_id=options["patient"],
            study_uid=options["study"],
            event_id=options["event"],
        )
        try:  # opened first: an export that cannot be written is not recorded as made
            target: Any = nullcontext(sys.stdout) if output == "-" else _open_for_writing(output)
        except OSError as exc:
            raise CommandError(f"cannot write {output}: {exc.strerror}") from None
        with target as stream:
            chunks = audit_export_stream(
                export_format=export_format, audit_filter=audit_filter, username=f"os:{getpass.getuser()}"
            )
            for chunk in chunks:
                stream.write(chunk)
        if output != "-":
            self.stderr.write(f"wrote {output}")
