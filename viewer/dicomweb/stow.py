"""STOW-RS: POST /dicomweb/studies[/{study}] stores instances (PS3.18 10.5).

The request is `multipart/related; type="application/dicom"`, one Part 10 file
per part. The body is streamed to a temporary file under DICOM_MAX_UPLOAD_BYTES
and split without loading it (viewer.ingest.multipart); each part goes through
the one ingest service. The answer is application/dicom+json with
ReferencedSOPSequence (stored, and already-held duplicates, which count as
success) and FailedSOPSequence with a FailureReason per refused instance:

- 200 every instance stored (or already held), 202 some stored, 409 none stored
  (every part refused, e.g. all of another study than the URL's);
- 400 a malformed body, 413 too large, 415 not multipart/related of
  application/dicom, 401/403 not signed in / not allowed to add instances.

Signing in is that of every DICOMweb endpoint (viewer.dicomweb.http): token or
Basic clients need no CSRF token, a browser session must send one. Storing
needs the `viewer.add_instance` permission (radiologists and admins).
The reason for each refusal is in the audit trail and, for people running curl,
in a `Warning: 299` header; PS3.18 gives the body no place for text.
"""

from __future__ import annotations

import json
import re
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse

from viewer.auditing import IngestAuditFacts, audit_input_rejected
from viewer.dicomweb.http import DicomwebError, dicomweb_view, instance_url, study_url
from viewer.ingest.errors import FailureReason, Rejected
from viewer.ingest.multipart import MalformedMultipart, Part, TooManyParts, part_file, split_parts
from viewer.ingest.service import IngestOutcome, ingest_file
from viewer.ingest.spool import copy_capped, temporary_file
from viewer.store import is_valid_uid

INGEST_PERMISSION = "viewer.add_instance"
DICOM_JSON = "application/dicom+json"
_MAX_WARNINGS = 10


@dicomweb_view("POST")
def stow_studies(request: HttpRequest, study_uid: str | None = None) -> HttpResponse:
    """Stores the request's instances; into `study_uid` only, when the URL names a study."""
    if not request.user.has_perm(INGEST_PERMISSION):
        raise DicomwebError(
            403, "you may not store instances here (needs the viewer.add_instance permission)"
        )
    if study_uid is not None and not is_valid_uid(study_uid):
        raise DicomwebError(400, "the Study Instance UID is not a valid DICOM UID")
    _check_accept(request)
    boundary = _boundary(request)
    limit = settings.DICOM_MAX_UPLOAD_BYTES
    if int(request.META.get("CONTENT_LENGTH") or 0) > limit:
        raise DicomwebError(413, f"the request is larger than the limit of {limit} bytes")
    with temporary_file() as (handle, body):
        try:
            copy_capped(request, handle, limit=limit)  # type: ignore[arg-type]
        except Rejected as exc:
            raise DicomwebError(413, f"the request is {exc.reason}") from None
        handle.flush()
        try:
            parts = split_parts(body, boundary, max_parts=settings.DICOM_MAX_FILES_PER_UPLOAD)
        except MalformedMultipart as exc:
            raise DicomwebError(400, f"malformed multipart/related body: {exc}") from None
        except TooManyParts as exc:
            raise DicomwebError(413, str(exc)) from None
        outcomes = [
            _store_part(request, body, number, part, study_uid) for number, part in enumerate(parts, 1)
        ]
    return _response(request, outcomes, study_uid)


def _check_accept(request: HttpRequest) -> None:
    accept = request.headers.get("Accept", "")
    if accept and not re.search(r"application/dicom\+json|application/json|application/\*|\*/\*", accept):
        raise DicomwebError(406, f"the response is {DICOM_JSON}; the request accepts only {accept[:100]}")


def _boundary(request: HttpRequest) -> str:
    if request.content_type != "multipart/related":
        sent = request.content_type or "no Content-Type"
        raise DicomwebError(415, f'STOW-RS takes multipart/related; type="application/dicom", not {sent}')
    params = request.content_params or {}
    part_type = params.get("type", "application/dicom").split(";", 1)[0].strip().lower()
    if part_type != "application/dicom":
        raise DicomwebError(415, f"only application/dicom parts are stored, not {part_type}")
    boundary = params.get("boundary", "")
    if not boundary:
        raise DicomwebError(400, "the Content-Type names no boundary")
    return boundary


def _store_part(
    request: HttpRequest, body: Any, number: int, part: Part, study_uid: str | None
) -> IngestOutcome:
    name = f"part {number}"
    if part.content_type not in ("", "application/dicom"):
        return _refuse_part(request, name, f"{name} is {part.content_type}, not application/dicom")
    with part_file(body, part) as path:
        return ingest_file(
            source=path,
            name=name,
            origin="stow",
            user=request.user,
            request=request,
            expected_study_uid=study_uid,
        )


def _refuse_part(request: HttpRequest, name: str, reason: str) -> IngestOutcome:
    code = FailureReason.CANNOT_UNDERSTAND
    audit_input_rejected(
        facts=IngestAuditFacts(origin="stow"),
        reason=reason,
        failure_code=code,
        security=False,
        request=request,
    )
    return IngestOutcome(status="rejected", reason=reason, failure_code=code, name=name)


def _response(request: HttpRequest, outcomes: list[IngestOutcome], study_uid: str | None) -> HttpResponse:
    stored = [o for o in outcomes if o.status != "rejected"]
    failed = [o for o in outcomes if o.status == "rejected"]
    studies = {o.study_uid for o in stored}
    retrieve_study = study_uid or (studies.pop() if len(studies) == 1 else None)
    body: dict[str, Any] = {"00081190": _url(study_url(request, retrieve_study) if retrieve_study else None)}
    if failed:
        body["00081198"] = {"vr": "SQ", "Value": [_failed_item(o) for o in failed]}
    if stored:
        body["00081199"] = {"vr": "SQ", "Value": [_referenced_item(request, o) for o in stored]}
    status = 200 if not failed else 202 if stored else 409
    response = HttpResponse(json.dumps(body), status=status, content_type=DICOM_JSON)
    warnings = _warnings(outcomes)
    if warnings:
        response["Warning"] = warnings
    return response


def _uid(value: str) -> dict[str, Any]:
    return {"vr": "UI", "Value": [value]} if value else {"vr": "UI"}


def _url(value: str | None) -> dict[str, Any]:
    return {"vr": "UR", "Value": [value]} if value else {"vr": "UR"}


def _failed_item(outcome: IngestOutcome) -> dict[str, Any]:
    return {
        "00081150": _uid(outcome.sop_class_uid),
        "00081155": _uid(outcome.sop_instance_uid),
        "00081197": {"vr": "US", "Value": [outcome.failure_code or FailureReason.PROCESSING_FAILURE]},
    }


def _referenced_item(request: HttpRequest, outcome: IngestOutcome) -> dict[str, Any]:
    url = instance_url(request, outcome.study_uid, outcome.series_uid, outcome.sop_instance_uid)
    return {
        "00081150": _uid(outcome.sop_class_uid),
        "00081155": _uid(outcome.sop_instance_uid),
        "00081190": _url(url),
    }


def _warnings(outcomes: list[IngestOutcome]) -> str:
    """RFC 7234 warn-texts: duplicates, then the first refusals with their reasons."""
    texts = []
    duplicates = sum(o.status == "duplicate" for o in outcomes)
    if duplicates:
        texts.append(f"{duplicates} instance(s) were already stored")
    texts += [f"{o.name}: {o.reason}" for o in outcomes if o.status == "rejected"][:_MAX_WARNINGS]
    quoted = (re.sub(r'[^\x20-\x7e]|["\\]', "'", text)[:300] for text in texts)
    return ", ".join(f'299 overread "{text}"' for text in quoted)
