"""The consensus pages: the projects an adjudicator (or admin) oversees, and each project's
dashboard: progress per reader and per case, agreement (kappas, alpha, Dice and HD95
distributions, readers against the reference) drawn as server-side SVG, and the adjudication
queue, lowest agreement first."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_GET

from audit.services import audit_hidden_refused
from reviews.models import ConsensusCase, ReadingProject
from reviews.permissions import ADJUDICATE, SEE_CONSENSUS
from reviews.selectors import (
    consensus_cases,
    consensus_progress,
    consensus_project_agreement,
    consensus_projects_for_user,
)

CASE_FILTERS = {"queue": "Adjudication queue", "all": "All cases", **dict(ConsensusCase.Status.choices)}
CHART = {"width": 320, "height": 120, "pad": 18}


@require_GET
def consensus_projects(request: HttpRequest) -> HttpResponse:
    """The consensus projects the user oversees, with their progress."""
    projects = [
        {"project": project, "progress": consensus_progress(project=project)}
        for project in consensus_projects_for_user(user=request.user).order_by("name")
    ]
    return render(request, "reviews/consensus_projects.html", {"projects": projects})


@require_GET
def consensus_project(request: HttpRequest, pk: int) -> HttpResponse:
    """One project's dashboard (adjudicators of the project and admins)."""
    project = ReadingProject.objects.filter(pk=pk, kind=ReadingProject.Kind.CONSENSUS).first()
    if project is None:
        raise Http404("no such consensus project")
    if not request.user.has_perm(SEE_CONSENSUS, project):
        # As the consensus API answers: its readers are refused (403), the rest told nothing.
        if project.memberships.filter(user=request.user.pk).exists():
            raise PermissionDenied("readers do not see the project's cases")
        audit_hidden_refused(request=request, exists=True)
        raise Http404("no such consensus project")
    shown = request.GET.get("cases", "queue")
    shown = shown if shown in CASE_FILTERS else "queue"
    agreement = consensus_project_agreement(project=project)
    cases = [
        {"case": case, "open_url": _case_url(case)}
        for case in consensus_cases(project=project, status=shown)[:200]
    ]
    context = {
        "project": project,
        "progress": consensus_progress(project=project),
        "agreement": agreement,
        "dice_chart": _histogram(agreement["worst_dice"].get("histogram")),
        "reader_chart": _bars(agreement["readers_vs_reference"]),
        "cases": cases,
        "case_filters": CASE_FILTERS.items(),
        "shown": shown,
        "may_adjudicate": request.user.has_perm(ADJUDICATE, project),
        "chart": CHART,
    }
    return render(request, "reviews/consensus_project.html", context)


def _case_url(case: ConsensusCase) -> str:
    """The case on the study page, with its adjudication panel."""
    return reverse("study-viewer", args=[case.entry.study.study_uid]) + f"?case={case.pk}"


def _histogram(histogram: dict[str, Any] | None) -> dict[str, Any] | None:
    """Bars of the worst-Dice histogram, in SVG coordinates."""
    if not histogram or not any(histogram["counts"]):
        return None
    counts, edges = histogram["counts"], histogram["edges"]
    width, height, pad = CHART["width"], CHART["height"], CHART["pad"]
    top = max(counts)
    step = (width - 2 * pad) / len(counts)
    bars = []
    for k, count in enumerate(counts):
        h = (height - 2 * pad) * count / top
        bars.append(
            {
                "x": round(pad + k * step + 1, 1),
                "y": round(height - pad - h, 1),
                "w": round(step - 2, 1),
                "h": round(h, 1),
                "count": count,
                "label": f"{edges[k]:.1f} to {edges[k + 1]:.1f}",
            }
        )
    ticks = [{"x": round(pad + k * step, 1), "text": f"{edges[k]:.1f}"} for k in range(0, len(edges), 2)]
    return {"bars": bars, "ticks": ticks, "top": top, "base": height - pad}


def _bars(rows: list[dict[str, Any]]) -> dict[str, Any] | None:
    """Horizontal bars of each reader's mean Dice against the reference standards."""
    if not rows:
        return None
    width, pad, row_h = CHART["width"], CHART["pad"], 22
    span = width - 2 * pad - 90
    bars = [
        {
            "y": pad + k * row_h,
            "w": round(span * max(0.0, min(1.0, row["mean_dice"])), 1),
            "reader": row["reader"],
            "value": row["mean_dice"],
        }
        for k, row in enumerate(rows)
    ]
    return {"bars": bars, "height": 2 * pad + row_h * len(rows), "x": 90, "span": span}
