"""Reads of the viewer app (keyword-only, typed, named <entity>_<action>).

Who may see which study is decided in exactly one place,
`study_queryset_for_user`; every other read of the index (DICOMweb, the viewer
pages) starts from it. The viewer knows nothing of projects: an app that narrows
access (reviews: a reader sees the studies of their reading projects) registers a
scope with `study_scope_register` when it starts, and the scope's condition joins
the same query.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.contrib.auth.models import Permission
from django.db.models import Exists, OuterRef, Q, QuerySet

from viewer.models import Instance, Series, Study

VIEW_STUDY_PERMISSION = "viewer.view_study"

# (user=) -> a condition on Study that the user's studies must also meet.
StudyScope = Callable[..., Q]
_study_scopes: list[StudyScope] = []


def study_scope_register(scope: StudyScope) -> None:
    """Narrows every read of the index to studies that also meet `scope(user=...)`'s condition
    (called once, from an AppConfig.ready())."""
    if scope not in _study_scopes:
        _study_scopes.append(scope)


def study_queryset_for_user(*, user: Any) -> QuerySet[Study]:
    """The studies `user` may see: with `viewer.view_study`, those every registered scope
    allows (reviews: all for admins, else the studies of the user's reading projects);
    without it none. Superusers see all.

    The permission is tested inside the query that uses these studies (an
    EXISTS over the user's and their groups' permissions, as Django's
    ModelBackend grants them), so a frame request costs one query rather than
    three. Should another backend ever grant permissions, test
    `user.has_perm(VIEW_STUDY_PERMISSION)` here instead.
    """
    if user is None or not user.is_authenticated or not user.is_active:
        return Study.objects.none()
    if user.is_superuser:
        return Study.objects.all()
    app_label, codename = VIEW_STUDY_PERMISSION.split(".")
    permission = Permission.objects.filter(codename=codename, content_type__app_label=app_label)
    granted = Q(Exists(permission.filter(user=user.pk))) | Q(Exists(permission.filter(group__user=user.pk)))
    for scope in _study_scopes:
        granted &= scope(user=user)
    return Study.objects.filter(granted)


def series_queryset_for_user(*, user: Any) -> QuerySet[Series]:
    """The series of the studies `user` may see."""
    # A correlated EXISTS on the study's primary key: one index probe per row,
    # where `study__in=` would make SQLite list every visible study first.
    visible = study_queryset_for_user(user=user).filter(pk=OuterRef("study_id"))
    return Series.objects.filter(Exists(visible))


def instance_queryset_for_user(*, user: Any) -> QuerySet[Instance]:
    """The instances of the studies `user` may see."""
    visible = study_queryset_for_user(user=user).filter(pk=OuterRef("series__study_id"))
    return Instance.objects.filter(Exists(visible))
