"""`manage.py pacs_push --series UID`: send stored instances to the configured PACS (STOW-RS)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from viewer.models import Instance
from viewer.pacs import PacsError, pacs_instances_push


class Command(BaseCommand):
    help = "Pushes a stored study or series to the PACS over STOW-RS."

    def add_arguments(self, parser: CommandParser) -> None:
        target = parser.add_mutually_exclusive_group(required=True)
        target.add_argument("--study", metavar="UID")
        target.add_argument("--series", metavar="UID")

    def handle(self, *args: Any, study: str | None, series: str | None, **options: Any) -> None:
        instances = Instance.objects.select_related("series__study")
        if study:
            instances = instances.filter(series__study__study_uid=study)
        else:
            instances = instances.filter(series__series_uid=series)
        if not instances.exists():
            raise CommandError(f"no stored instances for {'study' if study else 'series'} {study or series}")
        try:
            pushed = pacs_instances_push(instances=instances.order_by("pk").iterator())
        except PacsError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(f"pushed {pushed} instance(s)")
