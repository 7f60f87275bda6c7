"""`manage.py backup DIR`: the database and the media folder, consistently, into a new folder."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from config.backup.postgres import BackupError
from config.backup.services import backup_create


class Command(BaseCommand):
    help = (
        "Backs up the PostgreSQL database (pg_dump of one snapshot) and then MEDIA_ROOT (the DICOM "
        "store, AI outputs, models) into DIR, which must be new or empty, with SHA-256 listings and "
        "a manifest. Restore with `manage.py restore DIR` (docs/security.md)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("folder", type=Path, help="a new or empty folder for this backup")

    def handle(self, *args: Any, folder: Path, **options: Any) -> None:
        try:
            summary = backup_create(folder=folder)
        except BackupError as exc:
            raise CommandError(f"backup failed: {exc}") from None
        head = summary.audit_head_id if summary.audit_head_id is not None else "none"
        self.stdout.write(
            f"database: {summary.audit_events} audit events (head {head}), "
            f"{summary.instances} indexed DICOM files"
        )
        self.stdout.write(f"media: {summary.media_files} files, {summary.media_bytes:,} bytes")
        self.stdout.write(self.style.SUCCESS(f"backup written to {summary.folder}"))
