"""`manage.py check_services`: is every service Overread needs up? Exit 1 if not."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from config import health


class Command(BaseCommand):
    help = "Checks the database, the Celery broker, a live worker and (when configured) the PACS."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for a worker")
        parser.add_argument("--no-worker", action="store_true", help="skip the worker round trip")

    def handle(self, *args: Any, timeout: float, no_worker: bool, **options: Any) -> None:
        checks = [health.check_database(), health.check_broker()]
        if not no_worker:
            checks.append(health.check_worker(timeout=timeout))
        if settings.PACS_ENABLED:
            checks.append(health.check_pacs(timeout=timeout))
        for check in checks:
            mark = self.style.SUCCESS("ok    ") if check.ok else self.style.ERROR("FAILED")
            self.stdout.write(f"{mark} {check.name:<9} {check.seconds * 1000:7.1f} ms  {check.detail}")
        failed = [c.name for c in checks if not c.ok]
        if failed:
            raise CommandError(f"not healthy: {', '.join(failed)}")
