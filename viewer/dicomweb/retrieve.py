"""WADO-RS retrieval of whole instances (PS3.18 10.4.1): Part 10 files in multipart/related.

The stored originals are streamed in chunks as they are, one part each, so a
study of any size goes out in constant memory.
"""

from __future__ import annotations

from collections.abc import Iterator

from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponseBase

from viewer import selectors
from viewer.dicomweb.auditing import audit_study_accessed
from viewer.dicomweb.http import dicomweb_view
from viewer.dicomweb.lookup import instance_for_request, series_for_request, study_for_request
from viewer.dicomweb.multipart import Part, multipart_response
from viewer.dicomweb.negotiation import DICOM, instance_transfer_syntax
from viewer.models import Instance
from viewer.store import store_open

CHUNK_SIZE = 1 << 20


def retrieve_study(request: HttpRequest, study_uid: str) -> HttpResponseBase:
    """GET /studies/{study} (dispatched with STOW-RS by viewer.dicomweb.views.study)."""
    study = study_for_request(request, study_uid)
    rows = selectors.instance_queryset_for_user(user=request.user).filter(series__study=study)
    _check_accept(request, rows)
    audit_study_accessed(request, study)
    return _files_response(rows)


@dicomweb_view("GET")
def retrieve_series(request: HttpRequest, study_uid: str, series_uid: str) -> HttpResponseBase:
    """GET /studies/{study}/series/{series}"""
    series = series_for_request(request, study_uid, series_uid)
    rows = Instance.objects.filter(series=series)
    _check_accept(request, rows)
    audit_study_accessed(request, series.study)
    return _files_response(rows)


@dicomweb_view("GET")
def retrieve_instance(
    request: HttpRequest, study_uid: str, series_uid: str, sop_uid: str
) -> HttpResponseBase:
    """GET /studies/{study}/series/{series}/instances/{instance}"""
    instance = instance_for_request(request, study_uid, series_uid, sop_uid)
    rows = Instance.objects.filter(pk=instance.pk)
    _check_accept(request, rows)
    audit_study_accessed(request, instance.series.study)
    return _files_response(rows)


def _check_accept(request: HttpRequest, rows: QuerySet[Instance]) -> None:
    accept = request.headers.get("Accept")
    for transfer_syntax in rows.order_by().values_list("transfer_syntax_uid", flat=True).distinct():
        instance_transfer_syntax(accept, transfer_syntax)


def _files_response(rows: QuerySet[Instance]) -> HttpResponseBase:
    files = rows.order_by("series__series_number", "series", "instance_number", "pk").values_list(
        "storage_key", "transfer_syntax_uid"
    )

    def parts() -> Iterator[Part]:
        for key, transfer_syntax in files.iterator(chunk_size=200):
            yield f"{DICOM}; transfer-syntax={transfer_syntax}", _file_chunks(key)

    return multipart_response(parts(), DICOM, stream=True)


def _file_chunks(key: str) -> Iterator[bytes]:
    with store_open(key) as handle:
        while chunk := handle.read(CHUNK_SIZE):
            yield chunk
