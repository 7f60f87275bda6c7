"""The events recorded from the start carry the right DICOM codes (PS3.15 A.5, CID 400/401/403)."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group
from django.urls import reverse

from audit.codes import EventID, EventType, Outcome
from audit.models import AuditEvent
from reviews.roles import Role
from tests.factories import PASSWORD, UserFactory

pytestmark = pytest.mark.django_db

AUTH = EventID.USER_AUTHENTICATION.code
ALERT = EventID.SECURITY_ALERT.code
RESTRICTED = EventType.USE_OF_RESTRICTED_FUNCTION.code


def _events(**filters) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(**filters).order_by("id"))


def test_a_sign_in_is_recorded_as_user_authentication_login(client, rita):
    client.post(reverse("login"), {"username": "rita", "password": PASSWORD}, HTTP_USER_AGENT="Chromium/150")
    [event] = _events(event_id=AUTH)
    assert (event.event_type, event.action, event.outcome) == (EventType.LOGIN.code, "E", Outcome.SUCCESS)
    assert (event.user_id, event.username, event.role) == (rita.pk, "rita", "radiologist")
    assert (event.source_ip, event.user_agent) == ("127.0.0.1", "Chromium/150")
    assert len(event.session_hash) == 64


def test_a_sign_out_is_recorded_as_user_authentication_logout(client, rita):
    client.force_login(rita)
    client.post(reverse("logout"))
    login, logout = _events(event_id=AUTH)
    assert login.event_type == EventType.LOGIN.code
    assert (logout.event_type, logout.outcome, logout.username) == (EventType.LOGOUT.code, 0, "rita")
    assert logout.session_hash == login.session_hash  # the same session ends


def test_a_failed_sign_in_is_a_login_with_minor_failure_and_no_password(client, rita):
    client.post(reverse("login"), {"username": "rita", "password": "wrong-guess-123"})
    [event] = _events(event_id=AUTH)
    assert (event.event_type, event.outcome) == (EventType.LOGIN.code, Outcome.MINOR_FAILURE)
    assert (event.user_id, event.username) == (None, "rita")
    assert "wrong-guess-123" not in str(AuditEvent.objects.filter(pk=event.pk).values().get())


def test_a_lock_out_is_a_security_alert_on_the_users_security_attributes(client, rita, settings):
    for _ in range(settings.AXES_FAILURE_LIMIT):
        client.post(reverse("login"), {"username": "rita", "password": "wrong"})
    [alert] = _events(
        event_id=ALERT, event_type=EventType.USER_SECURITY_ATTRIBUTES_CHANGED.code, username="rita"
    )
    assert alert.outcome == Outcome.SERIOUS_FAILURE
    assert alert.detail_data == {"locked_username": "rita", "failures": settings.AXES_FAILURE_LIMIT}
    assert len(_events(event_id=AUTH, outcome=Outcome.MINOR_FAILURE)) == settings.AXES_FAILURE_LIMIT


@pytest.mark.parametrize(
    ("method", "url"),
    [
        ("get", "/audit/"),
        ("get", "/audit/export/csv/"),
        ("post", "/audit/exports/"),
        ("get", "/api/v1/audit/events/"),
        ("get", "/api/v1/audit/events/export/jsonl/"),
    ],
)
@pytest.mark.parametrize("who", ["rita", "anna", "adi"])
def test_non_admins_are_refused_and_the_refusal_is_audited(client, request, method, url, who):
    user = request.getfixturevalue(who)
    client.force_login(user)
    response = getattr(client, method)(url)
    assert response.status_code == 403
    [event] = _events(event_id=ALERT, event_type=RESTRICTED)
    assert event.action == "E"
    assert (event.outcome, event.outcome_reason) == (Outcome.MINOR_FAILURE, "permission denied")
    assert (event.username, event.user_id) == (who, user.pk)
    assert event.detail_data == {"method": method.upper(), "path": url}
    assert not _events(event_id__in=[EventID.EXPORT.code, EventID.AUDIT_LOG_USED.code])


def test_an_integration_token_without_the_permission_is_refused_and_audited(client, rita):
    from rest_framework.authtoken.models import Token

    token = Token.objects.create(user=rita)
    response = client.get("/api/v1/audit/events/", HTTP_AUTHORIZATION=f"Token {token.key}")
    assert response.status_code == 403
    [event] = _events(event_id=ALERT, event_type=RESTRICTED)
    assert (event.username, event.session_hash) == ("rita", "")


def test_a_refused_csrf_check_is_audited_too(rita):
    from django.test import Client

    client = Client(enforce_csrf_checks=True)
    client.force_login(rita)
    assert client.post(reverse("logout")).status_code == 403
    [event] = _events(event_id=ALERT, event_type=RESTRICTED)
    assert event.detail_data["path"] == "/logout/"


def test_creating_a_user_in_the_admin_records_who_did_it(client, ada):
    client.force_login(ada)
    response = client.post(
        "/admin/auth/user/add/",
        {
            "username": "newbie",
            "password1": "a-long-new-passphrase",
            "password2": "a-long-new-passphrase",
            "usable_password": "true",
        },
    )
    assert response.status_code == 302
    [event] = _events(event_type=EventType.USER_SECURITY_ATTRIBUTES_CHANGED.code, action="C", username="ada")
    assert (event.username, event.role) == ("ada", "admin")
    assert event.detail_data["target_username"] == "newbie"
    assert event.detail_data["after"]["is_active"] is True
    assert "password" not in event.detail


def test_changing_a_users_roles_and_flags_in_the_admin_is_recorded(client, ada, rita):
    client.force_login(ada)
    before = AuditEvent.objects.count()
    response = client.post(
        f"/admin/auth/user/{rita.pk}/change/",
        {
            "username": "rita",
            "first_name": rita.first_name,
            "last_name": rita.last_name,
            "email": "",
            "is_active": "on",
            "is_staff": "on",
            "groups": [Group.objects.get(name=Role.ADMIN).pk],
            "date_joined_0": rita.date_joined.strftime("%Y-%m-%d"),
            "date_joined_1": rita.date_joined.strftime("%H:%M:%S"),
            "initial-date_joined_0": rita.date_joined.strftime("%Y-%m-%d"),
            "initial-date_joined_1": rita.date_joined.strftime("%H:%M:%S"),
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    new = list(AuditEvent.objects.order_by("id")[before:])
    roles = [e for e in new if e.event_type == EventType.SECURITY_ROLES_CHANGED.code]
    flags = [e for e in new if e.event_type == EventType.USER_SECURITY_ATTRIBUTES_CHANGED.code]
    assert {(e.event_id, e.username) for e in roles + flags} == {(ALERT, "ada")}
    assert sorted(sorted(e.detail_data.items()) for e in roles) == [
        [("added", ["admin"]), ("target_user_id", rita.pk), ("target_username", "rita")],
        [("removed", ["radiologist"]), ("target_user_id", rita.pk), ("target_username", "rita")],
    ]
    [flag] = flags
    assert flag.action == "U"
    assert flag.detail_data["before"] == {"is_staff": False}
    assert flag.detail_data["after"] == {"is_staff": True}


def test_role_changes_made_from_code_name_the_system_as_the_actor(rita):
    group = Group.objects.get(name=Role.ADJUDICATOR)
    group.user_set.add(rita)
    rita.groups.clear()
    added, cleared = _events(event_type=EventType.SECURITY_ROLES_CHANGED.code)[-2:]
    assert (added.username, added.detail_data["added"]) == ("system", ["adjudicator"])
    assert sorted(cleared.detail_data["removed"]) == ["adjudicator", "radiologist"]


def test_a_sign_in_does_not_count_as_a_change_to_the_user(client, rita):
    before = AuditEvent.objects.count()
    client.post(reverse("login"), {"username": "rita", "password": PASSWORD})
    assert [e.event_id for e in AuditEvent.objects.order_by("id")[before:]] == [AUTH]


def test_a_password_change_is_recorded_without_the_password(rita):
    rita.set_password("another-long-passphrase")
    rita.save()
    event = _events(event_type=EventType.USER_SECURITY_ATTRIBUTES_CHANGED.code)[-1]
    assert event.detail_data["password_changed"] is True
    assert rita.password not in event.detail


def test_user_factory_fixture_cast_is_recorded_as_created(db):
    UserFactory(username="someone")
    assert _events(event_type=EventType.USER_SECURITY_ATTRIBUTES_CHANGED.code, action="C")
