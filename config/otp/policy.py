"""Who must give a second factor, and what a signed-in session still owes.

Admins (the admin role, and superusers) who have a confirmed TOTP device give a
code after the password; with OTP_REQUIRED_FOR_ADMINS, an admin without one must
enrol first. Everybody else signs in with the password alone. What a session
owes is worked out once, at its first request after sign-in, and kept in the
session, so ordinary requests (every image frame of the viewer) cost no query.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any, Final

from django.conf import settings
from django.http import HttpRequest
from django_otp import DEVICE_ID_SESSION_KEY
from django_otp.plugins.otp_totp.models import TOTPDevice

from reviews.roles import Role, user_roles

STEP_SESSION_KEY: Final = "_otp_step"


class Step(StrEnum):
    NONE = "none"  # nothing owed: not an admin, or the code was given
    VERIFY = "verify"  # give a code from the confirmed device
    SETUP = "setup"  # enrol a device (OTP_REQUIRED_FOR_ADMINS), then carry on


def otp_applies(user: Any) -> bool:
    """Whether the second factor is for this user at all: admins and superusers."""
    return bool(user.is_authenticated and (user.is_superuser or Role.ADMIN in user_roles(user)))


def otp_confirmed_device(user: Any) -> TOTPDevice | None:
    return TOTPDevice.objects.filter(user=user, confirmed=True).order_by("pk").first()


def otp_step_owed(user: Any) -> Step:
    """What this user owes after the password, read from the database."""
    if not otp_applies(user):
        return Step.NONE
    if otp_confirmed_device(user) is not None:
        return Step.VERIFY
    return Step.SETUP if settings.OTP_REQUIRED_FOR_ADMINS else Step.NONE


def otp_step_for(request: HttpRequest) -> Step:
    """What the request's session still owes (NONE for anonymous requests and API tokens)."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return Step.NONE
    session = request.session
    if session.get(DEVICE_ID_SESSION_KEY):  # django_otp.login: the code was given
        return Step.NONE
    cached = session.get(STEP_SESSION_KEY)
    if cached is None:
        step = otp_step_owed(user)
        session[STEP_SESSION_KEY] = step.value
        return step
    return Step(cached)


def otp_session_forget(request: HttpRequest) -> None:
    """Makes the session owe its step again (after a password sign-in)."""
    request.session.pop(STEP_SESSION_KEY, None)
    request.session.pop(DEVICE_ID_SESSION_KEY, None)
