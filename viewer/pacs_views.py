"""The PACS page: search the hospital PACS and pull studies into Overread."""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth.decorators import permission_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render
from django.views.decorators.http import require_GET, require_POST

from viewer.models import PacsPull
from viewer.pacs import PacsError, pacs_pull_request, pacs_study_search

# Search form fields: (query parameter and DICOM keyword, label).
SEARCH_FORM = [
    ("PatientID", "Patient ID"),
    ("PatientName", "Patient name"),
    ("AccessionNumber", "Accession"),
    ("StudyDate", "Study date (YYYYMMDD or range)"),
    ("ModalitiesInStudy", "Modality"),
]


@require_GET
@permission_required("viewer.add_pacspull", raise_exception=True)
def pacs_search(request: HttpRequest) -> HttpResponse:
    if not settings.PACS_ENABLED:
        return render(request, "viewer/pacs.html", {"not_configured": True})
    filters = {key: request.GET[key].strip() for key, _ in SEARCH_FORM if request.GET.get(key, "").strip()}
    context = {
        "fields": [(key, label, request.GET.get(key, "")) for key, label in SEARCH_FORM],
        "searched": bool(filters) or "search" in request.GET,
        "recent": PacsPull.objects.order_by("-created_at")[:10],
    }
    if context["searched"]:
        try:
            context["studies"] = pacs_study_search(filters=filters, user=request.user)
        except PacsError as exc:
            context["error"] = str(exc)
    return render(request, "viewer/pacs.html", context)


@require_POST
@permission_required("viewer.add_pacspull", raise_exception=True)
def pacs_pull_start(request: HttpRequest) -> HttpResponse:
    try:
        pull = pacs_pull_request(study_uid=request.POST.get("study_uid", ""), user=request.user)
    except PacsError as exc:
        return render(request, "viewer/pacs_pull_status.html", {"error": str(exc)}, status=400)
    return render(request, "viewer/pacs_pull_status.html", {"pull": pull})


@require_GET
@permission_required("viewer.add_pacspull", raise_exception=True)
def pacs_pull_status(request: HttpRequest, pk: int) -> HttpResponse:
    pull = get_object_or_404(PacsPull, pk=pk)
    return render(request, "viewer/pacs_pull_status.html", {"pull": pull})
