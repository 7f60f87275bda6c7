"""A password sign-in makes the session owe its second factor afresh."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.signals import user_logged_in
from django.http import HttpRequest

from config.otp.policy import otp_session_forget


def connect() -> None:
    user_logged_in.connect(_logged_in, dispatch_uid="config.otp.logged_in")


def _logged_in(sender: Any, request: HttpRequest | None, user: Any, **kwargs: Any) -> None:
    if request is not None and hasattr(request, "session"):
        otp_session_forget(request)
