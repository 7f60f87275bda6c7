"""`manage.py restore DIR`: a backup back into a new database and media folder, then verified."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from config.backup.postgres import BackupError
from config.backup.services import backup_restore


class Command(BaseCommand):
    help = (
        "Restores a folder written by `manage.py backup` into the database of DATABASE_URL and into "
        "MEDIA_ROOT, both of which must be new and empty; then verifies every media file's SHA-256, "
        "the audit chain (and that it ends where the backup's did) and every indexed DICOM file."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("folder", type=Path, help="a folder written by `manage.py backup`")

    def handle(self, *args: Any, folder: Path, **options: Any) -> None:
        try:
            summary = backup_restore(folder=folder)
        except BackupError as exc:
            raise CommandError(f"restore failed: {exc}") from None
        head = summary.audit_head_id if summary.audit_head_id is not None else "none"
        self.stdout.write(
            f"media: {summary.media_files} files copied to {summary.media_root}, each hash checked"
        )
        self.stdout.write(f"audit trail intact: {summary.audit_events} events, head {head} as backed up")
        self.stdout.write(f"DICOM store: {summary.instances} indexed files present with their SHA-256")
        self.stdout.write(self.style.SUCCESS(f"restored {folder} into database {summary.database!r}"))
        self.stdout.write(
            "next: grant the application role its rights (docs/security.md, 'The database role'), "
            "then run `manage.py migrate` if this Overread is newer than the backup"
        )
