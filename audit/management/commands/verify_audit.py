"""`manage.py verify_audit`: re-computes the audit hash chain.

Exit 0 with the number of events when the chain is intact; exit 1 naming
the first event that breaks it (edited, deleted, inserted or re-ordered).
"""

from __future__ import annotations

import os
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from audit.verification import audit_chain_verify


class Command(BaseCommand):
    help = "Re-computes the audit trail's hash chain; exit 1 names the first bad event."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--chunk-size", type=int, default=20_000, help="rows fetched per database round trip"
        )
        parser.add_argument(
            "--workers",
            type=int,
            default=os.cpu_count() or 1,
            help="processes that share a large chain on SQLite (default: one per core)",
        )

    def handle(self, *args: Any, chunk_size: int, workers: int, **options: Any) -> None:
        report = audit_chain_verify(chunk_size=chunk_size, workers=max(1, workers))
        if not report.intact:
            raise CommandError(
                f"audit trail broken at event {report.first_bad_id}: {report.problem} "
                f"({report.count} events checked)",
                returncode=1,
            )
        head = f"head {report.head_id} {report.head_hash}" if report.head_id is not None else "empty"
        self.stdout.write(
            f"audit trail intact: {report.count} events in {report.seconds:.2f} s "
            f"({report.events_per_second:,.0f} events/s); {head}"
        )
