"""Checking second-factor codes, enrolling and resetting TOTP devices; every outcome audited.

Codes are throttled per device by django-otp: after n wrong codes in a row the
next one is refused unchecked for 2^(n-1) seconds, so guessing six digits is out
of reach, and each code is accepted once (a replayed code fails). Wrong and
refused codes are recorded like failed sign-ins (110114 User Authentication,
110122 Login, outcome 4); enrolling and resetting a device like other changes to
a user's security attributes (110113 Security Alert, 110137).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import django_otp
from django.db import transaction
from django.http import HttpRequest
from django.utils import timezone
from django_otp.plugins.otp_totp.models import TOTPDevice

from audit.codes import EventID, EventType, Outcome
from audit.services import audit_record
from config.otp.policy import STEP_SESSION_KEY, Step

DEVICE_NAME = "authenticator"


@dataclass(frozen=True)
class CodeResult:
    passed: bool
    wait_seconds: int = 0  # above 0: refused unchecked after too many wrong codes; try after this


def otp_code_check(*, request: HttpRequest, device: TOTPDevice, code: str) -> CodeResult:
    """Checks a code against the device (confirmed or being enrolled), throttled and audited."""
    with transaction.atomic():  # one check at a time per device: a code cannot pass twice
        locked = TOTPDevice.objects.select_for_update().get(pk=device.pk)
        allowed, refusal = locked.verify_is_allowed()
        passed = bool(allowed and locked.verify_token(code))
    if not allowed:
        wait = (refusal or {}).get("locked_until", timezone.now()) - timezone.now()
        failures = (refusal or {}).get("failure_count", 0)
        _audit_code(request, locked, Outcome.MINOR_FAILURE, f"second factor refused: {failures} wrong codes")
        return CodeResult(passed=False, wait_seconds=max(1, math.ceil(wait.total_seconds())))
    if passed:
        _audit_code(request, locked, Outcome.SUCCESS, "")
        return CodeResult(passed=True)
    _audit_code(request, locked, Outcome.MINOR_FAILURE, "second factor failed: wrong code")
    return CodeResult(passed=False)


def otp_session_pass(*, request: HttpRequest, device: TOTPDevice) -> None:
    """Marks the session as having given its second factor (a new session key, as at sign-in)."""
    request.session.cycle_key()
    django_otp.login(request, device)
    request.session[STEP_SESSION_KEY] = Step.NONE.value


def otp_device_pending(*, user: Any) -> TOTPDevice:
    """The device being enrolled (not yet confirmed): the same secret on every visit until confirmed."""
    pending = TOTPDevice.objects.filter(user=user, confirmed=False).order_by("pk").first()
    return pending or TOTPDevice.objects.create(user=user, name=DEVICE_NAME, confirmed=False)


def otp_device_confirm(*, request: HttpRequest, device: TOTPDevice) -> None:
    """Confirms an enrolled device after its first good code; other unconfirmed ones go."""
    with transaction.atomic():
        device.confirmed = True
        device.save(update_fields=["confirmed"])
        TOTPDevice.objects.filter(user_id=device.user_id, confirmed=False).delete()
    user = device.user
    audit_record(
        event=EventID.SECURITY_ALERT,
        event_type=EventType.USER_SECURITY_ATTRIBUTES_CHANGED,
        action="C",
        request=request,
        detail={
            "target_user_id": user.pk,
            "target_username": user.get_username(),
            "second_factor": "TOTP device enrolled",
        },
    )


def otp_devices_reset(*, user: Any, actor: str) -> int:
    """Removes every TOTP device of the user (a lost phone); returns how many went.

    With OTP_REQUIRED_FOR_ADMINS the admin enrols a new one at their next sign-in.
    `actor` names who did it (`os:NAME` from a command).
    """
    with transaction.atomic():
        removed, _ = TOTPDevice.objects.filter(user=user).delete()
    if removed:
        audit_record(
            event=EventID.SECURITY_ALERT,
            event_type=EventType.USER_SECURITY_ATTRIBUTES_CHANGED,
            action="D",
            username=actor,
            detail={
                "target_user_id": user.pk,
                "target_username": user.get_username(),
                "second_factor": f"{removed} TOTP device(s) removed",
            },
        )
    return int(removed)


def _audit_code(request: HttpRequest, device: TOTPDevice, outcome: int, reason: str) -> None:
    audit_record(
        event=EventID.USER_AUTHENTICATION,
        event_type=EventType.LOGIN,
        action="E",
        outcome=outcome,
        outcome_reason=reason,
        request=request,
        detail={"factor": "totp", "device_confirmed": device.confirmed},
    )
