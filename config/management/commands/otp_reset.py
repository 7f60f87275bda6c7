"""`manage.py otp_reset USERNAME`: removes a user's TOTP devices (a lost or replaced phone)."""

from __future__ import annotations

import getpass
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser

from config.otp.services import otp_devices_reset


class Command(BaseCommand):
    help = (
        "Removes every TOTP device of a user (audited). They sign in with the password alone until "
        "they enrol again; with OTP_REQUIRED_FOR_ADMINS an admin must enrol at the next sign-in."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username")

    def handle(self, *args: Any, username: str, **options: Any) -> None:
        user_model = get_user_model()
        try:
            user = user_model._default_manager.get_by_natural_key(username)
        except user_model.DoesNotExist:
            raise CommandError(f"no user named {username!r}") from None
        removed = otp_devices_reset(user=user, actor=f"os:{getpass.getuser()}")
        if not removed:
            self.stdout.write(f"{username} has no TOTP device: nothing to remove")
            return
        self.stdout.write(self.style.SUCCESS(f"removed {removed} TOTP device(s) of {username}"))
