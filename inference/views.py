"""The inference pages: the jobs list (with live status) and the AI panel of a study.

The status partial polls itself every two seconds while the job runs and stops when it is
done (htmx stops polling on status 286, HttpResponseStopPolling).
"""

from __future__ import annotations

from urllib.parse import urlsplit

from django.contrib.auth.decorators import permission_required
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST
from django_htmx.http import HttpResponseClientRefresh, HttpResponseStopPolling
from django_htmx.middleware import HtmxDetails

from audit.services import audit_hidden_refused
from inference.models import InferenceJob, ModelVersion
from inference.selectors import job_for_study, jobs_for_user
from inference.services import JobError, job_cancel, job_rerun
from viewer.models import Study
from viewer.selectors import study_queryset_for_user

STATUS_TEMPLATE = "inference/_job_status.html"


class HtmxRequest(HttpRequest):
    htmx: HtmxDetails  # set by django_htmx's middleware


@require_GET
@permission_required("inference.view_inferencejob", raise_exception=True)
def job_list(request: HttpRequest) -> HttpResponse:
    jobs = (
        jobs_for_user(user=request.user)
        .select_related("series__study__patient")
        .order_by("-created_at", "-pk")
    )
    status = request.GET.get("status", "")
    if status in InferenceJob.Status.values:
        jobs = jobs.filter(status=status)
    model = request.GET.get("model", "")
    if model:
        jobs = jobs.filter(model_version__name=model)
    page = Paginator(jobs, 50).get_page(request.GET.get("page"))
    context = {
        "page": page,
        "statuses": InferenceJob.Status.choices,
        "models": ModelVersion.objects.values_list("name", flat=True).distinct().order_by("name"),
        "status": status,
        "model": model,
    }
    return render(request, "inference/jobs.html", context)


@require_GET
@permission_required("inference.view_inferencejob", raise_exception=True)
def job_status(request: HtmxRequest, pk: int) -> HttpResponse:
    job = _job(request, pk)
    response = render(request, STATUS_TEMPLATE, {"job": job})
    if request.htmx and job.finished:
        return _stop_polling(response)
    return response


@require_POST
@permission_required("inference.change_inferencejob", raise_exception=True)
def job_cancel_view(request: HttpRequest, pk: int) -> HttpResponse:
    job = _job(request, pk)
    if not job_cancel(job=job, user=request.user):
        job.refresh_from_db()
        error = f"Job {job.pk} is already {job.get_status_display().lower()}: there is nothing to cancel."
        return render(request, STATUS_TEMPLATE, {"job": job, "error": error}, status=409)
    return render(request, STATUS_TEMPLATE, {"job": job})


@require_POST
@permission_required("inference.change_inferencejob", raise_exception=True)
def job_rerun_view(request: HtmxRequest, pk: int) -> HttpResponse:
    try:  # the page the button is on (read first: a header no URL parses is no page of ours)
        shown_on = urlsplit(request.htmx.current_url_abs_path or "").path if request.htmx else ""
    except ValueError:
        shown_on = ""
    try:
        job = job_rerun(job=_job(request, pk), user=request.user)
    except JobError as exc:
        return render(request, STATUS_TEMPLATE, {"job": _job(request, pk), "error": str(exc)}, status=409)
    if shown_on == reverse("inference:jobs"):
        # The list: the old job's row stays as it was, the new job comes first; reload it.
        return HttpResponseClientRefresh()
    return render(request, STATUS_TEMPLATE, {"job": job})  # a study's panel: its job is the new one


@require_GET
@permission_required("inference.view_inferencejob", raise_exception=True)
def study_panel(request: HtmxRequest, study_uid: str) -> HttpResponse:
    """The AI panel of the viewer's side panel: model, status, findings (polls while running)."""
    study = study_queryset_for_user(user=request.user).filter(study_uid=study_uid).first()
    if study is None:
        audit_hidden_refused(request=request, exists=Study.objects.filter(study_uid=study_uid).exists())
        raise Http404("no such study")
    job = job_for_study(user=request.user, study=study)
    response = render(request, "inference/_study_panel.html", {"study": study, "job": job})
    if request.htmx and (job is None or job.finished):
        return _stop_polling(response)
    return response


def _job(request: HttpRequest, pk: int) -> InferenceJob:
    job = jobs_for_user(user=request.user).filter(pk=pk).first()
    if job is None:
        audit_hidden_refused(request=request, exists=InferenceJob.objects.filter(pk=pk).exists())
        raise Http404("no such job")
    return job


def _stop_polling(response: HttpResponse) -> HttpResponse:
    stop = HttpResponseStopPolling(response.content)
    stop["Content-Type"] = response["Content-Type"]
    return stop
