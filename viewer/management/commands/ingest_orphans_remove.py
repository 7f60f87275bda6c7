"""`manage.py ingest_orphans_remove [--older-than MINUTES]`: removes what crashed ingests left.

The same work as the `viewer.ingest_orphans_remove` task (see viewer.tasks): spool files and
unindexed store files older than the given age; prints how many of each went.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from viewer.tasks import ORPHAN_MINUTES, ingest_orphans_remove


class Command(BaseCommand):
    help = "Removes spool files and unindexed DICOM store files left by crashed ingests."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--older-than",
            type=int,
            default=ORPHAN_MINUTES,
            metavar="MINUTES",
            help=f"only files at least this old (default {ORPHAN_MINUTES}); younger ones may be in use",
        )

    def handle(self, *args: Any, older_than: int, **options: Any) -> None:
        if older_than < 1:  # a file younger than that may belong to an ingest running now
            raise CommandError("--older-than must be at least 1 minute")
        removed = ingest_orphans_remove(older_than_minutes=older_than)
        spool, store = removed["spool_files"], removed["store_files"]
        self.stdout.write(f"removed {spool} spool file(s) and {store} unindexed store file(s)")
