"""HTML pages and htmx partials of the viewer app."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import IO, Any

from django.conf import settings
from django.contrib.auth.decorators import permission_required
from django.core.files.uploadedfile import UploadedFile
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.views.decorators.http import require_http_methods, require_POST

from viewer.ingest.service import IngestOutcome, ingest_upload

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

    200 whenever the file was processed, stored or refused alike: each result
    says what became of it and why (a refused file is an answer, not a failed
    request, so the browser console stays for real errors); 413 over the size
    limit, 400 without a file, 403 without the permission.
    """
    if _too_large(request):
        limit = settings.DICOM_MAX_UPLOAD_BYTES
        return JsonResponse({"detail": f"the file is larger than the limit of {limit} bytes"}, status=413)
    uploaded = request.FILES.get("file")
    if uploaded is None:
        return JsonResponse({"detail": "send one file in the form field 'file'"}, status=400)
    outcomes = _ingest(request, uploaded)
    body = {
        "results": [outcome_json(o) for o in outcomes],
        "summary": dict(Counter(o.status for o in outcomes)),
    }
    return JsonResponse(body)


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
