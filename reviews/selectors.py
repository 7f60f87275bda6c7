"""Reads of the reviews app (keyword-only, typed, named <entity>_<action>).

`study_scope` and `ai_scope` are the reviews app's say in who sees which study and whose AI
output: they are registered with viewer.selectors and inference.selectors at start-up
(ReviewsConfig.ready), so every page and API that reads a study or a job applies them.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field
from itertools import islice
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.db.models import Exists, OuterRef, Q, QuerySet

from inference.models import InferenceJob, ModelVersion
from reviews.models import (
    READER_ROLES,
    Assignment,
    Decision,
    MemberRole,
    ProjectMember,
    ProjectStudy,
    Reading,
    ReadingProject,
)
from viewer.models import Series, Study
from viewer.selectors import study_queryset_for_user

VIEW_ALL_STUDIES = ("reviews", "view_all_studies")
PAGE_SIZE = 50


def _holds_view_all(user: Any) -> Q:
    app_label, codename = VIEW_ALL_STUDIES
    permission = Permission.objects.filter(codename=codename, content_type__app_label=app_label)
    return Q(Exists(permission.filter(user=user.pk))) | Q(Exists(permission.filter(group__user=user.pk)))


def study_scope(*, user: Any) -> Q:
    """Condition on Study: admins (reviews.view_all_studies) see every study; everyone else
    the studies of the active projects they are members of (all studies for a project with
    `all_studies`). Evaluated inside the caller's query: no extra round trip."""
    memberships = ProjectMember.objects.filter(user=user.pk, project__active=True)
    in_project = ProjectStudy.objects.filter(
        study=OuterRef("pk"), project__active=True, project__memberships__user=user.pk
    )
    return (
        _holds_view_all(user)
        | Q(Exists(memberships.filter(project__all_studies=True)))
        | Q(Exists(in_project))
    )


def ai_scope(*, user: Any) -> Q:
    """Condition on InferenceJob: whose AI output the user may see. Hidden only from
    annotators, in projects that do not show annotators the AI; a study the user reaches
    through any project that shows it the AI shows it."""
    others = [role for role in MemberRole.values if role != MemberRole.ANNOTATOR]
    shows_ai = Q(role__in=others) | Q(project__show_ai_to_annotators=True)
    memberships = ProjectMember.objects.filter(shows_ai, user=user.pk, project__active=True)
    # Positive conditions only: in one filter() they bind to the same membership row.
    shows_ai_here = Q(project__memberships__role__in=others) | Q(project__show_ai_to_annotators=True)
    in_project = ProjectStudy.objects.filter(
        shows_ai_here,
        study=OuterRef("series__study_id"),
        project__active=True,
        project__memberships__user=user.pk,
    )
    return (
        _holds_view_all(user)
        | Q(Exists(memberships.filter(project__all_studies=True)))
        | Q(Exists(in_project))
    )


# Before the AI is revealed (an ai-first reading starts revealed, waiting for a result or not).
BLIND_PHASES = (Reading.Phase.UNAIDED, Reading.Phase.LOCKED)


def ai_blind_scope(*, user: Any) -> Q:
    """Condition on InferenceJob: no AI output of a study the user is reading blind (an
    unaided read not locked yet, or locked with no AI revealed): the AI reaches the reader
    through the reading's reveal only, whatever route they try."""
    blind = Reading.objects.filter(
        reader=user.pk, study=OuterRef("series__study_id"), phase__in=BLIND_PHASES
    )
    return ~Q(Exists(blind))


def reader_series_scope(*, user: Any) -> Q:
    """Condition on Series (viewer.selectors' series scope): a reader's SEG and SR are seen by
    that reader and by admins, never by other readers (a consensus read stays blind)."""
    own = Reading.objects.filter(pk=OuterRef("producer_id"), reader=user.pk)
    return ~Q(producer_kind=Series.Producer.READING) | _holds_view_all(user) | Q(Exists(own))


def revealable_job(*, user: Any, series: Any) -> InferenceJob | None:
    """The newest succeeded job of an active model on a reading's series that the reader may
    see once the reading reveals it (jobs_for_user hides it while the read is blind)."""
    return (
        InferenceJob.objects.filter(ai_scope(user=user))
        .filter(
            series=series,
            model_version__status=ModelVersion.Status.ACTIVE,
            status=InferenceJob.Status.SUCCEEDED,
        )
        .order_by("-created_at", "-pk")
        .first()
    )


# --- Projects ------------------------------------------------------------------------------
def projects_for_user(*, user: Any) -> QuerySet[ReadingProject]:
    """The active projects whose worklist the user sees: all for admins, else their own."""
    projects = ReadingProject.objects.filter(active=True)
    if user.is_superuser or user.has_perm("reviews.view_all_studies"):
        return projects
    return projects.filter(memberships__user=user)


def project_entry_for_reader(
    *, user: Any, study: Study, project_pk: int | None = None
) -> ProjectStudy | None:
    """The worklist entry through which `user` reads `study`: the given project's, else the
    oldest entry of a project in which the user is a reader (None when there is none; whether
    the user may read through it is reviews.permissions' question)."""
    entries = ProjectStudy.objects.select_related("project").filter(study=study)
    if project_pk is not None:
        return entries.filter(project_id=project_pk).first()
    mine = entries.filter(
        project__active=True, project__memberships__user=user, project__memberships__role__in=READER_ROLES
    )
    return mine.order_by("added_at", "pk").first()


def department_project_for_reader(*, user: Any, project_pk: int | None = None) -> ReadingProject | None:
    """The active `all_studies` project in which the user reads (the given one, else their
    oldest): any study may be read through it."""
    projects = ReadingProject.objects.filter(
        active=True, all_studies=True, memberships__user=user, memberships__role__in=READER_ROLES
    )
    if project_pk is not None:
        projects = projects.filter(pk=project_pk)
    return projects.order_by("pk").first()


# --- The worklist ---------------------------------------------------------------------------
STATUS_FILTERS = {
    "to_read": [ProjectStudy.Status.WAITING, ProjectStudy.Status.IN_PROGRESS],
    "waiting": [ProjectStudy.Status.WAITING],
    "in_progress": [ProjectStudy.Status.IN_PROGRESS],
    "read": [ProjectStudy.Status.READ],
    "all": [],
}
PRIORITY_FILTERS = {"urgent": "urgent", "priority": "priority", "routine": "routine", "none": ""}


@dataclass(frozen=True)
class WorklistFilter:
    status: str = "to_read"  # a key of STATUS_FILTERS
    priority: str = ""  # a key of PRIORITY_FILTERS, or "" for any
    modality: str = ""
    q: str = ""  # patient id or name, accession, description
    mine: bool = False  # assigned to me
    project: int | None = None

    def as_params(self) -> dict[str, str]:
        params = {
            "status": self.status if self.status != "to_read" else "",
            "priority": self.priority,
            "modality": self.modality,
            "q": self.q,
            "mine": "1" if self.mine else "",
            "project": str(self.project) if self.project else "",
        }
        return {key: value for key, value in params.items() if value}


@dataclass
class WorklistRow:
    entry: ProjectStudy
    assignees: list[str] = field(default_factory=list)
    job: InferenceJob | None = None
    ai_hidden: bool = False
    my_reading: Reading | None = None

    @property
    def study(self) -> Study:
        return self.entry.study

    @property
    def patient_name(self) -> str:
        """The DICOM name as people write it ("DOE^JANE" -> "DOE, JANE"), else the patient id."""
        patient = self.entry.study.patient
        alphabetic = patient.name.split("=", 1)[0]
        return ", ".join(part for part in alphabetic.split("^") if part) or patient.patient_id


@dataclass(frozen=True)
class WorklistPage:
    rows: list[WorklistRow]
    number: int
    has_next: bool

    @property
    def has_previous(self) -> bool:
        return self.number > 1

    @property
    def polling(self) -> bool:
        """Whether any AI job on the page is still queued or running."""
        return any(row.job is not None and not row.job.finished for row in self.rows)


WORKLIST_ORDER = ("triage_rank", "waiting_since", "pk")


def worklist_page(
    *, user: Any, worklist_filter: WorklistFilter, page: int = 1, size: int = PAGE_SIZE
) -> WorklistPage:
    """One page of the user's worklist: urgent first, then priority, then the rest, each by
    waiting time (oldest first). A constant number of queries whatever the page holds.

    Each project's rows are read in the order of the `worklist_order` index (project, triage
    rank, waiting time), so a page costs an index range scan, not a sort of the project's
    rows; a reader in several projects gets the projects' pages merged.
    """
    memberships = {
        m.project_id: m.role
        for m in ProjectMember.objects.filter(user=user.pk, project__active=True).only("project_id", "role")
    }
    page = max(page, 1)
    start, stop = (page - 1) * size, page * size + 1
    entries = _worklist_filtered(user=user, worklist_filter=worklist_filter)
    projects = _worklist_projects(user=user, memberships=memberships, only=worklist_filter.project)
    if projects is None:  # every active project (admins): one scan of the `worklist_order_all` index
        inactive = list(ReadingProject.objects.filter(active=False).values_list("pk", flat=True))
        keys = list(
            entries.exclude(project_id__in=inactive)
            .order_by(*WORKLIST_ORDER)
            .values_list("pk", flat=True)[start:stop]
        )
    elif len(projects) == 1:
        keys = list(
            entries.filter(project_id=projects[0])
            .order_by(*WORKLIST_ORDER)
            .values_list("pk", flat=True)[start:stop]
        )
    else:
        per_project = [
            entries.filter(project_id=project).order_by(*WORKLIST_ORDER).values_list(*WORKLIST_ORDER)[:stop]
            for project in projects
        ]
        keys = [key[-1] for key in islice(heapq.merge(*per_project), start, stop)]
    found = ProjectStudy.objects.select_related("study__patient").in_bulk(keys)
    # Each project once, not once per row (every copy would decode its override reasons).
    project_rows = ReadingProject.objects.in_bulk({entry.project_id for entry in found.values()})
    for entry in found.values():
        entry.project = project_rows[entry.project_id]
    rows = [WorklistRow(entry=found[key]) for key in keys[:size]]
    _attach_details(rows, user=user, memberships=memberships)
    return WorklistPage(rows=rows, number=page, has_next=len(keys) > size)


def _worklist_projects(*, user: Any, memberships: dict[int, str], only: int | None) -> list[int] | None:
    """The active projects whose rows the user sees; None for all of them (admins)."""
    if user.is_superuser or user.has_perm("reviews.view_all_studies"):
        if only is None:
            return None
        return list(ReadingProject.objects.filter(pk=only, active=True).values_list("pk", flat=True))
    return sorted(pk for pk in memberships if only is None or pk == only)


def _worklist_filtered(*, user: Any, worklist_filter: WorklistFilter) -> QuerySet[ProjectStudy]:
    entries = ProjectStudy.objects.all()
    f = worklist_filter
    statuses = STATUS_FILTERS.get(f.status, STATUS_FILTERS["to_read"])
    if len(statuses) == 1:
        entries = entries.filter(reading_status=statuses[0])
    elif statuses:
        entries = entries.filter(reading_status__in=statuses)
    if f.priority in PRIORITY_FILTERS:
        triage = ProjectStudy.Triage(PRIORITY_FILTERS[f.priority])
        # The rank narrows the index range; the triage picks within it.
        entries = entries.filter(triage_rank=ProjectStudy.TRIAGE_RANK[triage], ai_triage=triage)
    if f.modality:
        entries = entries.filter(study__modalities__contains=f.modality.upper())
    if f.q:
        entries = _searched(entries, f.q.strip())
    if f.mine:
        # The reader's assigned studies as a set to probe, then the exact (project, study) pair.
        assigned = Assignment.objects.filter(reader=user.pk)
        exact = assigned.filter(project=OuterRef("project_id"), study=OuterRef("study_id"))
        entries = entries.filter(study_id__in=assigned.values("study_id")).filter(Exists(exact))
    return entries


SEARCH_SET_LIMIT = 2000


def _searched(entries: QuerySet[ProjectStudy], text: str) -> QuerySet[ProjectStudy]:
    """Rows whose patient id or name, accession or description contains `text`. The matching
    studies are found first, in one pass over studies and patients; when they are few, the
    worklist probes them by study (no scan of the project's rows), else the project's rows are
    scanned in order and matched as they come (common words match early)."""
    matching = Q(patient__patient_id__icontains=text) | Q(patient__name__icontains=text)
    matching |= Q(accession_number__icontains=text) | Q(description__icontains=text)
    found = list(Study.objects.filter(matching).values_list("pk", flat=True)[: SEARCH_SET_LIMIT + 1])
    if len(found) <= SEARCH_SET_LIMIT:
        return entries.filter(study_id__in=found)
    return entries.filter(
        Q(study__patient__patient_id__icontains=text)
        | Q(study__patient__name__icontains=text)
        | Q(study__accession_number__icontains=text)
        | Q(study__description__icontains=text)
    )


def _attach_details(rows: list[WorklistRow], *, user: Any, memberships: dict[int, str]) -> None:
    """Assignees, the AI job and the user's own reading of each row: three queries in all."""
    if not rows:
        return
    study_pks = {row.entry.study_id for row in rows}
    project_pks = {row.entry.project_id for row in rows}
    assignees: dict[tuple[int, int], list[str]] = {}
    reader_name = f"reader__{get_user_model().USERNAME_FIELD}"
    for project_pk, study_pk, name in (
        Assignment.objects.filter(study_id__in=study_pks, project_id__in=project_pks)
        .order_by("created_at", "pk")
        .values_list("project_id", "study_id", reader_name)
    ):
        assignees.setdefault((project_pk, study_pk), []).append(name)
    jobs = _ai_jobs(study_pks)
    readings = {
        (r.project_id, r.study_id): r
        for r in Reading.objects.filter(reader=user.pk, study_id__in=study_pks, project_id__in=project_pks)
    }
    for row in rows:
        key = (row.entry.project_id, row.entry.study_id)
        row.assignees = assignees.get(key, [])
        row.ai_hidden = (
            memberships.get(row.entry.project_id) == MemberRole.ANNOTATOR
            and not row.entry.project.show_ai_to_annotators
        )
        row.job = None if row.ai_hidden else jobs.get(row.entry.study_id)
        row.my_reading = readings.get(key)


def _ai_jobs(study_pks: set[int]) -> dict[int, InferenceJob]:
    """The job a reader sees on each study (inference.selectors.job_for_study's rule, for many
    studies in one query): the newest of an active model, unless it failed or was cancelled
    and an older one succeeded."""
    jobs = (
        InferenceJob.objects.filter(
            series__study_id__in=study_pks, model_version__status=ModelVersion.Status.ACTIVE
        )
        .select_related("series")
        .only("pk", "status", "progress", "stage", "triage", "study_score", "series__study_id", "created_at")
        .order_by("-created_at", "-pk")
    )
    chosen: dict[int, InferenceJob] = {}
    for job in jobs:
        study_pk = job.series.study_id
        current = chosen.get(study_pk)
        if current is None or (
            current.status in (InferenceJob.Status.FAILED, InferenceJob.Status.CANCELLED)
            and (job.status == InferenceJob.Status.SUCCEEDED)
        ):
            chosen[study_pk] = job
    return chosen


def study_ai_triage(*, study_pk: int) -> str:
    """The triage of the study's newest succeeded job of an active model ("" when none)."""
    triage = (
        InferenceJob.objects.filter(
            series__study_id=study_pk,
            model_version__status=ModelVersion.Status.ACTIVE,
            status=InferenceJob.Status.SUCCEEDED,
        )
        .order_by("-created_at", "-pk")
        .values_list("triage", flat=True)
        .first()
    )
    return triage or ""


# --- Readings and decisions ------------------------------------------------------------------
def readings_for_user(*, user: Any) -> QuerySet[Reading]:
    """The readings a user may see: their own; everybody's with reviews.view_reading (admins).
    Only on studies the user may see."""
    readings = Reading.objects.select_related(
        "project", "study__patient", "series", "revealed_job__model_version"
    )
    if not (user.is_superuser or user.has_perm("reviews.view_reading")):
        readings = readings.filter(reader=user.pk)
    visible = study_queryset_for_user(user=user).filter(pk=OuterRef("study_id"))
    return readings.filter(Exists(visible))


def decisions_current(*, reading: Reading) -> QuerySet[Decision]:
    """The reading's current decisions (one per finding: the ones nothing supersedes)."""
    return Decision.objects.filter(reading=reading, superseded_by__isnull=True).order_by("target", "pk")


def decisions_history(*, reading: Reading) -> QuerySet[Decision]:
    return Decision.objects.filter(reading=reading).order_by("pk")
