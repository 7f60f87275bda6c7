"""Reads of the viewer app (keyword-only, typed, named <entity>_<action>).

Who may see which study is decided in exactly one place,
`study_queryset_for_user`; every other read of the index (DICOMweb, the viewer
pages) starts from it, so narrowing access later (per project, per site) is a
change to that one function.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import Permission
from django.db.models import Exists, OuterRef, Q, QuerySet

from viewer.models import Instance, Series, Study

VIEW_STUDY_PERMISSION = "viewer.view_study"


def study_queryset_for_user(*, user: Any) -> QuerySet[Study]:
    """The studies `user` may see: all of them with `viewer.view_study`, else none.

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
