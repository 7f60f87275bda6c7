"""HTML pages and htmx partials of the reviews app."""

from __future__ import annotations

from urllib.parse import urlencode

from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest
from django.shortcuts import render
from django.views.decorators.http import require_GET
from django_htmx.middleware import HtmxDetails

from reviews.models import ProjectStudy
from reviews.selectors import (
    MAX_PAGE,
    PRIORITY_FILTERS,
    STATUS_FILTERS,
    WorklistFilter,
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
        project=int(project) if project.isdigit() else None,
    )


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
    page_param = request.GET.get("page", "")
    number = min(int(page_param), MAX_PAGE) if page_param.isdigit() and int(page_param) > 0 else 1
    page = worklist_page(user=request.user, worklist_filter=worklist_filter, page=number)
    params = worklist_filter.as_params()
    projects = list(projects_for_user(user=request.user).distinct().only("pk", "name"))
    context = {
        "page": page,
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
