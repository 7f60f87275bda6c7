"""What the three writers share: ordering the source slices, copying them into the form
highdicom reads, and pinning the values highdicom would otherwise take from the clock or a
random number."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence

import numpy as np
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.sequence import Sequence as DicomSequence

from . import codes

# Changing this changes every UID derived here (dimension organisations, tracking UIDs).
_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://overread.invalid/derived/1")

# The Type 2 Patient and General Study attributes highdicom copies from the first source
# image by attribute access: one the source leaves out (ingest accepts that) is an
# AttributeError there, so the copies handed to highdicom have it, empty.
_TYPE_2_COPIED = (
    "PatientName",
    "PatientID",
    "PatientBirthDate",
    "PatientSex",
    "StudyDate",
    "StudyTime",
    "ReferringPhysicianName",
    "StudyID",
    "AccessionNumber",
)
_QUANTIZE_CHUNK_VALUES = 1 << 20  # float32 values quantize() works through at a time (4 MB)


class SourceUnsupported(ValueError):
    """The source images cannot carry this derived object (a SEG or Parametric Map of
    images without a Frame of Reference UID); the message says why and may be shown as is."""


def derived_uid(*parts: object) -> str:
    """A deterministic 2.25 UID named by `parts` (PS3.5 B.2), e.g. ("job", pk, "seg") for
    the objects of one inference job, so a redelivered job writes the same UIDs."""
    return f"2.25.{uuid.uuid5(_NAMESPACE, '/'.join(map(str, parts))).int}"


def ordered_source(
    source: Sequence[Dataset], slice_uids: Sequence[str] | None, depth: int, shape: tuple[int, int]
) -> list[Dataset]:
    """The source slices in array order, as copies for highdicom (`for_highdicom`):
    array[k] belongs to slice_uids[k] (the engine's Geometry.sop_instance_uids), or to
    source[k] when slice_uids is None. SourceUnsupported when a slice has no Frame of
    Reference UID: the SEG and the Parametric Map IODs require one."""
    if not source:
        raise ValueError("at least one source image is required")
    if slice_uids is None:
        ordered = list(source)
    else:
        by_uid = {str(ds.SOPInstanceUID): ds for ds in source}
        missing = [uid for uid in slice_uids if uid not in by_uid]
        if missing or len(set(slice_uids)) != len(slice_uids):
            raise ValueError(f"slice_uids must name each source instance once; not in source: {missing[:3]}")
        ordered = [by_uid[uid] for uid in slice_uids]
    if len(ordered) != depth:
        raise ValueError(f"the array has {depth} slices but {len(ordered)} source images were given")
    if len({str(ds.SeriesInstanceUID) for ds in ordered}) != 1:
        raise ValueError("the source images must all belong to one series")
    for ds in ordered:
        if (int(ds.Rows), int(ds.Columns)) != shape:
            raise ValueError(f"source {ds.SOPInstanceUID} is {ds.Rows}x{ds.Columns}, the array {shape}")
    without = [str(ds.SOPInstanceUID) for ds in ordered if not ds.get("FrameOfReferenceUID")]
    if without:
        # A SEG's and a Parametric Map's frames are placed in the sources' frame of reference.
        which = (
            "the source images have"
            if len(without) == len(ordered)
            else f"{len(without)} of the {len(ordered)} source images (first {without[0]}) have"
        )
        raise SourceUnsupported(
            f"{which} no Frame of Reference UID (0020,0052), which a Segmentation or Parametric Map needs"
        )
    return for_highdicom(ordered)


def for_highdicom(source: Sequence[Dataset]) -> list[Dataset]:
    """Copies of the source images with every Type 2 attribute highdicom reads present (empty
    where the source has none). The caller's datasets stay as they were; each copy is a
    dictionary of its own over the same elements, so the pixel data is not copied."""
    copies = []
    for ds in source:
        copied = Dataset()
        copied.update(ds)
        for keyword in _TYPE_2_COPIED:
            if keyword not in copied:
                setattr(copied, keyword, "")
        copies.append(copied)
    return copies


def quantize(values: np.ndarray, top: int, dtype: type[np.unsignedinteger]) -> np.ndarray:
    """round(clip(values, 0, 1) * top) as `dtype`, a few slices at a time through one small
    float32 buffer: a study's heatmap is 300 MB, and a working copy of it all would cost as
    much memory again and a pass over fresh pages."""
    if values.ndim == 0 or len(values) == 0:
        return np.asarray(np.rint(np.clip(values, 0.0, 1.0) * top)).astype(dtype)
    out = np.empty(values.shape, dtype=dtype)
    rows = max(1, _QUANTIZE_CHUNK_VALUES // (values.size // len(values) or 1))
    work = np.empty((min(rows, len(values)), *values.shape[1:]), dtype=np.float32)
    for start in range(0, len(values), rows):
        chunk = work[: min(rows, len(values) - start)]
        np.clip(values[start : start + len(chunk)], 0.0, 1.0, out=chunk)
        chunk *= top
        np.rint(chunk, out=chunk)
        out[start : start + len(chunk)] = chunk
    return out


def check_volume(array: np.ndarray, name: str) -> None:
    if array.ndim != 3:
        raise ValueError(f"{name} must be a (z, y, x) array, not shape {array.shape}")


def pin(ds: Dataset, *, content_datetime: dt.datetime, sop_uid: str) -> Dataset:
    """Makes the object a function of its arguments: creation and contribution times follow
    content_datetime, and dimension organisation UIDs derive from the SOP Instance UID."""
    date, time = content_datetime.strftime("%Y%m%d"), content_datetime.strftime("%H%M%S.%f")
    ds.InstanceCreationDate, ds.InstanceCreationTime = date, time
    ds.SeriesDate, ds.SeriesTime = date, time
    if "ContentDate" in ds:
        ds.ContentDate, ds.ContentTime = date, time
    for item in ds.get("ContributingEquipmentSequence", []):
        # highdicom's own entry says "now"; the source's acquisition entry keeps its time.
        if item.get("ManufacturerModelName") == "highdicom" and "ContributionDateTime" in item:
            item.ContributionDateTime = content_datetime.strftime("%Y%m%d%H%M%S.%f")
    for item in ds.get("VerifyingObserverSequence", []):
        item.VerificationDateTime = content_datetime.strftime("%Y%m%d%H%M%S.%f")
    replaced: dict[str, str] = {}

    def _dimension_uid(dataset: Dataset, element: DataElement) -> None:
        if element.keyword == "DimensionOrganizationUID":
            old = str(element.value)
            replaced.setdefault(old, derived_uid("dimension-organisation", sop_uid, len(replaced)))
            element.value = replaced[old]

    ds.walk(_dimension_uid)
    _declare_local_scheme(ds)
    _unicode_when_needed(ds)
    return ds


_TEXT_VRS = frozenset({"LO", "LT", "PN", "SH", "ST", "UC", "UT"})


def _unicode_when_needed(ds: Dataset) -> None:
    """Declares UTF-8 (ISO_IR 192) when any text is beyond ASCII, e.g. a reader's impression
    or name: the source's character set (often none, i.e. ASCII) need not hold it."""
    found = False

    def _look(dataset: Dataset, element: DataElement) -> None:
        nonlocal found
        if found or element.VR not in _TEXT_VRS or element.value is None:
            return
        values = element.value if isinstance(element.value, MultiValue) else [element.value]
        found = any(not str(value).isascii() for value in values)

    ds.walk(_look)
    if found:
        ds.SpecificCharacterSet = "ISO_IR 192"


def _declare_local_scheme(ds: Dataset) -> None:
    """Adds the 99OVERREAD declaration when any code in the object uses it."""
    used = False

    def _look(dataset: Dataset, element: DataElement) -> None:
        nonlocal used
        used = used or (element.keyword == "CodingSchemeDesignator" and element.value == codes.LOCAL_SCHEME)

    ds.walk(_look)
    if used:
        ds.CodingSchemeIdentificationSequence = DicomSequence([codes.local_scheme_item()])
