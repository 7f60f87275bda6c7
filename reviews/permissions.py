"""Who may do what to which object, as `rules` predicates (django-rules).

Two layers. The role layer is Django's model permissions held by the role groups
(reviews.roles.ROLE_PERMISSIONS): `reviews.add_reading` lets a role read at all,
`reviews.view_reading` lets it see everybody's readings, `reviews.export_feedback` lets it
export. The object layer is here: the names below are asked with an object,
`user.has_perm("reviews.write_reading", reading)`, and answered by rules'
ObjectPermissionBackend. Their names differ from the model permissions on purpose: Django's
ModelBackend answers only without an object, rules only with one.

Which studies a user sees at all is decided elsewhere, once (viewer.selectors with the scope
reviews.selectors.study_scope); these rules decide what they may do with what they see.

Consensus projects: only a case's assigned readers read it; its cases, the reads side by side,
the fused masks and the reference standard are for the project's adjudicators and admins,
never for its readers (docs/consensus.md, "Blinding").
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import rules

from reviews.models import (
    READER_ROLES,
    Assignment,
    MemberRole,
    ProjectMember,
    ProjectStudy,
    Reading,
    ReadingProject,
)

READ_STUDY = "reviews.read_study"  # (ProjectStudy) open a reading of it
SEE_READING = "reviews.see_reading"  # (Reading)
WRITE_READING = "reviews.write_reading"  # (Reading) heartbeat, lock, decide, submit
SEE_AI = "reviews.see_ai"  # (ReadingProject) see the AI's output while reading in it
SEE_CONSENSUS = "reviews.see_consensus"  # (ReadingProject) dashboard, cases, every read, fused masks
ADJUDICATE = "reviews.adjudicate"  # (ReadingProject) record a case's reference standard
EXPORT_FEEDBACK = "reviews.export_feedback"  # model permission (no object)
ASSIGN = "reviews.add_assignment"  # model permission (no object)


def _has(name: str) -> Any:
    @rules.predicate(name=f"has {name}")
    def has(user: Any) -> bool:
        return bool(user.has_perm(name))

    return has


@dataclass(frozen=True)
class Membership:
    role: str
    active: bool  # the project's
    all_studies: bool  # the project's


_MEMBERSHIPS = "_reviews_memberships"  # where a user object keeps them


def memberships(user: Any) -> dict[int, Membership]:
    """The user's project memberships by project id. Loaded once for the user object (a
    request's user: one query however many projects the rules and scopes ask about)."""
    loaded: dict[int, Membership] | None = user.__dict__.get(_MEMBERSHIPS)
    if loaded is None:
        rows = ProjectMember.objects.filter(user=user.pk).values_list(
            "project_id", "role", "project__active", "project__all_studies"
        )
        loaded = user.__dict__[_MEMBERSHIPS] = {
            pk: Membership(role, active, all_studies) for pk, role, active, all_studies in rows
        }
    return loaded


def memberships_loaded(user: Any) -> dict[int, Membership] | None:
    """The user's memberships when something in this request loaded them, else None."""
    return user.__dict__.get(_MEMBERSHIPS)


def member_role(user: Any, project: ReadingProject) -> str | None:
    """The user's role in the project, or None when they are not a member."""
    if not getattr(user, "is_authenticated", False):
        return None
    membership = memberships(user).get(project.pk)
    return membership.role if membership is not None else None


def ai_hidden_from(role: str | None, project: ReadingProject) -> bool:
    return role == MemberRole.ANNOTATOR and not project.show_ai_to_annotators


@rules.predicate
def reads_the_project(user: Any, entry: ProjectStudy | None) -> bool:
    if entry is None:
        return False
    return entry.project.active and member_role(user, entry.project) in READER_ROLES


@rules.predicate
def assigned_if_consensus(user: Any, entry: ProjectStudy | None) -> bool:
    """In a consensus project only the case's assigned readers read it (blinding and N reads)."""
    if entry is None:
        return False
    if not entry.project.is_consensus:
        return True
    return Assignment.objects.filter(project=entry.project, study=entry.study_id, reader=user.pk).exists()


@rules.predicate
def adjudicates_the_project(user: Any, project: ReadingProject | None) -> bool:
    return project is not None and project.active and member_role(user, project) == MemberRole.ADJUDICATOR


@rules.predicate
def is_consensus(user: Any, project: ReadingProject | None) -> bool:
    return project is not None and project.is_consensus


@rules.predicate
def owns_the_reading(user: Any, reading: Reading | None) -> bool:
    return reading is not None and reading.reader_id == user.pk


@rules.predicate
def reads_its_project(user: Any, reading: Reading | None) -> bool:
    if reading is None:
        return False
    return reading.project.active and member_role(user, reading.project) in READER_ROLES


@rules.predicate
def sees_the_ai(user: Any, project: ReadingProject | None) -> bool:
    return project is not None and not ai_hidden_from(member_role(user, project), project)


may_read = _has("reviews.add_reading")
sees_every_reading = _has("reviews.view_reading")  # the admin role
rules.add_perm(READ_STUDY, may_read & reads_the_project & assigned_if_consensus)
rules.add_perm(SEE_READING, owns_the_reading | _has("reviews.view_reading"))
rules.add_perm(WRITE_READING, may_read & owns_the_reading & reads_its_project)
rules.add_perm(SEE_AI, sees_the_ai)
# Readers never: they stay blind to each other's reads, before adjudication and after.
rules.add_perm(SEE_CONSENSUS, is_consensus & (sees_every_reading | adjudicates_the_project))
rules.add_perm(ADJUDICATE, is_consensus & (sees_every_reading | adjudicates_the_project))
