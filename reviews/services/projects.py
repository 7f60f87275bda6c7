"""Studies joining projects, assignment (manual and round-robin), and keeping the worklist's
triage order and reading status current."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import F

from audit.codes import Action, EventID
from audit.services import audit_record
from inference.models import InferenceJob, ModelVersion
from reviews.errors import Invalid
from reviews.models import READER_ROLES, Assignment, ProjectMember, ProjectStudy, Reading, ReadingProject
from reviews.selectors import department_project_for_reader, project_entry_for_reader
from reviews.services.consensus.assignment import consensus_assign
from reviews.services.consensus.cases import consensus_cases_open
from viewer.models import Study


def project_studies_add(
    *, project: ReadingProject, studies: Iterable[Study], user: Any = None, assign: bool = True
) -> list[ProjectStudy]:
    """Adds the studies to the project (those already in it are left as they are); with
    `assign`, each new one goes to the next reader, round-robin (in a consensus project: a case
    each, to `reads_per_case` readers, reviews.services.consensus). Returns the new entries."""
    wanted = {study.pk: study for study in studies}
    with transaction.atomic():
        present = set(
            ProjectStudy.objects.filter(project=project, study_id__in=wanted).values_list(
                "study_id", flat=True
            )
        )
        new = [study for pk, study in wanted.items() if pk not in present]
        triage = _triage_by_study([study.pk for study in new])
        entries = ProjectStudy.objects.bulk_create(
            [
                ProjectStudy(
                    project=project,
                    study=study,
                    added_by=user if getattr(user, "is_authenticated", False) else None,
                    waiting_since=study.created_at,
                    ai_triage=triage.get(study.pk, ""),
                    triage_rank=ProjectStudy.TRIAGE_RANK[ProjectStudy.Triage(triage.get(study.pk, ""))],
                )
                for study in new
            ]
        )
        if project.is_consensus:
            consensus_cases_open(entries=entries)
            if assign:
                consensus_assign(project=project, studies=new)
        elif assign:
            for study in new:
                assignment_round_robin(project=project, study=study)
        if new:
            _audit(
                user,
                "studies added to a reading project",
                {"project": project.pk, "studies": len(new), "assigned": assign},
            )
    return entries


def assignment_round_robin(*, project: ReadingProject, study: Study) -> Assignment | None:
    """Assigns the study to the project's reader whose turn is oldest (None when the project
    has no active reader). Serialised on the project row."""
    with transaction.atomic():
        ReadingProject.objects.select_for_update().filter(pk=project.pk).update(turn=F("turn") + 1)
        turn = ReadingProject.objects.values_list("turn", flat=True).get(pk=project.pk)
        member = (
            ProjectMember.objects.filter(project=project, role__in=READER_ROLES, user__is_active=True)
            .order_by("last_turn", "pk")
            .first()
        )
        if member is None:
            return None
        ProjectMember.objects.filter(pk=member.pk).update(last_turn=turn)
        assignment, _ = Assignment.objects.get_or_create(
            project=project, study=study, reader_id=member.user_id
        )
    return assignment


def not_a_reader(*, project: ReadingProject, reader: Any) -> str | None:
    """Why `reader` may not be assigned the project's studies, or None when they read in it."""
    if ProjectMember.objects.filter(project=project, user=reader, role__in=READER_ROLES).exists():
        return None
    return f"{reader} is not a reader (radiologist or annotator) of {project}"


def assignment_create(*, project: ReadingProject, study: Study, reader: Any, user: Any = None) -> Assignment:
    """An admin assigns a study to a reader of the project (the study joins the project first
    if it is not in it). Assigning twice returns the existing assignment."""
    problem = not_a_reader(project=project, reader=reader)
    if problem is not None:
        raise Invalid(problem, field="reader")
    with transaction.atomic():
        project_studies_add(project=project, studies=[study], user=user, assign=False)
        try:
            with transaction.atomic():
                assignment = Assignment.objects.create(
                    project=project,
                    study=study,
                    reader=reader,
                    assigned_by=user if getattr(user, "is_authenticated", False) else None,
                )
        except IntegrityError:
            return Assignment.objects.get(project=project, study=study, reader=reader)
        _audit(
            user,
            "study assigned",
            {"project": project.pk, "reader": reader.get_username()},
            study=study,
        )
    return assignment


def reading_entry(*, user: Any, study: Study, project_pk: int | None = None) -> ProjectStudy | None:
    """The worklist entry through which `user` reads `study` (reviews.selectors), or, when the
    study is in none of their projects but they read in an active project with `all_studies`
    (the given one, else their oldest), the study joins that project and that is the entry.
    Whether the user may read through it is reviews.permissions' question."""
    entry = project_entry_for_reader(user=user, study=study, project_pk=project_pk)
    if entry is not None:
        return entry
    project = department_project_for_reader(user=user, project_pk=project_pk)
    if project is None:
        return None
    project_studies_add(project=project, studies=[study], user=user, assign=False)
    return ProjectStudy.objects.select_related("project").get(project=project, study=study)


def study_arrived(*, study_uid: str) -> None:
    """A new image arrived: its study joins every active project that enrols new studies
    automatically (once), and is assigned round-robin there."""
    projects = list(ReadingProject.objects.filter(active=True, auto_enrol=True))
    if not projects:
        return
    study = Study.objects.filter(study_uid=study_uid).first()
    if study is None:
        return
    enrolled = set(ProjectStudy.objects.filter(study=study).values_list("project_id", flat=True))
    for project in projects:
        if project.pk not in enrolled:
            try:
                project_studies_add(project=project, studies=[study])
            except IntegrityError:  # a concurrent ingest of the same study got there first
                continue


def project_triage_refresh(*, study_pk: int) -> None:
    """Copies the study's current AI triage onto its worklist entries (after a job finished)."""
    triage = _triage_by_study([study_pk]).get(study_pk, "")
    ProjectStudy.objects.filter(study_id=study_pk).exclude(ai_triage=triage).update(
        ai_triage=triage, triage_rank=ProjectStudy.TRIAGE_RANK[ProjectStudy.Triage(triage)]
    )


def project_status_refresh(*, project_pk: int, study_pk: int) -> None:
    """The entry's reading status from its readings: in progress while any is open, read once
    all are submitted, waiting before any starts."""
    phases = set(
        Reading.objects.filter(project_id=project_pk, study_id=study_pk).values_list("phase", flat=True)
    )
    if not phases:
        status = ProjectStudy.Status.WAITING
    elif phases == {Reading.Phase.SUBMITTED}:
        status = ProjectStudy.Status.READ
    else:
        status = ProjectStudy.Status.IN_PROGRESS
    ProjectStudy.objects.filter(project_id=project_pk, study_id=study_pk).update(reading_status=status)


def _triage_by_study(study_pks: list[int]) -> dict[int, str]:
    """Each study's triage from its newest succeeded job of an active model (one query)."""
    if not study_pks:
        return {}
    rows = (
        InferenceJob.objects.filter(
            series__study_id__in=study_pks,
            model_version__status=ModelVersion.Status.ACTIVE,
            status=InferenceJob.Status.SUCCEEDED,
        )
        .order_by("series__study_id", "-created_at", "-pk")
        .values_list("series__study_id", "triage")
    )
    triage: dict[int, str] = {}
    for study_pk, value in rows:
        triage.setdefault(study_pk, value or "")
    return triage


def _audit(user: Any, what: str, detail: dict[str, Any], *, study: Study | None = None) -> None:
    audit_record(
        event=EventID.PROCEDURE_RECORD,
        action=Action.UPDATE if study is not None else Action.CREATE,
        user=user if getattr(user, "is_authenticated", False) else None,
        username="" if getattr(user, "is_authenticated", False) else "os:reviews",
        patient_id=study.patient.patient_id if study is not None else "",
        accession=study.accession_number if study is not None else "",
        study_uid=study.study_uid if study is not None else "",
        detail={"what": what, **detail},
    )
