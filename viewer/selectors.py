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
# (user=) -> a condition on Series that the user's series must also meet (within the studies
# they see): the apps that write series (AI outputs, readers' objects) say who sees them.
SeriesScope = Callable[..., Q]
_series_scopes: list[SeriesScope] = []


def study_scope_register(scope: StudyScope) -> None:
    """Narrows every read of the index to studies that also meet `scope(user=...)`'s condition
    (called once, from an AppConfig.ready())."""
    if scope not in _study_scopes:
        _study_scopes.append(scope)


# Conditions that hold always and never, for any model: Django leaves the first out of the
# SQL and answers a query whose condition is the second without asking the database.
ALWAYS = ~Q(pk__in=[])
NEVER = Q(pk__in=[])


def permission_condition(user: Any, perm: str) -> Q:
    """A condition that holds when `user` has the model permission `perm` ("app.codename") as
    Django's ModelBackend grants it, for a query of any model. When this request has loaded the
    user's permissions already (ModelBackend keeps them on the user: any has_perm() without an
    object), it is answered in Python and the query carries ALWAYS or NEVER; else it is two
    EXISTS in the caller's query, which saves the two queries that loading them costs. Should
    another backend ever grant model permissions, answer with `user.has_perm(perm)` only."""
    if hasattr(user, "_perm_cache"):
        return ALWAYS if user.has_perm(perm) else NEVER
    app_label, codename = perm.split(".")
    permission = Permission.objects.filter(codename=codename, content_type__app_label=app_label)
    return Q(Exists(permission.filter(user=user.pk))) | Q(Exists(permission.filter(group__user=user.pk)))


def study_queryset_for_user(*, user: Any) -> QuerySet[Study]:
    """The studies `user` may see: with `viewer.view_study`, those every registered scope
    allows (reviews: all for admins, else the studies of the user's reading projects);
    without it none. Superusers see all.

    The permission is tested as `permission_condition` says: inside the query
    when this request has not loaded the user's permissions (a frame request
    costs one query rather than three), in Python when it has.
    """
    if user is None or not user.is_authenticated or not user.is_active:
        return Study.objects.none()
    if user.is_superuser:
        return Study.objects.all()
    granted = permission_condition(user, VIEW_STUDY_PERMISSION)
    for scope in _study_scopes:
        granted &= scope(user=user)
    return Study.objects.filter(granted)


def series_scope_register(scope: SeriesScope) -> None:
    """Narrows every read of series and instances to series that also meet `scope(user=...)`'s
    condition (called once, from an AppConfig.ready())."""
    if scope not in _series_scopes:
        _series_scopes.append(scope)


def series_scope(*, user: Any) -> Q:
    """The registered series conditions together: a series Overread wrote is seen by whom its
    producer says (series from outside, producer_kind "", are never narrowed here)."""
    condition = Q()
    if user is not None and user.is_superuser:
        return condition
    for scope in _series_scopes:
        condition &= scope(user=user)
    return condition


def series_queryset_for_user(*, user: Any) -> QuerySet[Series]:
    """The series of the studies `user` may see, less the written ones they may not."""
    # A correlated EXISTS on the study's primary key: one index probe per row,
    # where `study__in=` would make SQLite list every visible study first.
    visible = study_queryset_for_user(user=user).filter(pk=OuterRef("study_id"))
    return Series.objects.filter(Exists(visible)).filter(series_scope(user=user))


def instance_queryset_for_user(*, user: Any) -> QuerySet[Instance]:
    """The instances of the series `user` may see."""
    visible = study_queryset_for_user(user=user).filter(pk=OuterRef("series__study_id"))
    instances = Instance.objects.filter(Exists(visible))
    if _series_scopes and not user.is_superuser:
        # Only series Overread wrote are ever narrowed: the others pass on their column alone.
        seen = Series.objects.filter(pk=OuterRef("series_id")).filter(series_scope(user=user))
        instances = instances.filter(Q(series__producer_kind="") | Q(Exists(seen)))
    return instances
