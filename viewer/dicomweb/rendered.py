"""WADO-RS rendered images and thumbnails (PS3.18 10.4.1.1.3, 8.3.5.1): PNG or JPEG.

Grey-scale frames go through the modality LUT (rescale), then a window: the
`window=center,width[,linear|linear-exact|sigmoid]` parameter, else the file's
first Window Center/Width (or its VOI LUT), else the frame's minimum to
maximum; MONOCHROME1 is inverted so that it looks as intended. Colour frames
are scaled to 8 bits; palette colour goes through its palette. A multi-frame
instance renders its first frame; a series or study renders one representative
image (the middle instance's middle frame).
"""

from __future__ import annotations

import io

import numpy as np
import pydicom
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseBase
from PIL import Image, ImageOps
from pydicom.dataset import Dataset
from pydicom.pixels import apply_color_lut, apply_modality_lut, apply_voi_lut

from viewer import selectors
from viewer.decode import FrameError, FrameSource
from viewer.dicomweb.auditing import audit_study_accessed
from viewer.dicomweb.http import BadRequest, NotFound, dicomweb_view
from viewer.dicomweb.lookup import (
    INSTANCE_FIELDS,
    frame_numbers,
    instance_for_request,
    series_for_request,
    study_for_request,
)
from viewer.dicomweb.negotiation import rendered_media_type
from viewer.dicomweb.wado import CACHE_CONTROL
from viewer.dicomweb.windowing import Window, parse_rendering, windowed
from viewer.models import Instance
from viewer.store import store_open

THUMBNAIL_SIZE = (128, 128)


@dicomweb_view("GET")
def instance_rendered(
    request: HttpRequest, study_uid: str, series_uid: str, sop_uid: str
) -> HttpResponseBase:
    """GET .../instances/{instance}/rendered"""
    return _render(request, instance_for_request(request, study_uid, series_uid, sop_uid), 1, thumbnail=False)


@dicomweb_view("GET")
def instance_thumbnail(
    request: HttpRequest, study_uid: str, series_uid: str, sop_uid: str
) -> HttpResponseBase:
    """GET .../instances/{instance}/thumbnail"""
    return _render(request, instance_for_request(request, study_uid, series_uid, sop_uid), 1, thumbnail=True)


@dicomweb_view("GET")
def frame_rendered(
    request: HttpRequest, study_uid: str, series_uid: str, sop_uid: str, frame_list: str
) -> HttpResponseBase:
    """GET .../frames/{frame}/rendered (one frame)"""
    instance = instance_for_request(request, study_uid, series_uid, sop_uid)
    return _render(request, instance, _single_frame(frame_list, instance), thumbnail=False)


@dicomweb_view("GET")
def frame_thumbnail(
    request: HttpRequest, study_uid: str, series_uid: str, sop_uid: str, frame_list: str
) -> HttpResponseBase:
    """GET .../frames/{frame}/thumbnail (one frame)"""
    instance = instance_for_request(request, study_uid, series_uid, sop_uid)
    return _render(request, instance, _single_frame(frame_list, instance), thumbnail=True)


@dicomweb_view("GET")
def series_rendered(request: HttpRequest, study_uid: str, series_uid: str) -> HttpResponseBase:
    """GET /studies/{study}/series/{series}/rendered: the series' representative image."""
    instance = _representative(
        Instance.objects.filter(series=series_for_request(request, study_uid, series_uid))
    )
    return _render(request, instance, (instance.number_of_frames + 1) // 2, thumbnail=False)


@dicomweb_view("GET")
def series_thumbnail(request: HttpRequest, study_uid: str, series_uid: str) -> HttpResponseBase:
    """GET /studies/{study}/series/{series}/thumbnail"""
    instance = _representative(
        Instance.objects.filter(series=series_for_request(request, study_uid, series_uid))
    )
    return _render(request, instance, (instance.number_of_frames + 1) // 2, thumbnail=True)


@dicomweb_view("GET")
def study_thumbnail(request: HttpRequest, study_uid: str) -> HttpResponseBase:
    """GET /studies/{study}/thumbnail: the first series' representative image."""
    study = study_for_request(request, study_uid)
    first_series = (
        selectors.series_queryset_for_user(user=request.user)
        .filter(study=study, instances__number_of_frames__gt=0)
        .order_by("series_number", "pk")
        .first()
    )
    if first_series is None:
        raise NotFound(f"study {study_uid} has no images")
    instance = _representative(Instance.objects.filter(series=first_series))
    return _render(request, instance, (instance.number_of_frames + 1) // 2, thumbnail=True)


def _single_frame(frame_list: str, instance: Instance) -> int:
    numbers = frame_numbers(frame_list, instance)
    if len(numbers) != 1:
        raise BadRequest("rendered frames are served one at a time")
    return numbers[0]


def _representative(rows: QuerySet[Instance]) -> Instance:
    images = (
        rows.filter(number_of_frames__gt=0).select_related("series__study__patient").only(*INSTANCE_FIELDS)
    )
    ordered = list(images.order_by("instance_number", "pk").values_list("pk", flat=True))
    if not ordered:
        raise NotFound("no images to render")
    return images.get(pk=ordered[len(ordered) // 2])


def _render(request: HttpRequest, instance: Instance, number: int, *, thumbnail: bool) -> HttpResponse:
    media_type = rendered_media_type(request.headers.get("Accept"))
    options = parse_rendering(request.GET, thumbnail=thumbnail)
    if instance.number_of_frames == 0:
        raise NotFound(f"instance {instance.sop_instance_uid} has no pixel data")
    audit_study_accessed(request, instance.series.study)
    with FrameSource(instance) as source:
        array = source.array(number)
    image = render_image(array, _header(instance), window=options.window)
    if options.viewport or thumbnail:
        image = ImageOps.contain(image, options.viewport or THUMBNAIL_SIZE, Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    if media_type == "image/jpeg":
        image.save(buffer, "JPEG", quality=options.quality)
    else:
        image.save(buffer, "PNG", compress_level=3)
    response = HttpResponse(buffer.getvalue(), content_type=media_type)
    response["Vary"] = "Accept"
    response["Cache-Control"] = CACHE_CONTROL
    return response


def render_image(array: np.ndarray, header: Dataset, *, window: Window | None) -> Image.Image:
    """One decoded frame as an 8-bit grey or RGB image for display."""
    photometric = str(header.get("PhotometricInterpretation", "MONOCHROME2"))
    if photometric == "PALETTE COLOR":
        array = apply_color_lut(array, header)
    if array.ndim == 3:
        return Image.fromarray(_to_8_bit(array, _colour_max(array, header)), "RGB")
    values = apply_modality_lut(array, header).astype(np.float64)
    if window is None and "WindowCenter" not in header and "VOILUTSequence" in header:
        values = apply_voi_lut(values, header).astype(np.float64)
    scaled = windowed(values, window or _file_window(header, values))
    if photometric == "MONOCHROME1":
        scaled = 1.0 - scaled
    return Image.fromarray(np.round(scaled * 255).astype(np.uint8), "L")


def _file_window(header: Dataset, values: np.ndarray) -> Window:
    """The file's first Window Center/Width (and VOI LUT Function), else the values' whole range."""
    centre, width = _first_number(header.get("WindowCenter")), _first_number(header.get("WindowWidth"))
    if centre is not None and width is not None and width > 0:
        function = str(header.get("VOILUTFunction", "LINEAR")).lower().replace("_", "-")
        return Window(centre, width, function if function in Window.FUNCTIONS else "linear")
    low, high = float(values.min()), float(values.max())
    return Window((low + high) / 2, max(high - low, 1.0), "linear-exact")


def _first_number(value: object) -> float | None:
    if isinstance(value, pydicom.multival.MultiValue):
        value = value[0] if len(value) else None
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None


def _colour_max(array: np.ndarray, header: Dataset) -> float:
    if array.dtype == np.uint8:
        return 255.0
    if header.get("PhotometricInterpretation") == "PALETTE COLOR":
        return float(2 ** (8 * array.dtype.itemsize) - 1)
    return float(2 ** int(header.get("BitsStored", 8)) - 1)


def _to_8_bit(array: np.ndarray, maximum: float) -> np.ndarray:
    if array.dtype == np.uint8:
        return array
    return np.clip(np.round(array.astype(np.float64) * (255.0 / maximum)), 0, 255).astype(np.uint8)


def _header(instance: Instance) -> Dataset:
    """The instance's attributes up to its pixel data (palettes and LUTs included)."""
    try:
        with store_open(instance.storage_key) as handle:
            return pydicom.dcmread(handle, stop_before_pixels=True)
    except Exception as exc:  # pydicom raises many kinds on a damaged file
        raise FrameError(f"cannot read the stored file: {exc}") from exc
