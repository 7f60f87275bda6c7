"""Signal receivers that record sign-ins and changes to users and their roles.

The codes follow DICOM PS3.15 A.5.3 (docs/operations.md has the table):
- sign-in, sign-out, failed sign-in: 110114 User Authentication with 110122
  Login or 110123 Logout; a failure has outcome 4.
- lock-out (django-axes): 110113 Security Alert with 110137 User Security
  Attributes Changed (the account is now locked) and outcome 8, "serious
  failure": password guessing was seen, and the lock is the mitigation.
- a user created or changed: 110113 with 110137; their roles (groups)
  changed: 110113 with 110136 Security Roles Changed. Who did it comes from
  the request in audit.context (the admin page's user), when there is one.
"""

from __future__ import annotations

from typing import Any, Final

from axes.signals import user_locked_out
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed
from django.db.models.signals import m2m_changed, post_save, pre_save
from django.http import HttpRequest

from audit.codes import EventID, EventType, Outcome
from audit.context import current_request
from audit.services import audit_record

# The actor named when a change comes from no signed-in user (a command, a shell).
SYSTEM: Final = "system"
# What is compared before and after a save; the password only as "changed".
_TRACKED: Final = ("username", "email", "first_name", "last_name", "is_active", "is_staff", "is_superuser")


def connect() -> None:
    user_model = get_user_model()
    user_logged_in.connect(_logged_in, dispatch_uid="audit.logged_in")
    user_logged_out.connect(_logged_out, dispatch_uid="audit.logged_out")
    user_login_failed.connect(_login_failed, dispatch_uid="audit.login_failed")
    user_locked_out.connect(_locked_out, dispatch_uid="audit.locked_out")
    pre_save.connect(_user_before_save, sender=user_model, dispatch_uid="audit.user_pre_save")
    post_save.connect(_user_saved, sender=user_model, dispatch_uid="audit.user_post_save")
    m2m_changed.connect(_groups_changed, sender=user_model.groups.through, dispatch_uid="audit.user_groups")


def _logged_in(sender: Any, request: HttpRequest | None, user: Any, **kwargs: Any) -> None:
    audit_record(
        event=EventID.USER_AUTHENTICATION, event_type=EventType.LOGIN, action="E", request=request, user=user
    )


def _logged_out(sender: Any, request: HttpRequest | None, user: Any, **kwargs: Any) -> None:
    if user is None:  # signing out without being signed in changes nothing
        return
    audit_record(
        event=EventID.USER_AUTHENTICATION, event_type=EventType.LOGOUT, action="E", request=request, user=user
    )


def _login_failed(
    sender: Any, credentials: dict[str, Any], request: HttpRequest | None = None, **kwargs: Any
) -> None:
    # Django has already masked the password in `credentials`; only the name tried is kept.
    audit_record(
        event=EventID.USER_AUTHENTICATION,
        event_type=EventType.LOGIN,
        action="E",
        outcome=Outcome.MINOR_FAILURE,
        outcome_reason="authentication failed",
        request=request,
        username=str(credentials.get("username") or ""),
    )


def _locked_out(
    sender: Any, request: HttpRequest, username: str | None, ip_address: str, **kwargs: Any
) -> None:
    audit_record(
        event=EventID.SECURITY_ALERT,
        event_type=EventType.USER_SECURITY_ATTRIBUTES_CHANGED,
        action="E",
        outcome=Outcome.SERIOUS_FAILURE,
        outcome_reason="account locked after repeated failed sign-ins",
        request=request,
        username=username or "",
        detail={
            "locked_username": username or "",
            "failures": getattr(request, "axes_failures_since_start", 0),
        },
    )


def _user_before_save(sender: Any, instance: Any, update_fields: Any = None, **kwargs: Any) -> None:
    if instance.pk is None or _only_last_login(update_fields):
        return
    instance._audit_before = (
        sender._default_manager.filter(pk=instance.pk).values(*_TRACKED, "password").first()
    )


def _user_saved(sender: Any, instance: Any, created: bool, update_fields: Any = None, **kwargs: Any) -> None:
    if _only_last_login(update_fields):
        return
    after = {field: getattr(instance, field) for field in _TRACKED}
    before = getattr(instance, "_audit_before", None)
    instance._audit_before = None
    if created or before is None:
        changes: dict[str, Any] = {"after": after}
    else:
        changed = [field for field in _TRACKED if before[field] != after[field]]
        changes = {
            "before": {field: before[field] for field in changed},
            "after": {field: after[field] for field in changed},
        }
        if before["password"] != instance.password:
            changes["password_changed"] = True
        elif not changed:
            return
    audit_record(
        event=EventID.SECURITY_ALERT,
        event_type=EventType.USER_SECURITY_ATTRIBUTES_CHANGED,
        action="C" if created else "U",
        request=current_request(),
        username=SYSTEM,
        detail={"target_user_id": instance.pk, "target_username": instance.get_username(), **changes},
    )


def _only_last_login(update_fields: Any) -> bool:
    # Signing in saves last_login; the sign-in event already says so.
    return update_fields is not None and set(update_fields) <= {"last_login"}


def _groups_changed(
    sender: Any, instance: Any, action: str, reverse: bool, pk_set: set[int] | None, **kwargs: Any
) -> None:
    # `instance` is a user (user.groups.add) or, when reverse, a group (group.user_set.add).
    if action == "pre_clear":  # clearing sends no pk_set: remember what is about to go
        related = instance.user_set if reverse else instance.groups
        instance._audit_cleared = set(related.values_list("pk", flat=True))
        return
    if action == "post_clear":
        pk_set = getattr(instance, "_audit_cleared", set())
    elif action not in {"post_add", "post_remove"}:
        return
    if not pk_set:
        return
    verb = "added" if action == "post_add" else "removed"
    if reverse:
        users = get_user_model()._default_manager.filter(pk__in=pk_set)
        targets = [(user, [instance.name]) for user in users]
    else:
        targets = [(instance, sorted(Group.objects.filter(pk__in=pk_set).values_list("name", flat=True)))]
    for user, names in targets:
        audit_record(
            event=EventID.SECURITY_ALERT,
            event_type=EventType.SECURITY_ROLES_CHANGED,
            action="U",
            request=current_request(),
            username=SYSTEM,
            detail={"target_user_id": user.pk, "target_username": user.get_username(), verb: names},
        )
