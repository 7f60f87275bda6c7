"""Reads of the reviews app (keyword-only, typed, named <entity>_<action>).

`study_scope` and `ai_scope` are the reviews app's say in who sees which study and whose AI
output: they are registered with viewer.selectors and inference.selectors at start-up
(ReviewsConfig.ready), so every page and API that reads a study or a job applies them.
"""

from __future__ import annotations

import datetime as dt
import heapq
import math
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from itertools import islice
from typing import Any

from django.contrib.auth import get_user_model
from django.db.models import Exists, F, OuterRef, Q, QuerySet
from django.utils import timezone

from config.inputs import id_param
from inference.models import InferenceJob, ModelVersion
from reviews.models import (
    READER_ROLES,
    Assignment,
    ConsensusCase,
    Decision,
    MemberRole,
    ProjectMember,
    ProjectStudy,
    Reading,
    ReadingProject,
    ReferenceStandard,
)
from reviews.permissions import memberships, memberships_loaded
from viewer.links import study_viewer_path_maker
from viewer.models import Series, Study
from viewer.selectors import ALWAYS, NEVER, permission_condition, study_queryset_for_user

VIEW_ALL_STUDIES = "reviews.view_all_studies"
PAGE_SIZE = 50
MAX_PAGE = 100_000  # 5 million rows in: past any worklist, and far from the database's limits


def study_scope(*, user: Any) -> Q:
    """Condition on Study: admins (reviews.view_all_studies) see every study; everyone else
    the studies of the active projects they are members of (all studies for a project with
    `all_studies`). Evaluated inside the caller's query: no extra round trip. When this request
    has loaded the user's memberships (reviews.permissions.memberships), they are answered in
    Python and the query keeps one EXISTS over the project's studies, without joins."""
    loaded = memberships_loaded(user)
    if loaded is not None:
        active = [pk for pk, membership in loaded.items() if membership.active]
        if any(loaded[pk].all_studies for pk in active):
            as_member = ALWAYS
        elif active:
            as_member = Q(Exists(ProjectStudy.objects.filter(study=OuterRef("pk"), project_id__in=active)))
        else:
            as_member = NEVER
        return permission_condition(user, VIEW_ALL_STUDIES) | as_member
    memberships = ProjectMember.objects.filter(user=user.pk, project__active=True)
    in_project = ProjectStudy.objects.filter(
        study=OuterRef("pk"), project__active=True, project__memberships__user=user.pk
    )
    return (
        permission_condition(user, VIEW_ALL_STUDIES)
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
        permission_condition(user, VIEW_ALL_STUDIES)
        | Q(Exists(memberships.filter(project__all_studies=True)))
        | Q(Exists(in_project))
    )


# Before the AI is revealed (an ai-first reading starts revealed, waiting for a result or not).
BLIND_PHASES = (Reading.Phase.UNAIDED, Reading.Phase.LOCKED)


def ai_blind_scope(*, user: Any) -> Q:
    """Condition on InferenceJob: no AI output of a study the user is reading blind (an
    unaided read not locked yet, or locked with no AI revealed) or is to read blind (it waits
    in an unaided-first project they read in, and they have not opened it there): the AI
    reaches the reader through the reading's reveal only, whatever route they try. A study
    whose AI one of the user's readings has revealed (they read it in two projects) is no
    longer blind to them."""
    theirs = Reading.objects.filter(reader=user.pk, study=OuterRef("series__study_id"))
    blind = theirs.filter(phase__in=BLIND_PHASES)
    revealed = theirs.filter(revealed_job__isnull=False)
    opened = Reading.objects.filter(
        reader=user.pk, project=OuterRef("project_id"), study=OuterRef("study_id")
    )
    to_read_blind = ProjectStudy.objects.filter(
        study=OuterRef("series__study_id"),
        project__active=True,
        project__reading_mode=ReadingProject.Mode.UNAIDED_FIRST,
        project__memberships__user=user.pk,
        project__memberships__role__in=READER_ROLES,
    ).exclude(Exists(opened))
    return ~(Q(Exists(blind)) | Q(Exists(to_read_blind))) | Q(Exists(revealed))


def project_named(text: str, path: str = "project") -> Q:
    """Q for the project (reached through `path`; "" for ReadingProject itself) whose name is
    `text`, or whose id it is."""
    prefix = f"{path}__" if path else ""
    pk = id_param(text)
    by_id = Q(**{f"{prefix}pk": pk}) if pk is not None else Q(pk__in=[])
    return by_id | Q(**{f"{prefix}name": text})


def unaided_elsewhere(*, reader: Any, study_pk: int, excluding: int | None = None) -> Reading | None:
    """The reader's reading of the study, in another project, whose unaided read is still open.
    While there is one, no reading of that study reveals the AI to them: the open read would
    no longer be unaided."""
    readings = Reading.objects.filter(reader=reader.pk, study_id=study_pk, phase=Reading.Phase.UNAIDED)
    if excluding is not None:
        readings = readings.exclude(pk=excluding)
    return readings.select_related("project").order_by("pk").first()


def reader_series_scope(*, user: Any) -> Q:
    """Condition on Series (viewer.selectors' series scope): a reader's SEG and SR are seen by
    that reader and by admins, never by other readers (a consensus read stays blind)."""
    own = Reading.objects.filter(pk=OuterRef("producer_id"), reader=user.pk)
    admins = permission_condition(user, VIEW_ALL_STUDIES)
    return ~Q(producer_kind=Series.Producer.READING) | admins | Q(Exists(own))


def revealable_job(*, user: Any, series: Any, reading: int | None = None) -> InferenceJob | None:
    """The newest succeeded job of an active model on a reading's series that the reader may
    see once the reading (its pk: `reading`, none before it exists) reveals it
    (jobs_for_user hides it while the read is blind); none while the reader's unaided read of
    the study is open in another project (unaided_elsewhere)."""
    if unaided_elsewhere(reader=user, study_pk=series.study_id, excluding=reading) is not None:
        return None
    return newest_result(user=user, series=series)


def newest_result(*, user: Any, series: Any) -> InferenceJob | None:
    """The newest succeeded job of an active model on the series whose output the user may see
    (ai_scope); revealable_job, less the check for an open unaided read elsewhere."""
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
    viewer_url: str = ""  # the study in the viewer, in this project

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
# Where the AI is hidden from the user, its triage is too: neither the order nor a filter uses it.
BLIND_ORDER = ("waiting_since", "pk")
BLIND_RANK = ProjectStudy.TRIAGE_RANK[ProjectStudy.Triage.NONE]


def worklist_page(
    *, user: Any, worklist_filter: WorklistFilter, page: int = 1, size: int = PAGE_SIZE
) -> WorklistPage:
    """One page of the user's worklist: urgent first, then priority, then the rest, each by
    waiting time (oldest first). A constant number of queries whatever the page holds.

    Each project's rows are read in the order of the `worklist_order` index (project, triage
    rank, waiting time), so a page costs an index range scan, not a sort of the project's
    rows; a reader in several projects gets the projects' pages merged.
    """
    rows_of_member = ProjectMember.objects.filter(user=user.pk, project__active=True).values_list(
        "project_id", "role", "project__triage_in_worklist", "project__show_ai_to_annotators"
    )
    memberships: dict[int, str] = {}
    hiding_ai: set[int] = set()
    for project_pk, role, triage_shown, shown_to_annotators in rows_of_member:
        memberships[project_pk] = role
        if _hides_ai(role, triage_shown=triage_shown, shown_to_annotators=shown_to_annotators):
            hiding_ai.add(project_pk)
    page = max(page, 1)
    start, stop = (page - 1) * size, page * size + 1
    entries = _worklist_filtered(user=user, worklist_filter=worklist_filter, hiding_ai=hiding_ai)
    projects = _worklist_projects(user=user, memberships=memberships, only=worklist_filter.project)
    if projects is None:  # every active project (admins): one scan of the `worklist_order_all` index
        inactive = list(ReadingProject.objects.filter(active=False).values_list("pk", flat=True))
        keys = list(
            entries.exclude(project_id__in=inactive)
            .order_by(*WORKLIST_ORDER)
            .values_list("pk", flat=True)[start:stop]
        )
    elif len(projects) == 1:
        order = BLIND_ORDER if projects[0] in hiding_ai else WORKLIST_ORDER
        keys = list(
            entries.filter(project_id=projects[0]).order_by(*order).values_list("pk", flat=True)[start:stop]
        )
    else:
        per_project: list[Iterable[tuple[Any, ...]]] = []
        for project in projects:
            rows_of = entries.filter(project_id=project)
            if project in hiding_ai:  # ranked as if the AI had said nothing
                blind = rows_of.order_by(*BLIND_ORDER).values_list(*BLIND_ORDER)[:stop]
                per_project.append((BLIND_RANK, *key) for key in blind)
            else:
                per_project.append(rows_of.order_by(*WORKLIST_ORDER).values_list(*WORKLIST_ORDER)[:stop])
        keys = [key[-1] for key in islice(heapq.merge(*per_project), start, stop)]
    found = ProjectStudy.objects.select_related("study__patient").in_bulk(keys)
    # Each project once, not once per row (every copy would decode its override reasons).
    project_rows = ReadingProject.objects.in_bulk({entry.project_id for entry in found.values()})
    for entry in found.values():
        entry.project = project_rows[entry.project_id]
    viewer_path = study_viewer_path_maker()
    shown = [found[key] for key in keys[:size]]
    rows = [
        WorklistRow(entry=e, viewer_url=f"{viewer_path(e.study.study_uid)}?project={e.project_id}")
        for e in shown
    ]
    _attach_details(rows, user=user, memberships=memberships, hiding_ai=hiding_ai)
    return WorklistPage(rows=rows, number=page, has_next=len(keys) > size)


def _worklist_projects(*, user: Any, memberships: dict[int, str], only: int | None) -> list[int] | None:
    """The active projects whose rows the user sees; None for all of them (admins)."""
    if user.is_superuser or user.has_perm("reviews.view_all_studies"):
        if only is None:
            return None
        return list(ReadingProject.objects.filter(pk=only, active=True).values_list("pk", flat=True))
    return sorted(pk for pk in memberships if only is None or pk == only)


def _hides_ai(role: str, *, triage_shown: bool, shown_to_annotators: bool) -> bool:
    """Whether the worklist keeps a project's AI results from a member: from its readers when
    the project keeps the AI's triage out of their worklist, from its annotators when it keeps
    the AI from them."""
    if role not in READER_ROLES:
        return False
    return not triage_shown or (role == MemberRole.ANNOTATOR and not shown_to_annotators)


def _worklist_filtered(
    *, user: Any, worklist_filter: WorklistFilter, hiding_ai: set[int]
) -> QuerySet[ProjectStudy]:
    entries = ProjectStudy.objects.all()
    f = worklist_filter
    blind = _consensus_projects_read_blind(user=user)
    statuses = STATUS_FILTERS.get(f.status, STATUS_FILTERS["to_read"])
    if statuses:
        shared = Q(reading_status=statuses[0]) if len(statuses) == 1 else Q(reading_status__in=statuses)
        if blind:
            # In a consensus project a reader's status is their own read's, never the others'.
            shared = (~Q(project_id__in=blind) & shared) | (
                Q(project_id__in=blind) & _own_status(user, statuses)
            )
        entries = entries.filter(shared)
    if f.priority in PRIORITY_FILTERS:
        triage = ProjectStudy.Triage(PRIORITY_FILTERS[f.priority])
        # The rank narrows the index range; the triage picks within it.
        by_triage = Q(triage_rank=ProjectStudy.TRIAGE_RANK[triage], ai_triage=triage)
        if hiding_ai:  # there the user sees no triage: every row is one "with no AI result"
            unseen = Q(project_id__in=hiding_ai)
            if triage == ProjectStudy.Triage.NONE:
                by_triage = (~unseen & by_triage) | unseen
            else:
                by_triage = ~unseen & by_triage
        entries = entries.filter(by_triage)
    if f.modality:
        entries = entries.filter(study__acquired_modalities__contains=f.modality.upper())
    if f.q:
        entries = _searched(entries, f.q.strip())
    if f.mine:
        # The reader's assigned studies as a set to probe, then the exact (project, study) pair.
        assigned = Assignment.objects.filter(reader=user.pk)
        exact = assigned.filter(project=OuterRef("project_id"), study=OuterRef("study_id"))
        entries = entries.filter(study_id__in=assigned.values("study_id")).filter(Exists(exact))
    if blind:
        entries = entries.exclude(_consensus_cases_not_assigned(user=user, blind=blind))
    return entries


def _consensus_projects_read_blind(*, user: Any) -> list[int]:
    """The consensus projects in which the user reads (blind to the other readers); none for
    admins. A project's adjudicator is not one of its readers."""
    if user.is_superuser or user.has_perm("reviews.view_reading"):
        return []
    return list(
        ProjectMember.objects.filter(
            user=user.pk, role__in=READER_ROLES, project__kind=ReadingProject.Kind.CONSENSUS
        ).values_list("project_id", flat=True)
    )


def _own_status(user: Any, statuses: Sequence[str]) -> Q:
    """Rows whose status, as far as the user's own reading goes, is one of `statuses`: waiting
    (no reading yet), in progress (opened, not submitted), read (submitted)."""
    mine = Reading.objects.filter(project=OuterRef("project_id"), study=OuterRef("study_id"), reader=user.pk)
    submitted = mine.filter(phase=Reading.Phase.SUBMITTED)
    conditions = {
        ProjectStudy.Status.WAITING: ~Q(Exists(mine)),
        ProjectStudy.Status.IN_PROGRESS: Q(Exists(mine)) & ~Q(Exists(submitted)),
        ProjectStudy.Status.READ: Q(Exists(submitted)),
    }
    condition = Q(pk__in=[])
    for status in statuses:
        condition |= conditions[ProjectStudy.Status(status)]
    return condition


def _consensus_cases_not_assigned(*, user: Any, blind: list[int]) -> Q:
    """The rows a reader of a consensus project must not see: the project's cases that are not
    assigned to them (who else reads what, and how far they got, is no reader's business:
    docs/consensus.md, "Blinding").

    Users who read no consensus project keep the plain index range scan (one small query more
    to know it). For those who do, the condition folds away in their other projects' scans; in
    a consensus project's scan each row is checked against the reader's assignments, which
    PostgreSQL hashes once per query (measured: 1 ms for 5,000 assignments, 18 ms for 50,000)
    or probes per row in Assignment's unique (project, study, reader) index.
    """
    assigned = Assignment.objects.filter(
        project=OuterRef("project_id"), study=OuterRef("study_id"), reader=user.pk
    )
    return Q(project_id__in=blind) & ~Q(Exists(assigned))


def _status_of(reading: Reading | None) -> str:
    if reading is None:
        return ProjectStudy.Status.WAITING
    return (
        ProjectStudy.Status.READ
        if reading.phase == Reading.Phase.SUBMITTED
        else ProjectStudy.Status.IN_PROGRESS
    )


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


def _attach_details(
    rows: list[WorklistRow], *, user: Any, memberships: dict[int, str], hiding_ai: set[int]
) -> None:
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
    sees_all = bool(user.is_superuser or user.has_perm("reviews.view_reading"))
    readings = {
        (r.project_id, r.study_id): r
        for r in Reading.objects.filter(reader=user.pk, study_id__in=study_pks, project_id__in=project_pks)
    }
    for row in rows:
        key = (row.entry.project_id, row.entry.study_id)
        row.assignees = _assignees_shown(
            assignees.get(key, []),
            entry=row.entry,
            role=memberships.get(row.entry.project_id),
            user=user,
            sees_all=sees_all,
        )
        row.ai_hidden = row.entry.project_id in hiding_ai
        row.job = None if row.ai_hidden else jobs.get(row.entry.study_id)
        row.my_reading = readings.get(key)
        blind_reader = memberships.get(row.entry.project_id) in READER_ROLES and not sees_all
        if row.entry.project.is_consensus and blind_reader:
            # A blind reader's status is their own read's (the shared one counts every reader).
            row.entry.reading_status = _status_of(row.my_reading)


def _assignees_shown(
    names: list[str], *, entry: ProjectStudy, role: str | None, user: Any, sees_all: bool
) -> list[str]:
    """In a consensus project a reader must not learn who else reads the case: they see only
    themself; admins and the project's adjudicators see everyone."""
    if not entry.project.is_consensus or sees_all or role == MemberRole.ADJUDICATOR:
        return names
    return [name for name in names if name == user.get_username()]


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
    # Asked first: with the user's permissions and memberships loaded, the study test below
    # answers them in Python (viewer.selectors.permission_condition, study_scope) and is two
    # plain EXISTS instead of six with joins. The rules ask for the memberships anyway.
    everybody = user.is_superuser or user.has_perm("reviews.view_reading")
    if user.is_authenticated:
        memberships(user)
    visible = study_queryset_for_user(user=user).filter(pk=OuterRef("study_id"))
    readings = Reading.objects.select_related(
        "project", "study__patient", "series", "revealed_job__model_version"
    ).filter(Exists(visible))
    return readings if everybody else readings.filter(reader=user.pk)


def decisions_current(*, reading: Reading) -> QuerySet[Decision]:
    """The reading's current decisions (one per finding: the ones nothing supersedes)."""
    return Decision.objects.filter(reading=reading, superseded_by__isnull=True).order_by("target", "pk")


def decisions_history(*, reading: Reading) -> QuerySet[Decision]:
    return Decision.objects.filter(reading=reading).order_by("pk")


# --- Consensus projects ------------------------------------------------------------------------
CASE_FILTERS = ("queue", "all", *ConsensusCase.Status.values)


def consensus_projects_for_user(*, user: Any) -> QuerySet[ReadingProject]:
    """The consensus projects whose cases the user may see: all for admins, else those they
    adjudicate (readers never: reviews.permissions.SEE_CONSENSUS)."""
    projects = ReadingProject.objects.filter(kind=ReadingProject.Kind.CONSENSUS)
    if user.is_superuser or user.has_perm("reviews.view_reading"):
        return projects
    return projects.filter(active=True, memberships__user=user.pk, memberships__role=MemberRole.ADJUDICATOR)


def consensus_cases(*, project: ReadingProject, status: str = "queue") -> QuerySet[ConsensusCase]:
    """The project's cases. "queue": the adjudication queue, lowest agreement first (cases that
    need adjudication; with `adjudicate_all`, agreed ones too); a status: those cases; "all"."""
    cases = ConsensusCase.objects.filter(project=project).select_related("entry__study__patient")
    if status == "queue":
        waiting = [ConsensusCase.Status.ADJUDICATION]
        if project.adjudicate_all:
            waiting.append(ConsensusCase.Status.AGREED)
        return cases.filter(status__in=waiting).order_by(F("worst_dice").asc(nulls_last=True), "pk")
    if status != "all":
        cases = cases.filter(status=status)
    return cases.order_by("pk")


def consensus_case_reads(*, case: ConsensusCase) -> QuerySet[Reading]:
    """The case's submitted readings, in the order they were submitted."""
    return (
        Reading.objects.filter(
            project_id=case.project_id, study_id=case.entry.study_id, phase=Reading.Phase.SUBMITTED
        )
        .select_related("reader", "series")
        .order_by("submitted_at", "pk")
    )


def consensus_progress(*, project: ReadingProject, today: dt.date | None = None) -> dict[str, Any]:
    """Per reader: assigned, submitted, open and overdue (open after the due date); per case:
    how many are at each status and how many reads are in of those needed."""
    today = today or timezone.localdate()
    overdue = project.due_date is not None and today > project.due_date
    submitted = Reading.objects.filter(
        project=project,
        study=OuterRef("study_id"),
        reader=OuterRef("reader_id"),
        phase=Reading.Phase.SUBMITTED,
    )
    readers: dict[int, dict[str, Any]] = {}
    for member in ProjectMember.objects.filter(project=project, role__in=READER_ROLES).select_related("user"):
        readers[member.user_id] = _reader_row(member.user.get_username(), member=True)
    rows = Assignment.objects.filter(project=project).annotate(done=Exists(submitted))
    for reader_pk, username, done in rows.values_list("reader_id", "reader__username", "done"):
        row = readers.setdefault(reader_pk, _reader_row(username, member=False))
        row["assigned"] += 1
        row["submitted" if done else "open"] += 1
    for row in readers.values():
        row["overdue"] = row["open"] if overdue else 0
    by_status = dict.fromkeys(ConsensusCase.Status.values, 0)
    reads_done = 0
    for status, count in ConsensusCase.objects.filter(project=project).values_list("status", "reads_done"):
        by_status[status] += 1
        reads_done += min(count, project.reads_per_case)
    cases = sum(by_status.values())
    return {
        "due_date": project.due_date.isoformat() if project.due_date else None,
        "overdue": overdue,
        "readers": sorted(readers.values(), key=lambda r: r["reader"]),
        "cases": {
            "total": cases,
            "by_status": by_status,
            "reads_done": reads_done,
            "reads_needed": cases * project.reads_per_case,
        },
    }


def _reader_row(username: str, *, member: bool) -> dict[str, Any]:
    return {"reader": username, "member": member, "assigned": 0, "submitted": 0, "open": 0, "overdue": 0}


def consensus_project_agreement(*, project: ReadingProject) -> dict[str, Any]:
    """Agreement over the project's cases that have all their reads: per question Cohen's kappa
    (two reads per case), Fleiss' kappa (the same number of reads on every case) and
    Krippendorff's alpha (nominal), computed on the reads in submission order; the
    distributions of each case's worst Dice and HD95 over its matched findings; and each
    reader against the reference standards recorded so far."""
    compared = list(
        ConsensusCase.objects.filter(project=project, computed_at__isnull=False)
        .exclude(status=ConsensusCase.Status.COLLECTING)
        .values_list("computed_from", "agreement", "worst_dice")
    )
    answers = dict(
        Reading.objects.filter(pk__in=[pk for ids, _, _ in compared for pk in ids]).values_list(
            "pk", "answers"
        )
    )
    tables = [[answers.get(pk, {}) for pk in ids] for ids, _, _ in compared]
    questions = [_question_agreement(q, tables, project.reads_per_case) for q in project.questions]
    # The case's worst Dice as its row in the case list gives it (0 where a finding was marked
    # by some readers only); cases in which no reader marked anything have none.
    dice = [worst for _, _, worst in compared if worst is not None]
    hd95 = [a.get("worst_hd95_mm") for _, a, _ in compared if a.get("worst_hd95_mm") is not None]
    return {
        "cases": len(compared),
        "questions": questions,
        "worst_dice": _summary(dice, bins=10),
        "worst_hd95_mm": _summary(hd95),
        "cases_with_misses": sum(1 for _, a, _ in compared if a.get("missed")),
        "readers_vs_reference": _readers_vs_reference(project),
    }


def _question_agreement(
    question: dict[str, Any], tables: list[list[dict[str, Any]]], reads: int
) -> dict[str, Any]:
    from reviews.consensus import cohen_kappa, fleiss_kappa, krippendorff_alpha  # scikit-learn: when needed

    code = question["code"]
    width = max((len(row) for row in tables), default=0)
    table = [[row[k].get(code) if k < len(row) else None for k in range(width)] for row in tables]
    equal = bool(table) and all(len(row) == reads for row in tables)
    choices = question["choices"]
    return {
        "code": code,
        "text": question["text"],
        "cases": len(table),
        "cohen_kappa": _statistic(cohen_kappa, table, choices) if reads == 2 and equal else None,
        "fleiss_kappa": _statistic(fleiss_kappa, table, choices) if equal else None,
        "krippendorff_alpha": _statistic(krippendorff_alpha, table, choices),
    }


def _statistic(function: Any, table: list[list[Any]], choices: list[str]) -> dict[str, Any]:
    """{"value": the statistic, "note": why it is missing}; NaN and refusals give no value."""
    from reviews.consensus import AgreementError

    if not table:
        return {"value": None, "note": "no case has all its reads yet"}
    try:
        value = function(table, categories=choices)
    except AgreementError as exc:
        return {"value": None, "note": str(exc)}
    if math.isnan(value):
        return {"value": None, "note": "undefined (one category)"}
    return {"value": round(value, 6), "note": ""}


def _summary(values: list[float], *, bins: int = 0) -> dict[str, Any]:
    """Count, min, quartiles, max and mean; for Dice (bins) also a histogram over [0, 1]."""
    summary: dict[str, Any] = {"count": len(values), "values": sorted(round(v, 6) for v in values)}
    if values:
        q1, median, q3 = (
            statistics.quantiles(values, n=4, method="inclusive") if len(values) > 1 else [values[0]] * 3
        )
        summary.update(
            min=round(min(values), 6),
            q1=round(q1, 6),
            median=round(median, 6),
            q3=round(q3, 6),
            max=round(max(values), 6),
            mean=round(statistics.fmean(values), 6),
        )
    if bins:
        counts = [0] * bins
        for value in values:
            counts[min(int(value * bins), bins - 1)] += 1
        summary["histogram"] = {"edges": [k / bins for k in range(bins + 1)], "counts": counts}
    return summary


def _readers_vs_reference(project: ReadingProject) -> list[dict[str, Any]]:
    """Each reader's mean Dice against the current reference standards and the share of their
    answers that match the reference's, over the adjudicated cases they read."""
    per_reader: dict[str, dict[str, Any]] = {}
    references = ReferenceStandard.objects.filter(case__project=project, superseded_by__isnull=True)
    for agreement in references.values_list("reader_agreement", flat=True):
        for read in agreement:
            row = per_reader.setdefault(
                read["reader"], {"reader": read["reader"], "cases": 0, "dice": [], "matched": 0, "asked": 0}
            )
            row["cases"] += 1
            row["dice"].append(read["dice"])
            row["matched"] += read["answers_matched"]
            row["asked"] += read["questions"]
    return [
        {
            "reader": row["reader"],
            "cases": row["cases"],
            "mean_dice": round(statistics.fmean(row["dice"]), 6),
            "answer_agreement": round(row["matched"] / row["asked"], 6) if row["asked"] else None,
        }
        for row in sorted(per_reader.values(), key=lambda r: r["reader"])
    ]
