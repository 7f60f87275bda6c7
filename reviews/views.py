"""HTML pages and htmx partials of the reviews app."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest
from django.shortcuts import render
from django.views.decorators.http import require_GET
from django_htmx.middleware import HtmxDetails

from config.inputs import id_param
from reviews.models import ProjectStudy
from reviews.selectors import (
    MAX_PAGE,
    PRIORITY_FILTERS,
    STATUS_FILTERS,
    WorklistFilter,
    WorklistRow,
    projects_for_user,
    worklist_page,
)

STATUS_LABELS = {
    "to_read": "To read",
    "waiting": "Waiting",
    "in_progress": "In progress",
    "read": "Read",
    "all": "All",
}
PRIORITY_LABELS = {
    "": "Any priority",
    "urgent": "Urgent",
    "priority": "Priority",
    "routine": "Routine",
    "none": "No AI result",
}
POLL_SECONDS = 5


class HtmxRequest(HttpRequest):
    htmx: HtmxDetails  # set by django_htmx's middleware


def _filter(request: HttpRequest) -> WorklistFilter:
    get = request.GET
    status = get.get("status", "") if get.get("status", "") in STATUS_FILTERS else "to_read"
    priority = get.get("priority", "") if get.get("priority", "") in PRIORITY_FILTERS else ""
    project = get.get("project", "")
    return WorklistFilter(
        status=status,
        priority=priority,
        modality=get.get("modality", "").strip()[:16],
        q=get.get("q", "").strip()[:64],
        mine=get.get("mine", "") in {"1", "on", "true"},
        project=id_param(project),
    )


def _row_cells(row: WorklistRow) -> dict[str, Any]:
    """What one worklist row shows, as the strings the template puts in place: the template
    then looks up each value once, flat (rendering 50 rows was half the page's CPU)."""
    entry, study, job = row.entry, row.entry.study, row.job
    triage = "" if row.ai_hidden else entry.ai_triage
    identifiers = [study.patient.patient_id, study.accession_number]
    return {
        "url": row.viewer_url,
        "study_uid": study.study_uid,
        "triage": triage or "none",
        "triage_label": entry.get_ai_triage_display() if triage else "",
        "patient": row.patient_name,
        "identifiers": " · ".join(i for i in identifiers if i),
        "date": study.study_date.strftime("%Y-%m-%d") if study.study_date else "—",
        "modalities": " / ".join(m for m in study.acquired_modalities.split("\\") if m) or "—",  # CT / PT
        "description": study.description or "—",
        "ai_status": job.status if job is not None else "none",
        "ai_note": "hidden" if row.ai_hidden else ("none" if job is None else ""),
        "ai_label": job.get_status_display() if job is not None else "",
        "progress": None if job is None or job.finished else job.progress,
        "reading": entry.get_reading_status_display(),
        "mine": row.my_reading.get_phase_display() if row.my_reading is not None else "",
        "assignees": ", ".join(row.assignees),
        "project": entry.project.name,
    }


@require_GET
def worklist(request: HtmxRequest) -> HttpResponse:
    """The reader's worklist: studies to read, most urgent first, then the longest waiting.

    An htmx request (the rows polling themselves while an AI job on the page runs) gets only
    the rows partial. Filters and paging are plain links and a GET form: they work without
    JavaScript.
    """
    if any("\x00" in value for value in request.GET.values()):
        return HttpResponseBadRequest("A filter holds a NUL byte.")
    worklist_filter = _filter(request)
    number = min(id_param(request.GET.get("page", "")) or 1, MAX_PAGE)
    page = worklist_page(user=request.user, worklist_filter=worklist_filter, page=number)
    params = worklist_filter.as_params()
    projects = list(projects_for_user(user=request.user).distinct().only("pk", "name"))
    context = {
        "page": page,
        "rows": [_row_cells(row) for row in page.rows],
        "filter": worklist_filter,
        "query": urlencode(params),
        "self_query": urlencode({**params, "page": page.number} if page.number > 1 else params),
        "statuses": STATUS_LABELS.items(),
        "priorities": PRIORITY_LABELS.items(),
        "projects": projects,
        "show_project": len(projects) > 1,
        "poll_seconds": POLL_SECONDS,
        "triage": ProjectStudy.Triage,
    }
    template = "reviews/worklist.html#rows" if request.htmx else "reviews/worklist.html"
    return render(request, template, context)
