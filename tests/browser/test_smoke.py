"""A person signs in with a demo account in a real browser and sees their worklist."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.core.management import call_command

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

SCREENSHOTS = Path(__file__).resolve().parents[2] / "var" / "test" / "screenshots"


def _demo_password(output: str, username: str) -> str:
    for line in output.splitlines():
        fields = line.split()
        if len(fields) == 3 and fields[1] == username:
            return fields[2]
    raise AssertionError(f"seed_demo printed no password for {username}")


def test_the_demo_radiologist_signs_in_and_sees_the_worklist(
    page, browser_errors, settings, tmp_path, capsys
):
    settings.VAR_DIR = tmp_path
    call_command("seed_demo", no_studies=True)
    password = _demo_password(capsys.readouterr().out, "radiologist")

    page.goto("/")
    assert page.url.endswith("/login/?next=/")
    page.get_by_label("Username").fill("radiologist")
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()

    page.wait_for_url("**/")
    assert page.get_by_role("heading", name="Worklist").is_visible()
    assert page.get_by_test_id("username").inner_text() == "radiologist"
    assert page.get_by_text("No studies are waiting for you.").is_visible()
    # The bundle and htmx load under the Content-Security-Policy (no console errors).
    assert page.evaluate("typeof window.htmx") == "object"
    assert browser_errors == []
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=SCREENSHOTS / "worklist.png")


def test_a_wrong_password_shows_an_error_in_the_browser(page, rita):
    page.goto("/login/")
    page.get_by_label("Username").fill("rita")
    page.get_by_label("Password").fill("not the password")
    page.get_by_role("button", name="Sign in").click()
    assert page.get_by_role("alert").inner_text().startswith("Please enter a correct username and password")


def test_the_api_reference_opens_under_the_content_security_policy(page, browser_errors, rita):
    from tests.browser.test_viewer import sign_in

    sign_in(page)
    page.goto("/api/docs/")
    page.locator(".opblock-tag").first.wait_for(timeout=30_000)
    assert page.get_by_role("heading", name="Overread API").is_visible()
    groups = set(page.locator(".opblock-tag").all_inner_texts())
    assert {"audit", "consensus", "inference", "worklist"} <= groups, groups  # by resource, not "v1"
    assert browser_errors == []  # no inline style or script blocked
