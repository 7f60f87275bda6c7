"""WADO-RS metadata, frames and bulk data (PS3.18 10.4).

Metadata is the stored DICOM JSON, handed over by the database as text and
sent with absolute BulkDataURIs. Frames are read with a seek and a read at
their recorded offsets and sent as they are stored, or decoded when the client
asks for uncompressed pixels; every part names its transfer syntax.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import pydicom
from django.db.models import QuerySet, TextField
from django.db.models.functions import Cast
from django.http import HttpRequest, HttpResponse, HttpResponseBase, StreamingHttpResponse
from django.views.decorators.gzip import gzip_page

from viewer import selectors
from viewer.decode import PIXEL_KEYWORDS, FrameError, FrameSource
from viewer.dicomweb.auditing import audit_study_accessed
from viewer.dicomweb.dicomjson import DICOM_JSON, absolute_bulkdata
from viewer.dicomweb.http import NotFound, dicomweb_view, instance_url
from viewer.dicomweb.lookup import (
    checked_tag,
    frame_numbers,
    instance_for_request,
    series_for_request,
    study_for_request,
)
from viewer.dicomweb.multipart import multipart_response
from viewer.dicomweb.negotiation import (
    OCTET_STREAM,
    FrameEncoding,
    accepts_json,
    frame_encoding,
    parse_accept,
)
from viewer.models import Instance
from viewer.store import store_open

# Stored objects never change (an instance is stored once), so clients may keep
# what they fetched; "private": only the user's own browser, never a shared cache.
CACHE_CONTROL = "private, max-age=3600"


@gzip_page
@dicomweb_view("GET")
def study_metadata(request: HttpRequest, study_uid: str) -> HttpResponseBase:
    """GET /studies/{study}/metadata: every instance's metadata, streamed."""
    accepts_json(request.headers.get("Accept"))
    study = study_for_request(request, study_uid)
    audit_study_accessed(request, study)
    rows = selectors.instance_queryset_for_user(user=request.user).filter(series__study=study)
    return StreamingHttpResponse(
        _json_array(_metadata_texts(request, rows, study_uid)), content_type=DICOM_JSON
    )


@gzip_page
@dicomweb_view("GET")
def series_metadata(request: HttpRequest, study_uid: str, series_uid: str) -> HttpResponseBase:
    """GET /studies/{study}/series/{series}/metadata"""
    accepts_json(request.headers.get("Accept"))
    series = series_for_request(request, study_uid, series_uid)
    audit_study_accessed(request, series.study)
    rows = Instance.objects.filter(series=series)
    return HttpResponse(
        b"".join(_json_array(_metadata_texts(request, rows, study_uid))), content_type=DICOM_JSON
    )


@gzip_page
@dicomweb_view("GET")
def instance_metadata(
    request: HttpRequest, study_uid: str, series_uid: str, sop_uid: str
) -> HttpResponseBase:
    """GET /studies/{study}/series/{series}/instances/{instance}/metadata"""
    accepts_json(request.headers.get("Accept"))
    instance = instance_for_request(request, study_uid, series_uid, sop_uid)
    audit_study_accessed(request, instance.series.study)
    rows = Instance.objects.filter(pk=instance.pk)
    return HttpResponse(
        b"".join(_json_array(_metadata_texts(request, rows, study_uid))), content_type=DICOM_JSON
    )


def _metadata_texts(request: HttpRequest, rows: QuerySet[Instance], study_uid: str) -> Iterator[str]:
    texts = (
        rows.order_by("series__series_number", "series", "instance_number", "pk")
        .annotate(text=Cast("metadata", TextField()))
        .values_list("series__series_uid", "sop_instance_uid", "text")
    )
    for series_uid, sop_uid, text in texts.iterator(chunk_size=500):
        yield absolute_bulkdata(text, instance_url(request, study_uid, series_uid, sop_uid))


def _json_array(items: Iterable[str]) -> Iterator[bytes]:
    yield b"["
    for index, item in enumerate(items):
        yield (b"," if index else b"") + item.encode()
    yield b"]"


@dicomweb_view("GET")
def frames(
    request: HttpRequest, study_uid: str, series_uid: str, sop_uid: str, frame_list: str
) -> HttpResponseBase:
    """GET .../instances/{instance}/frames/{frame list}: multipart/related, one part per frame."""
    instance = instance_for_request(request, study_uid, series_uid, sop_uid)
    numbers = frame_numbers(frame_list, instance)
    encoding = frame_encoding(request.headers.get("Accept"), instance.transfer_syntax_uid)
    audit_study_accessed(request, instance.series.study)
    return frames_response(instance, numbers, encoding)


def frames_response(instance: Instance, numbers: list[int], encoding: FrameEncoding) -> HttpResponseBase:
    """The frames as multipart/related; the first is read before answering, so a
    damaged file gives an error status rather than a broken stream."""
    part_type = f"{encoding.part_type}; transfer-syntax={encoding.transfer_syntax_uid}"
    source = FrameSource(instance)
    read = source.uncompressed if encoding.transcode else source.stored
    try:
        first = read(numbers[0])
    except BaseException:
        source.close()
        raise
    if len(numbers) == 1:
        source.close()
        response = multipart_response([(part_type, first)], encoding.part_type, stream=False)
    else:

        def parts() -> Iterator[tuple[str, bytes]]:
            with source:
                yield part_type, first
                for number in numbers[1:]:
                    yield part_type, read(number)

        response = multipart_response(parts(), encoding.part_type, stream=True)
    response["Vary"] = "Accept"
    response["Cache-Control"] = CACHE_CONTROL
    return response


@dicomweb_view("GET")
def bulkdata(
    request: HttpRequest, study_uid: str, series_uid: str, sop_uid: str, tag: str
) -> HttpResponseBase:
    """GET .../instances/{instance}/bulkdata/{tag}: a top-level element's value.

    Pixel data is answered as all its frames (as the frames resource would,
    honouring the same Accept header).
    """
    tag = checked_tag(tag)
    instance = instance_for_request(request, study_uid, series_uid, sop_uid)
    if tag in PIXEL_KEYWORDS:
        if instance.number_of_frames == 0:
            raise NotFound(f"instance {instance.sop_instance_uid} has no pixel data")
        numbers = list(range(1, instance.number_of_frames + 1))
        encoding = frame_encoding(request.headers.get("Accept"), instance.transfer_syntax_uid)
        audit_study_accessed(request, instance.series.study)
        return frames_response(instance, numbers, encoding)
    value = _element_bytes(instance, int(tag, 16))
    audit_study_accessed(request, instance.series.study)
    response: HttpResponseBase
    if _wants_single_part(request.headers.get("Accept")):
        response = HttpResponse(value, content_type=OCTET_STREAM)
    else:
        response = multipart_response([(OCTET_STREAM, value)], OCTET_STREAM, stream=False)
    response["Cache-Control"] = CACHE_CONTROL
    return response


def _element_bytes(instance: Instance, tag: int) -> bytes:
    # Only what the metadata sends as bulk data is served here; the rest is in the metadata.
    if "BulkDataURI" not in instance.metadata.get(f"{tag:08X}", {}):
        raise NotFound(f"instance {instance.sop_instance_uid} has no bulk data {tag:08X}")
    try:
        with store_open(instance.storage_key) as handle:
            ds = pydicom.dcmread(handle, stop_before_pixels=True)
    except Exception as exc:  # pydicom raises many kinds on a damaged file
        raise FrameError(f"cannot read the stored file: {exc}") from exc
    if tag not in ds:
        raise NotFound(f"instance {instance.sop_instance_uid} has no element {tag:08X}")
    raw = ds.get_item(tag)
    value = getattr(raw, "value", None)
    if not isinstance(value, bytes):
        raise NotFound(f"element {tag:08X} is not bulk data")
    return value


def _wants_single_part(accept: str | None) -> bool:
    first = parse_accept(accept)[0]
    return first.media_type == OCTET_STREAM
