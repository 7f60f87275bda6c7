"""Every page and API endpoint needs a signed-in user; sign-in is hardened."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group
from django.urls import reverse
from rest_framework.authtoken.models import Token

from reviews.roles import ROLE_PERMISSIONS, Role
from tests.factories import PASSWORD

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("url", ["/", "/admin/"])
def test_pages_send_anonymous_visitors_to_sign_in(client, url):
    response = client.get(url)
    assert response.status_code == 302
    assert response["Location"].startswith("/login/") or response["Location"].startswith("/admin/login/")


@pytest.mark.parametrize("url", ["/api/v1/me/", "/api/schema/", "/api/docs/"])
def test_the_api_rejects_anonymous_callers(client, url):
    assert client.get(url).status_code in {401, 403}


def test_a_reader_signs_in_and_lands_on_the_worklist(client, rita):
    response = client.post(reverse("login"), {"username": "rita", "password": PASSWORD}, follow=True)
    assert response.redirect_chain[-1][0] == "/"
    assert b"Worklist" in response.content
    assert b"radiologist" in response.content


def test_a_wrong_password_is_refused_with_a_message(client, rita):
    response = client.post(reverse("login"), {"username": "rita", "password": "wrong"})
    assert response.status_code == 200
    assert b"Please enter a correct username and password" in response.content
    assert "_auth_user_id" not in client.session


def test_repeated_failures_lock_the_account_even_for_the_right_password(client, rita, settings):
    for _ in range(settings.AXES_FAILURE_LIMIT):
        client.post(reverse("login"), {"username": "rita", "password": "wrong"})
    response = client.post(reverse("login"), {"username": "rita", "password": PASSWORD})
    assert response.status_code == 429
    assert b"Too many failed sign-ins" in response.content
    assert "_auth_user_id" not in client.session


def test_sign_out_needs_a_post_and_ends_the_session(client, rita):
    client.force_login(rita)
    asked = client.get(reverse("logout"))  # typed into the address bar: a question, not a sign-out
    assert asked.status_code == 200
    assert b'<form method="post" action="/logout/">' in asked.content
    assert client.get("/").status_code == 200  # still signed in
    client.post(reverse("logout"))
    assert client.get("/").status_code == 302


def test_integrations_authenticate_with_a_token(client, rita):
    token = Token.objects.create(user=rita)
    response = client.get("/api/v1/me/", HTTP_AUTHORIZATION=f"Token {token.key}")
    assert response.status_code == 200
    assert response.json() == {"username": "rita", "roles": ["radiologist"]}
    assert client.get("/api/v1/me/", HTTP_AUTHORIZATION="Token not-a-token").status_code == 401


def test_each_role_is_a_group_with_exactly_its_permissions():
    for role in Role.ALL:
        group = Group.objects.get(name=role)
        held = {f"{p.content_type.app_label}.{p.codename}" for p in group.permissions.all()}
        assert held == set(ROLE_PERMISSIONS[role])


def test_only_admins_reach_the_django_admin(client, rita, ada):
    client.force_login(rita)
    assert client.get("/admin/").status_code == 302
    client.force_login(ada)
    assert client.get("/admin/").status_code == 200
    assert client.get("/admin/auth/user/").status_code == 200


def test_pages_carry_a_content_security_policy_without_inline_scripts(client, rita):
    client.force_login(rita)
    response = client.get("/")
    policy = response["Content-Security-Policy"]
    assert "script-src 'self' 'wasm-unsafe-eval'" in policy
    assert "unsafe-inline" not in policy
    assert b"<script>" not in response.content
