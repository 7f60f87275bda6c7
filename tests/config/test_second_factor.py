"""Admins give a TOTP code after the password; everybody else, and API tokens, are unaffected.

Codes are computed from the device's key as an authenticator app would (django_otp.oath.totp).
"""

from __future__ import annotations

from base64 import b32encode, b64encode
from datetime import timedelta
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.test import Client
from django_otp.oath import totp
from django_otp.plugins.otp_totp.models import TOTPDevice
from rest_framework.authtoken.models import Token

from audit.models import AuditEvent
from tests.factories import PASSWORD, UserFactory

pytestmark = pytest.mark.django_db

SIGN_IN = {"event_id": "110114", "event_type": "110122"}  # User Authentication, Login
USER_CHANGED = {"event_id": "110113", "event_type": "110137"}  # Security Alert, User Security Attributes


def _device(user: Any, *, confirmed: bool = True) -> TOTPDevice:
    return TOTPDevice.objects.create(user=user, name="phone", confirmed=confirmed)


def _code(device: TOTPDevice, *, step: int = 0) -> str:
    """The code an authenticator app shows now (`step` periods later for step=1)."""
    device.refresh_from_db()
    return f"{totp(device.bin_key, device.step, device.t0, device.digits, device.drift + step):06d}"


def _wrong(device: TOTPDevice) -> str:
    good = {_code(device, step=s) for s in (-1, 0, 1)}
    return next(c for c in ("000000", "111111", "222222", "333333") if c not in good)


def _signed_in(username: str) -> Client:
    client = Client()
    response = client.post("/login/", {"username": username, "password": PASSWORD})
    assert response.status_code == 302, response.content[:300]
    return client


def _events(**match: Any) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(**match).order_by("id"))


def test_an_admin_with_a_device_is_held_at_the_code_page_until_a_good_code(ada):
    device = _device(ada)
    client = _signed_in("ada")

    for page in ("/", "/audit/", "/admin/", "/upload/"):
        response = client.get(page)
        assert response.status_code == 302, page
        assert response["Location"] == f"/login/otp/?next={page.replace('/', '%2F')}"
    assert client.get("/login/otp/?next=/audit/").status_code == 200

    response = client.post("/login/otp/", {"code": _code(device), "next": "/audit/"})
    assert response.status_code == 302
    assert response["Location"] == "/audit/"
    assert client.get("/audit/").status_code == 200
    assert client.get("/").status_code == 200
    assert _events(**SIGN_IN, outcome=0, username="ada")[-1].detail_data["factor"] == "totp"


def test_a_wrong_code_is_refused_audited_and_further_codes_throttled(ada, settings):
    settings.OTP_TOTP_THROTTLE_FACTOR = 60  # a minute after the first wrong code (1 s by default)
    device = _device(ada)
    client = _signed_in("ada")

    response = client.post("/login/otp/", {"code": _wrong(device)})
    assert response.status_code == 200
    assert b"That code is not right" in response.content
    assert client.get("/").status_code == 302
    failed = _events(**SIGN_IN, outcome=4, username="ada")
    assert [e.outcome_reason for e in failed] == ["second factor failed: wrong code"]
    assert failed[0].user_id == ada.pk

    # Within the throttle even the right code is refused unchecked, and that is audited too.
    response = client.post("/login/otp/", {"code": _code(device)})
    assert b"Too many wrong codes: wait" in response.content
    assert client.get("/").status_code == 302
    assert _events(**SIGN_IN, outcome=4, username="ada")[-1].outcome_reason == (
        "second factor refused: 1 wrong codes"
    )

    device.refresh_from_db()  # a minute later:
    TOTPDevice.objects.filter(pk=device.pk).update(
        throttling_failure_timestamp=device.throttling_failure_timestamp - timedelta(seconds=61)
    )
    assert client.post("/login/otp/", {"code": _code(device)}).status_code == 302
    assert client.get("/").status_code == 200


def test_a_code_is_accepted_only_once(ada):
    device = _device(ada)
    first = _signed_in("ada")
    code = _code(device)
    assert first.post("/login/otp/", {"code": code}).status_code == 302

    second = _signed_in("ada")
    response = second.post("/login/otp/", {"code": code})
    assert b"That code is not right (or was already used)" in response.content
    assert second.get("/").status_code == 302


def test_each_password_sign_in_asks_for_a_code_again(ada):
    device = _device(ada)
    client = _signed_in("ada")
    assert client.post("/login/otp/", {"code": _code(device)}).status_code == 302
    assert client.get("/").status_code == 200

    client.post("/login/", {"username": "ada", "password": PASSWORD})
    assert client.get("/")["Location"] == "/login/otp/?next=%2F"


def test_non_admins_sign_in_with_the_password_alone(rita):
    _device(rita)  # even with a device: the second factor is for admins
    client = _signed_in("rita")
    assert client.get("/").status_code == 200
    assert client.get("/login/otp/")["Location"] == "/"


def test_an_admin_without_a_device_signs_in_with_the_password_while_it_is_optional(ada):
    client = _signed_in("ada")
    assert client.get("/audit/").status_code == 200


def test_while_the_code_is_owed_the_session_does_not_count_for_the_api_but_a_token_does(ada):
    _device(ada)
    client = _signed_in("ada")
    assert client.get("/api/v1/me/").status_code == 401
    assert client.get("/dicomweb/studies").status_code == 401

    token = Token.objects.create(user=ada)
    integration = Client(HTTP_AUTHORIZATION=f"Token {token.key}")
    assert integration.get("/api/v1/me/").status_code == 200
    assert integration.get("/dicomweb/studies").status_code == 200


def test_an_htmx_request_is_sent_to_the_code_page_by_hx_redirect(ada):
    _device(ada)
    client = _signed_in("ada")
    response = client.get("/inference/jobs/", HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    assert response["HX-Redirect"] == "/login/otp/"


def test_an_offsite_next_is_not_followed(ada):
    device = _device(ada)
    client = _signed_in("ada")
    response = client.post("/login/otp/", {"code": _code(device), "next": "https://evil.example/"})
    assert response["Location"] == "/"


def test_when_required_an_admin_without_a_device_enrols_one_before_anything_else(settings):
    settings.OTP_REQUIRED_FOR_ADMINS = True
    UserFactory(username="sam", is_superuser=True, is_staff=True)
    client = _signed_in("sam")
    assert client.get("/")["Location"] == "/login/otp/setup/?next=%2F"
    assert client.get("/login/otp/")["Location"] == "/login/otp/setup/"

    page = client.get("/login/otp/setup/?next=/")
    assert page.status_code == 200
    device = TOTPDevice.objects.get(user__username="sam", confirmed=False)
    html = page.content.decode()
    assert '<svg class="otp-qr" role="img"' in html  # drawn inline on the server
    secret = b32encode(device.bin_key).decode()
    shown = " ".join(secret[i : i + 4] for i in range(0, len(secret), 4))
    assert shown in html
    assert shown in client.get("/login/otp/setup/").content.decode()  # the same key on every visit
    assert TOTPDevice.objects.filter(user__username="sam").count() == 1

    assert b"That code is not right" in client.post("/login/otp/setup/", {"code": _wrong(device)}).content
    device.refresh_from_db()
    assert not device.confirmed
    TOTPDevice.objects.filter(pk=device.pk).update(
        throttling_failure_count=0, throttling_failure_timestamp=None
    )

    response = client.post("/login/otp/setup/", {"code": _code(device), "next": "/"})
    assert response["Location"] == "/"
    device.refresh_from_db()
    assert device.confirmed
    assert client.get("/").status_code == 200
    enrolled = _events(**USER_CHANGED, action="C", username="sam")[-1]
    assert enrolled.detail_data["second_factor"] == "TOTP device enrolled"

    # Enrolled: the next sign-in asks for a code, and setting up again is not offered.
    client = _signed_in("sam")
    assert client.get("/")["Location"] == "/login/otp/?next=%2F"
    assert client.get("/login/otp/setup/")["Location"] == "/login/otp/"


def test_the_setup_page_runs_no_inline_script_under_the_csp(ada):
    page = Client()
    page.force_login(ada)
    response = page.get("/login/otp/setup/")
    policy = response["Content-Security-Policy"]
    script_src = next(part for part in policy.split(";") if part.strip().startswith("script-src"))
    assert "'unsafe-inline'" not in script_src
    html = response.content.decode()
    assert html.count("<script") == html.count("<script src=") + html.count('<script type="module" src=')
    assert "style=" not in html


def test_otp_reset_removes_the_devices_and_is_audited(ada):
    _device(ada)
    _device(ada, confirmed=False)
    call_command("otp_reset", "ada")
    assert not TOTPDevice.objects.filter(user=ada).exists()
    reset = _events(**USER_CHANGED, action="D")[-1]
    assert reset.username.startswith("os:")
    assert reset.detail_data["target_username"] == "ada"
    assert reset.detail_data["second_factor"] == "2 TOTP device(s) removed"
    with pytest.raises(CommandError, match="no user named 'nobody'"):
        call_command("otp_reset", "nobody")


def test_http_basic_does_not_get_round_the_second_factor(ada, rita):
    """DICOMweb takes HTTP Basic for tools that cannot do anything else; a password alone is
    not enough for an admin who owes a code (they use an API token)."""

    def basic(username: str) -> dict[str, str]:
        pair = b64encode(f"{username}:{PASSWORD}".encode()).decode()
        return {"HTTP_AUTHORIZATION": f"Basic {pair}"}

    assert Client().get("/dicomweb/studies", **basic("ada")).status_code == 200
    _device(ada)
    assert Client().get("/dicomweb/studies", **basic("ada")).status_code == 401
    assert Client().get("/dicomweb/studies", **basic("rita")).status_code == 200
