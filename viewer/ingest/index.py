"""A validated instance turned into index rows: Patient, Study, Series and Instance fields.

`Instance.metadata` is the data set as DICOM JSON (PS3.18 F.2) for WADO-RS
metadata, with the transfer syntax (0002,0010) added for OHIF. Pixel data,
other top-level binary values over 1 KiB and any top-level value over 64 KiB
become relative BulkDataURIs ("bulkdata/7FE00010"), which the read side makes
absolute; they are never read into memory here. Values nested in sequences stay
inline (LUTs, small ICC profiles), so every BulkDataURI names a top-level tag.
Metadata past 16 MiB (a hostile sequence) refuses the instance.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from typing import Any

from pydicom.datadict import dictionary_VR
from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue

from viewer.ingest.errors import FailureReason, Rejected
from viewer.ingest.parse import PIXEL_TAGS
from viewer.ingest.validate import ValidInstance
from viewer.store import is_valid_uid

BULK_DATA_THRESHOLD = 1024
INLINE_LIMIT = 64 * 1024
MAX_METADATA_BYTES = 16 * 1024 * 1024
_BINARY_VRS = {"OB", "OD", "OF", "OL", "OV", "OW", "UN", "OB or OW", "US or OW", "US or SS or OW"}


def instance_metadata(instance: ValidInstance) -> dict[str, Any]:
    """The data set as compact DICOM JSON, bulk data by relative reference."""
    ds = instance.dataset
    metadata: dict[str, Any] = {}
    for tag in ds.keys():  # noqa: SIM118 (the tags, not the elements)
        if tag.element == 0:  # group lengths describe the original encoding only
            continue
        key = f"{int(tag):08X}"
        raw = ds.get_item(tag, keep_deferred=True)  # never read bulk data into memory
        vr = _vr(raw, instance)
        length = 0 if vr == "SQ" else _length(raw)
        if (
            int(tag) in PIXEL_TAGS
            or length > INLINE_LIMIT
            or (vr in _BINARY_VRS and length > BULK_DATA_THRESHOLD)
        ):
            metadata[key] = {"vr": vr, "BulkDataURI": f"bulkdata/{key}"}
            continue
        try:
            metadata[key] = ds[tag].to_json_dict(bulk_data_element_handler=None, bulk_data_threshold=2**31)
        except Exception as exc:  # a value that cannot be converted (bad VR, bad characters)
            raise Rejected(f"element {tag} cannot be read: {exc}", FailureReason.CANNOT_UNDERSTAND) from None
    metadata["00020010"] = {"vr": "UI", "Value": [instance.transfer_syntax_uid]}
    return _compact(metadata)


def _vr(raw: DataElement | RawDataElement, instance: ValidInstance) -> str:
    vr = raw.VR
    if vr is None:  # implicit VR: the dictionary's
        try:
            vr = dictionary_VR(raw.tag)
        except KeyError:
            vr = "UN"
    if int(raw.tag) == 0x7FE00010 and vr not in ("OB", "OW"):
        encapsulated = instance.pixel_element is not None and instance.pixel_element.length == 0xFFFFFFFF
        bits = instance.pixels.bits_allocated if instance.pixels else 16
        vr = "OB" if encapsulated or bits <= 8 else "OW"
    elif vr in ("OB or OW", "US or OW", "US or SS or OW"):
        vr = "OW"
    return str(vr)


def _length(raw: DataElement | RawDataElement) -> int:
    if isinstance(raw, RawDataElement):
        return int(raw.length) if raw.length != 0xFFFFFFFF else 0
    value = raw.value
    return len(value) if isinstance(value, bytes | bytearray) else 0


def _compact(metadata: dict[str, Any]) -> dict[str, Any]:
    """JSON without NaN or infinities (PostgreSQL's jsonb refuses them: they become null), bounded."""
    try:
        text = json.dumps(metadata, allow_nan=False)
    except ValueError:
        metadata = json.loads(json.dumps(metadata), parse_constant=lambda _: None)
        text = json.dumps(metadata)
    if len(text) > MAX_METADATA_BYTES:
        raise Rejected(
            f"the data set's attributes take {len(text)} bytes as JSON, more than {MAX_METADATA_BYTES}",
            FailureReason.OUT_OF_RESOURCES,
            security=True,
        )
    return metadata


# --- Row fields -----------------------------------------------------------------------
def patient_fields(ds: Dataset) -> dict[str, Any]:
    patient_id = _text(ds, "PatientID", 1000)
    if len(patient_id) > 64:
        raise Rejected("Patient ID (0010,0020) is longer than 64 characters", FailureReason.DOES_NOT_MATCH)
    return {
        "patient_id": patient_id,
        "issuer": _text(ds, "IssuerOfPatientID", 64),
        "name": _text(ds, "PatientName", 324),
        "birth_date": _text(ds, "PatientBirthDate", 8),
        "sex": _text(ds, "PatientSex", 16),
    }


def study_fields(ds: Dataset) -> dict[str, Any]:
    return {
        "study_date": _date(_text(ds, "StudyDate", 8)),
        "study_time": _text(ds, "StudyTime", 16),
        "accession_number": _text(ds, "AccessionNumber", 16),
        "study_id": _text(ds, "StudyID", 16),
        "description": _text(ds, "StudyDescription", 64),
        "referring_physician": _text(ds, "ReferringPhysicianName", 324),
    }


def series_fields(ds: Dataset) -> dict[str, Any]:
    frame_of_reference = _text(ds, "FrameOfReferenceUID", 64)
    return {
        "modality": _text(ds, "Modality", 16).upper(),
        "series_number": _integer(ds, "SeriesNumber"),
        "description": _text(ds, "SeriesDescription", 64),
        "body_part": _text(ds, "BodyPartExamined", 64),
        "manufacturer": _text(ds, "Manufacturer", 64),
        "frame_of_reference_uid": frame_of_reference if is_valid_uid(frame_of_reference) else "",
    }


def instance_fields(instance: ValidInstance) -> dict[str, Any]:
    ds = instance.dataset
    shared = _first_item(ds, "SharedFunctionalGroupsSequence")
    first_frame = _first_item(ds, "PerFrameFunctionalGroupsSequence")
    measures = _first_item(shared, "PixelMeasuresSequence") or _first_item(
        first_frame, "PixelMeasuresSequence"
    )
    orientation = _first_item(shared, "PlaneOrientationSequence") or _first_item(
        first_frame, "PlaneOrientationSequence"
    )
    position = _first_item(first_frame, "PlanePositionSequence")
    pixels = instance.pixels
    return {
        "sop_instance_uid": instance.sop_instance_uid,
        "sop_class_uid": instance.sop_class_uid,
        "instance_number": _integer(ds, "InstanceNumber"),
        "transfer_syntax_uid": instance.transfer_syntax_uid,
        "rows": pixels.rows if pixels else None,
        "columns": pixels.columns if pixels else None,
        "number_of_frames": pixels.frames if pixels else 0,
        "pixel_spacing": _floats(ds, "PixelSpacing", 2) or _floats(measures, "PixelSpacing", 2),
        "slice_thickness": _float(ds, "SliceThickness") or _float(measures, "SliceThickness"),
        "image_position": _floats(ds, "ImagePositionPatient", 3)
        or _floats(position, "ImagePositionPatient", 3),
        "image_orientation": (
            _floats(ds, "ImageOrientationPatient", 6) or _floats(orientation, "ImageOrientationPatient", 6)
        ),
        "frame_offsets": [[list(fragment) for fragment in frame] for frame in instance.frame_offsets],
        "metadata": instance_metadata(instance),
    }


def _text(ds: Dataset | None, keyword: str, limit: int) -> str:
    try:
        value = ds.get(keyword) if ds is not None else None
    except Exception:  # an unreadable optional value is left out, not fatal
        return ""
    if value is None:
        return ""
    return str(value).replace("\x00", "").strip()[:limit]


def _integer(ds: Dataset, keyword: str) -> int | None:
    try:
        number = int(str(ds.get(keyword, "")).strip())
    except (TypeError, ValueError):
        return None
    return number if -(2**31) <= number < 2**31 else None


def _float(ds: Dataset | None, keyword: str) -> float | None:
    values = _floats(ds, keyword, 1)
    return values[0] if values else None


def _floats(ds: Dataset | None, keyword: str, count: int) -> list[float] | None:
    try:
        value = ds.get(keyword) if ds is not None else None
    except Exception:  # an unreadable optional value: the field stays empty
        return None
    if value is None or value == "":
        return None
    items = list(value) if isinstance(value, MultiValue | list | tuple) else [value]
    try:
        values = [float(item) for item in items]
    except (TypeError, ValueError):  # malformed decimal strings
        return None
    if len(values) != count or not all(math.isfinite(v) for v in values):
        return None
    return values


def _first_item(ds: Dataset | None, keyword: str) -> Dataset | None:
    try:
        sequence = ds.get(keyword) if ds is not None else None
        return sequence[0] if sequence else None
    except Exception:  # a malformed sequence only costs us the optional geometry
        return None


def _date(value: str) -> dt.date | None:
    try:
        return dt.datetime.strptime(value, "%Y%m%d").date()
    except ValueError:
        return None
