"""Who reads which case of a consensus project: each case gets `reads_per_case` distinct
readers, the least loaded first, and a reader who leaves hands their unfinished cases on.

Load is counted in the project: a reader's open assignments (no submitted reading yet), then
all their assignments, then the user id break ties. Assignment is serialised on the project
row, as round-robin is, so two batches added at once still balance.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import Any

from django.db import transaction
from django.db.models import Exists, OuterRef
from django.db.models.signals import post_delete
from django.dispatch import receiver

from audit.codes import Action, EventID
from audit.services import audit_record
from reviews.models import READER_ROLES, Assignment, ProjectMember, Reading, ReadingProject
from viewer.models import Study


def consensus_assign(
    *, project: ReadingProject, studies: Iterable[Study], exclude: Iterable[int] = ()
) -> list[Assignment]:
    """Gives each study as many more readers as it lacks (reads_per_case less the readers it
    has), never one already on it nor a user in `exclude`: the active readers with the fewest
    open assignments in the project, then the fewest in all, then the lowest user id. A case
    gets fewer readers only when the project has too few. Returns the new assignments."""
    studies = list(studies)
    if not studies:
        return []
    with transaction.atomic():
        ReadingProject.objects.select_for_update().filter(pk=project.pk).first()
        readers = set(
            ProjectMember.objects.filter(
                project=project, role__in=READER_ROLES, user__is_active=True
            ).values_list("user_id", flat=True)
        ) - set(exclude)
        open_load, total_load = _loads(project)
        on_case: dict[int, set[int]] = {}
        for study_pk, reader_pk in Assignment.objects.filter(
            project=project, study_id__in=[s.pk for s in studies]
        ).values_list("study_id", "reader_id"):
            on_case.setdefault(study_pk, set()).add(reader_pk)
        created: list[Assignment] = []
        for study in studies:
            taken = on_case.setdefault(study.pk, set())
            wanted = max(project.reads_per_case - len(taken), 0)
            chosen = sorted(readers - taken, key=lambda pk: (open_load[pk], total_load[pk], pk))[:wanted]
            for reader_pk in chosen:
                created.append(Assignment.objects.create(project=project, study=study, reader_id=reader_pk))
                taken.add(reader_pk)
                open_load[reader_pk] += 1
                total_load[reader_pk] += 1
    return created


def _loads(project: ReadingProject) -> tuple[Counter[int], Counter[int]]:
    """Each reader's open and total assignments in the project (one query)."""
    submitted = Reading.objects.filter(
        project=project,
        study=OuterRef("study_id"),
        reader=OuterRef("reader_id"),
        phase=Reading.Phase.SUBMITTED,
    )
    open_load: Counter[int] = Counter()
    total_load: Counter[int] = Counter()
    rows = Assignment.objects.filter(project=project).annotate(done=Exists(submitted))
    for reader_pk, done in rows.values_list("reader_id", "done"):
        total_load[reader_pk] += 1
        if not done:
            open_load[reader_pk] += 1
    return open_load, total_load


def consensus_reassign(*, project: ReadingProject, user: Any, by: Any = None) -> list[Assignment]:
    """A reader left the project (or the service): each of their cases they had not submitted
    goes to another reader not already on it; their assignment there is removed (a reading they
    had started stays, unsubmitted, and never counts). Returns the new assignments."""
    if not project.is_consensus:
        return []
    with transaction.atomic():
        ReadingProject.objects.select_for_update().filter(pk=project.pk).first()
        done = Reading.objects.filter(project=project, reader=user.pk, phase=Reading.Phase.SUBMITTED)
        leaving = Assignment.objects.filter(project=project, reader=user.pk).exclude(
            study_id__in=done.values("study_id")
        )
        studies = list(Study.objects.filter(pk__in=leaving.values("study_id")).order_by("pk"))
        if not studies:
            return []
        leaving.delete()
        created = consensus_assign(project=project, studies=studies, exclude=[user.pk])
        audit_record(
            event=EventID.PROCEDURE_RECORD,
            action=Action.UPDATE,
            user=by if getattr(by, "is_authenticated", False) else None,
            username="" if getattr(by, "is_authenticated", False) else "os:reviews",
            detail={
                "what": "cases reassigned from a reader who left",
                "project": project.pk,
                "reader": user.get_username(),
                "cases": len(studies),
                "reassigned": len(created),
            },
        )
    return created


def consensus_reassign_inactive(*, project: ReadingProject, by: Any = None) -> int:
    """Reassigns the unfinished cases of the project's readers whose accounts are deactivated;
    returns how many cases found a new reader."""
    members = ProjectMember.objects.filter(
        project=project, role__in=READER_ROLES, user__is_active=False
    ).select_related("user")
    return sum(len(consensus_reassign(project=project, user=m.user, by=by)) for m in members)


@receiver(post_delete, sender=ProjectMember, dispatch_uid="reviews.consensus_member_left")
def _member_left(sender: Any, instance: ProjectMember, origin: Any = None, **_: Any) -> None:
    """A reader removed from a consensus project hands on their unfinished cases. Only when the
    membership itself was deleted: not when a project or user deletion took it along."""
    if isinstance(origin, ProjectMember) or getattr(origin, "model", None) is ProjectMember:
        project = ReadingProject.objects.filter(pk=instance.project_id).first()
        if project is not None and project.is_consensus and instance.role in READER_ROLES:
            consensus_reassign(project=project, user=instance.user)
