"""`manage.py export_feedback -o DIR [--project P] [--model M] [--since D] [--until D] [--decision K]`,
and `manage.py export_feedback -o DIR --reference [--project P] [--since D] [--until D]`.

Writes the readers' labelled feedback as a training-ready folder (reviews.services.export):
manifest.jsonl, masks/*.nii.gz and seg/*.dcm; with --reference, the consensus projects'
current reference standards (manifest.jsonl and masks/reference-*.nii.gz). The export is
audited (110106 Export) by the operating-system account that ran the command.
"""

from __future__ import annotations

import getpass
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from reviews.models import Decision
from reviews.services import FeedbackFilter, feedback_export_write


class Command(BaseCommand):
    help = "Exports the readers' labelled feedback (manifest.jsonl, NIfTI masks, DICOM SEG) to a folder."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("-o", "--output", required=True, help="the folder to write (created if missing)")
        parser.add_argument("--project", default="", help="a reading project's name or id")
        parser.add_argument("--model", default="", help="a model's name, or name:version")
        parser.add_argument("--since", default="", help="decisions made on or after (YYYY-MM-DD or ISO 8601)")
        parser.add_argument("--until", default="", help="decisions made before (YYYY-MM-DD or ISO 8601)")
        parser.add_argument(
            "--decision", default="", choices=["", *Decision.Kind.values], help="one kind only"
        )
        parser.add_argument(
            "--reference",
            action="store_true",
            help="the consensus cases' current reference standards, with their provenance",
        )

    def handle(self, *args: Any, output: str, **options: Any) -> None:
        folder = Path(output)
        if folder.exists() and any(folder.iterdir()):
            raise CommandError(f"{folder} is not empty: export into a new or empty folder")
        try:
            feedback_filter = FeedbackFilter.from_params(
                {
                    **{name: options[name] for name in ("project", "model", "since", "until", "decision")},
                    "reference": "1" if options["reference"] else "",
                }
            )
            feedback_filter.check_names()
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        count = feedback_export_write(
            folder=folder, feedback_filter=feedback_filter, username=f"os:{getpass.getuser()}"
        )
        what = "reference standard" if options["reference"] else "decision"
        self.stdout.write(f"Exported {count} {what}{'s' if count != 1 else ''} to {folder}.")
