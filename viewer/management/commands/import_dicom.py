"""`manage.py import_dicom PATH...`: DICOM files, folders of them (recursively) and ZIP archives.

Each file goes through the one ingest service (told apart by content, not by
name). A counter shows progress on a terminal; the summary counts stored,
already-stored and rejected files and lists every rejection with its reason.
The exit status is 1 when anything was rejected, else 0.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from viewer.ingest.service import IngestOutcome, ingest_upload

# Desktop and media debris that is not an instance (a DICOMDIR only lists the files).
_SKIPPED = {".DS_Store", "Thumbs.db", "desktop.ini", "DICOMDIR"}


class Command(BaseCommand):
    help = (
        "Imports DICOM files, folders (recursively) and ZIP archives; exit status 1 if anything was rejected."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "paths", nargs="+", type=Path, metavar="PATH", help="a file, folder or ZIP archive"
        )

    def handle(self, *args: Any, paths: list[Path], **options: Any) -> None:
        missing = [path for path in paths if not path.exists()]
        files = sorted({file for path in paths if path.exists() for file in _files(path)})
        counts: Counter[str] = Counter()
        rejected: list[IngestOutcome] = []
        on_terminal = self.stdout.isatty()
        for number, path in enumerate(files, start=1):
            if on_terminal:
                self.stdout.write(f"\r[{number}/{len(files)}] {_short(path)}\x1b[K", ending="")
                self.stdout.flush()
            for outcome in ingest_upload(source=path, name=str(path), origin="import"):
                counts[outcome.status] += 1
                if outcome.status == "rejected":
                    rejected.append(outcome)
        if on_terminal and files:
            self.stdout.write("\r\x1b[K", ending="")
        self._report(len(files), counts, rejected, missing)

    def _report(
        self, files: int, counts: Counter[str], rejected: list[IngestOutcome], missing: list[Path]
    ) -> None:
        self.stdout.write(
            f"{files} file(s) read: {counts['stored']} stored, {counts['duplicate']} already stored, "
            f"{counts['rejected']} rejected"
        )
        for path in missing:
            self.stderr.write(f"  not found: {path}")
        for outcome in rejected:
            self.stderr.write(f"  rejected {outcome.name}: {outcome.reason}")
        if rejected or missing:
            raise CommandError(f"{len(rejected)} rejected, {len(missing)} not found", returncode=1)


def _files(path: Path) -> Iterator[Path]:
    if not path.is_dir():
        yield path
        return
    for folder, subfolders, names in os.walk(path):  # links to folders are not followed
        subfolders[:] = [name for name in subfolders if not name.startswith(".")]
        for name in names:
            if name not in _SKIPPED and not name.startswith("."):
                yield Path(folder) / name


def _short(path: Path, width: int = 60) -> str:
    text = str(path)
    return text if len(text) <= width else "…" + text[-(width - 1) :]
