"""`manage.py pacs_pull --study UID`: copy a study from the configured PACS into Overread."""

from __future__ import annotations

import sys
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from viewer.pacs import PacsError, PullSummary, pacs_study_pull


class Command(BaseCommand):
    help = "Pulls one study from the PACS (settings PACS_*) over DICOMweb; exit 1 if anything was rejected."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--study", required=True, metavar="UID", help="Study Instance UID to pull")

    def handle(self, *args: Any, study: str, **options: Any) -> None:
        tty = sys.stdout.isatty()

        def progress(summary: PullSummary) -> None:
            if tty:
                self.stdout.write(
                    f"\r{summary.stored + summary.duplicates + summary.rejected}/{summary.total}", ending=""
                )

        try:
            summary = pacs_study_pull(study_uid=study, progress=progress)
        except PacsError as exc:
            raise CommandError(str(exc)) from exc
        if tty:
            self.stdout.write("")
        self.stdout.write(
            f"study {study}: {summary.total} instances, {summary.stored} stored, "
            f"{summary.duplicates} already here, {summary.rejected} rejected"
        )
        for reason in summary.reasons:
            self.stderr.write(f"  rejected {reason}")
        if summary.rejected:
            raise CommandError(f"{summary.rejected} instance(s) rejected")
