"""HTML pages and htmx partials of the viewer app."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from django.conf import settings
from django.contrib.auth.decorators import permission_required
from django.core.files.uploadedfile import UploadedFile
from django.db.models import Count, Max, Min, Sum
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.http.multipartparser import MultiPartParserError
from django.shortcuts import render
from django.urls import NoReverseMatch, reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from pydicom.datadict import keyword_for_tag

from audit.services import audit_hidden_refused
from viewer.dicomweb.auditing import audit_study_accessed
from viewer.ingest.service import IngestOutcome, ingest_upload
from viewer.models import Instance, Study
from viewer.panels import study_panels
from viewer.selectors import series_queryset_for_user, study_queryset_for_user
from viewer.store import is_valid_uid

INGEST_PERMISSION = "viewer.add_instance"
UPLOAD_CONCURRENCY = 3
# Room for the multipart framing around the file itself.
_FORM_OVERHEAD_BYTES = 64 * 1024


@require_http_methods(["GET", "POST"])
@permission_required(INGEST_PERMISSION, raise_exception=True)
def upload_page(request: HttpRequest) -> HttpResponse:
    """Drop or choose DICOM files, folders and ZIP archives to store.

    The page's script sends each file on its own to `upload_file`; without
    JavaScript the form posts here and the results come back in the page.
    """
    outcomes: list[IngestOutcome] = []
    status = 200
    if request.method == "POST":
        if _too_large(request):
            status = 413
        else:
            outcomes = [o for uploaded in request.FILES.getlist("files") for o in _ingest(request, uploaded)]
            status = outcomes_status(outcomes)
    context = {
        "outcomes": outcomes,
        "summary": summary_text(outcomes),
        "concurrency": UPLOAD_CONCURRENCY,
        "max_upload_bytes": settings.DICOM_MAX_UPLOAD_BYTES,
        "too_large": status == 413,
    }
    return render(request, "viewer/upload.html", context, status=status)


@require_POST
@permission_required(INGEST_PERMISSION, raise_exception=True)
def upload_file(request: HttpRequest) -> JsonResponse:
    """One file per request (a DICOM file or a ZIP of them): its outcomes as JSON.

    Each result says what became of an instance and why. 200 when anything was
    stored (or already was), 422 when everything was refused (as STOW-RS answers
    409); 413 over the size limit, 400 without a file, 403 without the permission.
    """
    if _too_large(request):
        limit = settings.DICOM_MAX_UPLOAD_BYTES
        return JsonResponse({"detail": f"the file is larger than the limit of {limit} bytes"}, status=413)
    try:
        uploaded = request.FILES.get("file")
    except MultiPartParserError as exc:
        return JsonResponse({"detail": f"the multipart form could not be read: {exc}"}, status=400)
    if uploaded is None:
        return JsonResponse({"detail": "send one file in the form field 'file'"}, status=400)
    outcomes = _ingest(request, uploaded)
    body: dict[str, Any] = {
        "results": [outcome_json(o) for o in outcomes],
        "summary": dict(Counter(o.status for o in outcomes)),
    }
    status = outcomes_status(outcomes)
    if status != 200:
        why = f": {outcomes[0].reason}" if len(outcomes) == 1 else ""
        body["detail"] = f"nothing was stored{why}"
    return JsonResponse(body, status=status)


def outcomes_status(outcomes: list[IngestOutcome]) -> int:
    """422 when files were offered and every instance in them was refused, else 200."""
    refused = bool(outcomes) and all(outcome.status == "rejected" for outcome in outcomes)
    return 422 if refused else 200


def _too_large(request: HttpRequest) -> bool:
    length = int(request.META.get("CONTENT_LENGTH") or 0)
    return length > settings.DICOM_MAX_UPLOAD_BYTES + _FORM_OVERHEAD_BYTES


def _ingest(request: HttpRequest, uploaded: UploadedFile) -> list[IngestOutcome]:
    source: Path | IO[bytes]
    if hasattr(uploaded, "temporary_file_path"):  # large files: already on disk, not copied again
        source = Path(uploaded.temporary_file_path())
    else:
        uploaded.seek(0)
        source = uploaded
    name = (uploaded.name or "upload")[:255]
    return ingest_upload(source=source, name=name, origin="upload", user=request.user, request=request)


def outcome_json(outcome: IngestOutcome) -> dict[str, Any]:
    return {
        "name": outcome.name,
        "status": outcome.status,
        "reason": outcome.reason,
        "failure_code": f"0x{outcome.failure_code:04X}" if outcome.failure_code is not None else None,
        "study_uid": outcome.study_uid,
        "series_uid": outcome.series_uid,
        "sop_instance_uid": outcome.sop_instance_uid,
    }


def summary_text(outcomes: list[IngestOutcome]) -> str:
    """The counts in words, e.g. "3 stored, 1 already stored, 2 rejected"; empty for no outcomes."""
    counts: Counter[str] = Counter(outcome.status for outcome in outcomes)
    words = (("stored", "stored"), ("duplicate", "already stored"), ("rejected", "rejected"))
    return ", ".join(f"{counts[status]} {label}" for status, label in words if counts[status])


# --- The reading viewer ---------------------------------------------------------------
# The AI results of a study (JSON, see docs/viewer.md). The page asks for them only where
# the route exists and the user may see them, so nobody gets a 404 or 403 in the console.
AI_URL_NAME = "api-study-ai"
AI_PERMISSION = "inference.view_inferencejob"


@require_GET
def study_viewer(request: HttpRequest, study_uid: str) -> HttpResponse:
    """The reading viewer of one study: series thumbnails, viewports, the side panel.

    404 for a study the user may not see, exactly as for one that does not exist
    (as DICOMweb answers). Opening it records 110103 DICOM Instances Accessed,
    once per study per session, the same event the viewer's DICOMweb reads record.
    """
    study = _visible_study(request, study_uid)
    panels = study_panels(request, study)  # first: a panel may open the user's reading
    hides_ai = any(panel.hides_ai for panel in panels)
    series = list(
        series_queryset_for_user(user=request.user)
        .filter(study=study)
        .annotate(
            instance_count=Count("instances"),
            first_instance=Min("instances__pk"),
            frames=Max("instances__number_of_frames"),  # 0: no pixels (SR), so no thumbnail
            frame_total=Sum("instances__number_of_frames"),
        )
        .filter(instance_count__gt=0)
        .order_by("series_number", "pk")
    )
    _audit_viewer_opened(request, study)
    first_metadata = Instance.objects.filter(pk__in=[s.first_instance for s in series]).values_list(
        "metadata", flat=True
    )
    context = {
        "study": study,
        "patient": study.patient,
        "patient_name": _person_name(study.patient.name) or study.patient.patient_id,
        "series_list": series,
        "dicomweb_root": reverse("dicomweb:studies").removesuffix("/studies"),
        "ai_url": _ai_url(study.study_uid) if request.user.has_perm(AI_PERMISSION) and not hides_ai else "",
        "panels": panels,
        "tag_keywords": _tag_keywords(first_metadata),
    }
    return render(request, "viewer/study.html", context)


def _visible_study(request: HttpRequest, study_uid: str) -> Study:
    if not is_valid_uid(study_uid):
        raise Http404("no such study")
    study = (
        study_queryset_for_user(user=request.user)
        .select_related("patient")
        .filter(study_uid=study_uid)
        .first()
    )
    if study is None:
        audit_hidden_refused(request=request, exists=Study.objects.filter(study_uid=study_uid).exists())
        raise Http404("no such study")
    return study


def _audit_viewer_opened(request: HttpRequest, study: Study) -> None:
    # The DICOMweb helper remembers audited studies per "scope"; a page request is
    # always a session, so the frame requests that follow do not record it again.
    request.dicomweb_scope = f"session:{request.session.session_key}"  # type: ignore[attr-defined]
    audit_study_accessed(request, study)


def _person_name(name: str) -> str:
    """A DICOM PN's alphabetic group as people write it: "DOE^JANE" -> "DOE, JANE"."""
    alphabetic = name.split("=", 1)[0]
    return ", ".join(part for part in alphabetic.split("^") if part)


def _ai_url(study_uid: str) -> str:
    try:
        return reverse(AI_URL_NAME, kwargs={"study_uid": study_uid})
    except NoReverseMatch:
        return ""


def _tag_keywords(metadata_sets: Any) -> dict[str, str]:
    """DICOM keywords of the tags in these DICOM JSON data sets (for the tag inspector)."""
    keywords: dict[str, str] = {}
    for metadata in metadata_sets:
        for tag in _json_tags(metadata):
            if tag not in keywords:
                keywords[tag] = keyword_for_tag(int(tag, 16)) or ""
    return {tag: keyword for tag, keyword in keywords.items() if keyword}


def _json_tags(metadata: dict[str, Any]) -> Iterator[str]:
    for tag, element in metadata.items():
        yield tag
        if element.get("vr") == "SQ":
            for item in element.get("Value", []):
                if isinstance(item, dict):
                    yield from _json_tags(item)
