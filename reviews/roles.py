"""The four roles as Django groups, and the permissions each one holds.

`roles_sync` creates the groups and sets their permissions to exactly this map;
it runs after every migrate, so a new permission reaches its role on deploy.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import Group, Permission
from django.db import transaction
from django.db.models import Q, prefetch_related_objects


class Role:
    RADIOLOGIST = "radiologist"
    ANNOTATOR = "annotator"
    ADJUDICATOR = "adjudicator"
    ADMIN = "admin"

    ALL = (RADIOLOGIST, ANNOTATOR, ADJUDICATOR, ADMIN)


# "app_label.codename" for each role. Apps add their permissions here as they
# grow; an unknown name is an error (a typo must not silently grant nothing).
ROLE_PERMISSIONS: dict[str, list[str]] = {
    # viewer.view_study: may read studies (DICOMweb and the viewer); which studies
    # is narrowed in one place, viewer.selectors.study_queryset_for_user.
    # viewer.add_pacspull: may search the PACS and pull studies from it.
    # viewer.add_instance: may bring DICOM in (the upload page, STOW-RS).
    # inference.view_inferencejob: sees AI jobs and outputs of the studies they can read;
    # add_/change_inferencejob: may ask for, re-run and cancel jobs; view_shadow_output:
    # sees shadow models' outputs too (monitoring; never readers).
    # reviews.add_reading: may read the studies of the projects they are a reader of
    # (which ones: reviews.permissions); reviews.view_reading: sees everybody's readings;
    # reviews.view_all_studies: sees every study whatever the projects (viewer.selectors);
    # reviews.export_feedback: exports the labelled feedback; the project, membership,
    # worklist entry and assignment permissions run the projects (admin, API).
    Role.RADIOLOGIST: [
        "viewer.view_study",
        "viewer.add_pacspull",
        "viewer.add_instance",
        "inference.view_inferencejob",
        "inference.add_inferencejob",
        "inference.change_inferencejob",
        "reviews.add_reading",
    ],
    Role.ANNOTATOR: ["viewer.view_study", "inference.view_inferencejob", "reviews.add_reading"],
    Role.ADJUDICATOR: ["viewer.view_study", "inference.view_inferencejob"],
    Role.ADMIN: [
        "viewer.view_study",
        "viewer.add_pacspull",
        "viewer.add_instance",
        "auth.view_user",
        "auth.add_user",
        "auth.change_user",
        "auth.view_group",
        "auth.change_group",
        "authtoken.view_tokenproxy",
        "authtoken.add_tokenproxy",
        "authtoken.delete_tokenproxy",
        "inference.view_inferencejob",
        "inference.add_inferencejob",
        "inference.change_inferencejob",
        "inference.view_shadow_output",
        "inference.view_modelversion",
        "inference.add_modelversion",
        "inference.change_modelversion",
        "audit.view_auditevent",
        "audit.export_auditevent",
        "reviews.view_all_studies",
        "reviews.export_feedback",
        "reviews.view_readingproject",
        "reviews.add_readingproject",
        "reviews.change_readingproject",
        "reviews.view_projectmember",
        "reviews.add_projectmember",
        "reviews.change_projectmember",
        "reviews.delete_projectmember",
        "reviews.view_projectstudy",
        "reviews.add_projectstudy",
        "reviews.view_assignment",
        "reviews.add_assignment",
        "reviews.delete_assignment",
        "reviews.view_reading",
        "reviews.view_decision",
        "reviews.view_feedbackexport",
        "reviews.view_consensuscase",
        "reviews.view_referencestandard",
    ],
}


def _permissions(names: list[str]) -> list[Permission]:
    query = Q(pk__in=[])
    for name in names:
        app_label, codename = name.split(".", 1)
        query |= Q(content_type__app_label=app_label, codename=codename)
    found = list(Permission.objects.filter(query).select_related("content_type"))
    missing = set(names) - {f"{p.content_type.app_label}.{p.codename}" for p in found}
    if missing:
        raise LookupError(f"unknown permissions in ROLE_PERMISSIONS: {sorted(missing)}")
    return found


@transaction.atomic
def roles_sync() -> None:
    """Creates the role groups and gives each exactly the permissions of ROLE_PERMISSIONS."""
    for role, names in ROLE_PERMISSIONS.items():
        group, _ = Group.objects.get_or_create(name=role)
        group.permissions.set(_permissions(names))


def roles_sync_after_migrate(**kwargs: Any) -> None:
    roles_sync()


def user_roles(user: Any) -> set[str]:
    """The role names a user holds (empty for anonymous users).

    The groups are read once per user object and kept on it (prefetched), so the audit event
    the same request records (audit.services.recording) names them without asking again."""
    if not user.is_authenticated:
        return set()
    prefetch_related_objects([user], "groups")  # does nothing when they are already there
    return {g.name for g in user.groups.all() if g.name in Role.ALL}
