"""An admin enrols an authenticator app and signs in with it, in a real browser, under the CSP."""

from __future__ import annotations

from base64 import b32decode
from pathlib import Path

import pytest
from django_otp.oath import totp

from tests.factories import PASSWORD

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

SCREENSHOTS = Path(__file__).resolve().parents[2] / "var" / "test" / "screenshots"


def _code(secret: str, *, step: int = 0) -> str:
    """What an authenticator app that was given `secret` (as shown on the page) displays."""
    key = b32decode(secret.replace(" ", ""))
    return f"{totp(key, drift=step):06d}"


def _sign_in(page) -> None:
    page.goto("/login/")
    page.get_by_label("Username").fill("ada")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()


def test_an_admin_enrols_an_authenticator_and_signs_in_with_it(page, browser_errors, ada, settings):
    settings.OTP_REQUIRED_FOR_ADMINS = True
    _sign_in(page)
    page.wait_for_url("**/login/otp/setup/?next=%2F")
    qr = page.get_by_role("img", name="QR code for your authenticator app")
    assert qr.is_visible()
    box = qr.bounding_box()
    assert box is not None
    assert min(box["width"], box["height"]) > 120  # large enough for a phone's camera
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=SCREENSHOTS / "otp_setup.png")

    secret = page.get_by_test_id("otp-secret").inner_text()
    page.get_by_label("Code", exact=True).fill(_code(secret))
    page.get_by_role("button", name="Confirm").click()
    page.wait_for_url("**/")
    assert page.get_by_role("heading", name="Worklist").is_visible()

    page.get_by_role("button", name="Log out").click()
    _sign_in(page)
    page.wait_for_url("**/login/otp/?next=%2F")
    page.get_by_label("Code", exact=True).fill("000000" if _code(secret, step=1) != "000000" else "111111")
    page.get_by_role("button", name="Verify").click()
    assert page.get_by_role("alert").inner_text().startswith("That code is not right")

    # The next period's code (the first one was used up at enrolment); the throttle's one second
    # after a wrong code has passed by the time the page has been read.
    page.wait_for_timeout(1100)
    page.get_by_label("Code", exact=True).fill(_code(secret, step=1))
    page.get_by_role("button", name="Verify").click()
    page.wait_for_url("**/")
    assert page.get_by_role("heading", name="Worklist").is_visible()
    assert browser_errors == []  # no CSP violation on any of these pages
