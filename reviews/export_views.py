"""The feedback export pages: an admin asks for an export of the labelled feedback (or of a
consensus project's reference standards) and watches it being written in the background.

Admins only (reviews.export_feedback): anyone else gets a 403, which AuditMiddleware records.
Each admin sees only their own exports; another's is a 404, its refusal audited. The finished
zip is fetched from the API's file endpoint, which records the export (110106 Export).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django import forms
from django.contrib.auth.decorators import permission_required
from django.db.models import QuerySet
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.views.decorators.http import require_http_methods
from django_htmx.http import HttpResponseStopPolling
from django_htmx.middleware import HtmxDetails

from audit.services import audit_hidden_refused
from config.inputs import id_param, in_date_range, validate_date_range
from inference.models import ModelVersion
from reviews.models import Decision, FeedbackExport, ReadingProject
from reviews.permissions import EXPORT_FEEDBACK
from reviews.services import FeedbackFilter, feedback_export_request

RECENT = 20
_DATE = forms.DateInput(attrs={"type": "date"})


class HtmxRequest(HttpRequest):
    htmx: HtmxDetails  # set by django_htmx's middleware


def _project_choices() -> list[tuple[str, str]]:
    projects = ReadingProject.objects.order_by("name").values_list("pk", "name", "kind")
    return [("", "All projects")] + [
        (str(pk), f"{name} (consensus)" if kind == ReadingProject.Kind.CONSENSUS else name)
        for pk, name, kind in projects
    ]


def _model_choices() -> list[tuple[str, str]]:
    versions = ModelVersion.objects.order_by("name", "version").values_list("name", "version")
    return [("", "All models")] + [(f"{name}:{version}", f"{name}:{version}") for name, version in versions]


class FeedbackExportForm(forms.Form):
    """The export's filters. Dates are whole days: from the start of `since` to the end of
    `until`, in the site's time zone."""

    project = forms.ChoiceField(required=False, label="Project", choices=_project_choices)
    model = forms.ChoiceField(required=False, label="Model", choices=_model_choices)
    since = forms.DateField(required=False, label="From", widget=_DATE, validators=[validate_date_range])
    until = forms.DateField(required=False, label="To", widget=_DATE, validators=[validate_date_range])
    decision = forms.ChoiceField(
        required=False,
        label="Decision",
        choices=[("", "Any kind"), *Decision.Kind.choices],
    )
    reference = forms.BooleanField(required=False, label="Reference standards of a consensus project")

    def clean(self) -> dict[str, Any]:
        super().clean()
        data = self.cleaned_data
        since, until = data.get("since"), data.get("until")
        if since and until and until < since:
            self.add_error("until", "The end date is before the start date.")
        if self.errors:
            return data
        params = {
            "project": data.get("project", ""),
            "model": data.get("model", ""),
            "since": _start_of(since),
            "until": _start_of(until + dt.timedelta(days=1) if until else None),
            "decision": data.get("decision", ""),
            "reference": "1" if data.get("reference") else "",
        }
        try:
            self.feedback_filter = FeedbackFilter.from_params(params)
        except ValueError as exc:
            raise forms.ValidationError(str(exc)) from None
        return data


def _start_of(day: dt.date | None) -> str:
    if day is None:
        return ""
    return timezone.make_aware(dt.datetime.combine(day, dt.time())).isoformat()


def _exports_of(user: Any) -> QuerySet[FeedbackExport]:
    return FeedbackExport.objects.filter(requested_by_id=user.pk)


def _summaries(exports: list[FeedbackExport]) -> list[tuple[FeedbackExport, str]]:
    """Each export with its filters in words, e.g. "Chest CT · demo-unet:1.0.0 · from 2025-01-01"."""
    names = dict(ReadingProject.objects.values_list("pk", "name"))
    return [(export, _summary(export.filters, names)) for export in exports]


def _summary(filters: dict[str, str], project_names: dict[int, str]) -> str:
    parts = ["reference standards"] if filters.get("reference") else []
    project = filters.get("project", "")
    project_pk = id_param(project)
    if project_pk is not None:
        project = project_names.get(project_pk, project)
    parts += [value for value in (project, filters.get("model", ""), filters.get("decision", "")) if value]
    for key, word in (("since", "from"), ("until", "before")):
        moment = parse_datetime(filters.get(key, ""))
        if moment is None:
            continue
        if in_date_range(moment):  # an export stored before dates were bounded may hold year 1
            parts.append(f"{word} {timezone.localtime(moment):%Y-%m-%d %H:%M}".removesuffix(" 00:00"))
        else:
            parts.append(f"{word} {filters[key]}")
    return " · ".join(parts) or "everything"


@require_http_methods(["GET", "POST"])
@permission_required(EXPORT_FEEDBACK, raise_exception=True)
def feedback_exports(request: HttpRequest) -> HttpResponse:
    """The export form and the admin's recent exports. A valid POST queues the export and
    redirects to its progress; an invalid one shows the form's errors (400, nothing queued)."""
    form = FeedbackExportForm(request.POST if request.method == "POST" else None)
    if form.is_bound and form.is_valid():
        export = feedback_export_request(feedback_filter=form.feedback_filter, user=request.user)
        return redirect("feedback-export", pk=export.pk)
    recent = _exports_of(request.user).order_by("-created_at", "-pk")[:RECENT]
    context = {"form": form, "exports": _summaries(list(recent))}
    return render(request, "reviews/feedback_exports.html", context, status=400 if form.is_bound else 200)


@require_http_methods(["GET"])
@permission_required(EXPORT_FEEDBACK, raise_exception=True)
def feedback_export(request: HtmxRequest, pk: int) -> HttpResponse:
    """One export's progress: its htmx partial polls itself every 2 s and is told to stop
    (286) once the export is done or failed; then it holds the download link or the error."""
    export = _exports_of(request.user).filter(pk=pk).first()
    if export is None:
        audit_hidden_refused(request=request, exists=FeedbackExport.objects.filter(pk=pk).exists())
        raise Http404("no such export")
    [(export, summary)] = _summaries([export])
    context = {"export": export, "summary": summary}
    if not request.htmx:
        return render(request, "reviews/feedback_export.html", context)
    response = render(request, "reviews/feedback_export.html#status", context)
    if not export.finished:
        return response
    stop = HttpResponseStopPolling(response.content)
    stop["Content-Type"] = response["Content-Type"]
    return stop
