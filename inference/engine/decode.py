"""From a series' DICOM datasets to a volume in Hounsfield units, or an InputError saying why not.

Slices are ordered by their position along the slice normal (the cross product of the row and
column directions of ImageOrientationPatient), ascending: slice k lies at
`origin + k * spacing_z * normal`. Neither InstanceNumber nor the input order is trusted.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import pairwise

import numpy as np
from pydicom.dataset import Dataset
from pydicom.uid import UID

from inference.engine.types import Geometry, InputError, InputSpec, Volume

_PIXEL_KEYWORDS = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")
_GEOMETRY_KEYWORDS = ("ImagePositionPatient", "ImageOrientationPatient", "PixelSpacing")
_ORIENTATION_TOLERANCE = 1e-4
_POSITION_TOLERANCE_MM = 0.01  # slices closer than this along the normal are the same position
_GAP_FACTOR = 1.5  # a step longer than this many median spacings means slices are missing


def _describe(ds: Dataset, index: int) -> str:
    uid = ds.get("SOPInstanceUID", "")
    return f"instance {index + 1} ({uid})" if uid else f"instance {index + 1}"


def _sop_class_name(uid: str) -> str:
    name = UID(uid).name
    return f"{name} ({uid})" if name != uid else uid


def _check_instances(datasets: Sequence[Dataset], spec: InputSpec) -> None:
    """What each instance must be on its own: an accepted image with pixels and a position in
    a frame of reference."""
    accepted = ", ".join(_sop_class_name(uid) for uid in spec.sop_class_uids)
    for index, ds in enumerate(datasets):
        sop_class = str(ds.get("SOPClassUID", ""))
        if sop_class not in spec.sop_class_uids:
            modality = ds.get("Modality", "unknown")
            raise InputError(
                f"{_describe(ds, index)} is a {_sop_class_name(sop_class) or 'object without a SOP class'} "
                f"(modality {modality}); this model reads only {accepted}."
            )
        modality = str(ds.get("Modality", ""))
        if modality != spec.modality:
            raise InputError(
                f"{_describe(ds, index)} has modality {modality or 'unknown'}; "
                f"this model reads {spec.modality} only."
            )
        if not any(keyword in ds for keyword in _PIXEL_KEYWORDS):
            raise InputError(f"{_describe(ds, index)} has no pixel data.")
        if int(ds.get("NumberOfFrames", 1) or 1) != 1:
            raise InputError(f"{_describe(ds, index)} has {ds.NumberOfFrames} frames; expected one a slice.")
        missing = [k for k in _GEOMETRY_KEYWORDS if k not in ds]
        if missing:
            raise InputError(f"{_describe(ds, index)} lacks {', '.join(missing)}, so its place is unknown.")
        if not ds.get("FrameOfReferenceUID"):
            # Type 1 in CT: without it positions are in no known space, and the job's SEG and
            # Parametric Map (which highdicom places in that space) cannot be written.
            raise InputError(
                f"{_describe(ds, index)} has no Frame of Reference UID (0020,0052), "
                "so its position is in no known coordinate system."
            )


def _check_consistent(datasets: Sequence[Dataset]) -> None:
    """What the instances must share to form one volume."""
    first = datasets[0]
    orientation = np.array(first.ImageOrientationPatient, dtype=np.float64)
    for index, ds in enumerate(datasets[1:], start=1):
        if ds.get("SeriesInstanceUID") != first.get("SeriesInstanceUID"):
            raise InputError(
                f"the instances come from more than one series ({first.get('SeriesInstanceUID')} "
                f"and {ds.get('SeriesInstanceUID')}); send one series at a time."
            )
        if (ds.Rows, ds.Columns) != (first.Rows, first.Columns):
            raise InputError(
                f"mixed image sizes: {_describe(first, 0)} is {first.Rows}x{first.Columns}, "
                f"{_describe(ds, index)} is {ds.Rows}x{ds.Columns}."
            )
        other = np.array(ds.ImageOrientationPatient, dtype=np.float64)
        if (
            orientation.shape != (6,)
            or other.shape != (6,)
            or not np.allclose(orientation, other, atol=_ORIENTATION_TOLERANCE)
        ):
            raise InputError(
                f"mixed orientations: {_describe(first, 0)} is {list(orientation)}, "
                f"{_describe(ds, index)} is {list(other)}."
            )
        if not np.allclose(np.array(ds.PixelSpacing, float), np.array(first.PixelSpacing, float), atol=1e-4):
            raise InputError(
                f"mixed pixel spacings: {list(first.PixelSpacing)} mm and {list(ds.PixelSpacing)} mm "
                f"({_describe(ds, index)})."
            )


def _check_ranges(first: Dataset, spec: InputSpec) -> None:
    """Body part, matrix and in-plane spacing against what the model accepts."""
    if spec.body_parts:
        body_part = str(first.get("BodyPartExamined", "")).strip().upper()
        accepted = ", ".join(spec.body_parts)
        if not body_part:
            raise InputError(f"the series does not record its body part; this model reads {accepted} only.")
        if body_part not in {part.upper() for part in spec.body_parts}:
            raise InputError(f"the body part is {body_part}; this model reads {accepted} only.")
    low, high = spec.matrix
    for name, size in (("rows", int(first.Rows)), ("columns", int(first.Columns))):
        if not low <= size <= high:
            raise InputError(f"the images have {size} {name}; this model accepts {low} to {high}.")
    low_mm, high_mm = spec.pixel_spacing_mm
    for spacing in (float(v) for v in first.PixelSpacing):
        if not low_mm <= spacing <= high_mm:
            raise InputError(
                f"the pixel spacing is {spacing:g} mm; this model accepts {low_mm:g} to {high_mm:g} mm."
            )


def _slice_normal(orientation: Sequence[float]) -> np.ndarray:
    row, column = np.array(orientation[:3], float), np.array(orientation[3:], float)
    normal = np.cross(row, column)
    length = float(np.linalg.norm(normal))
    if length < 0.5:
        raise InputError(f"ImageOrientationPatient {list(orientation)} does not describe a plane.")
    return normal / length


def _missing_slices(gaps: Sequence[tuple[float, float]], spacing: float) -> str:
    """Says how many slices each gap lacks and where they should have been."""
    described = []
    for below, above in gaps:
        count = max(1, round((above - below) / spacing) - 1)
        missing = ", ".join(f"{below + spacing * (j + 1):.2f}" for j in range(min(count, 5)))
        more = f" and {count - 5} more" if count > 5 else ""
        described.append(f"{count} between {below:.2f} and {above:.2f} mm (at {missing}{more})")
    return f"slices are missing (spacing {spacing:.2f} mm): " + "; ".join(described) + " along the normal."


def _order_and_spacing(datasets: Sequence[Dataset], spec: InputSpec) -> tuple[list[int], float]:
    """The instances' order along the normal and the distance between slices, after checking
    for duplicates, too few slices and gaps."""
    normal = _slice_normal(datasets[0].ImageOrientationPatient)
    heights = np.array([float(np.dot(normal, np.array(ds.ImagePositionPatient, float))) for ds in datasets])
    order = [int(i) for i in np.argsort(heights, kind="stable")]
    steps = np.diff(heights[order])
    for step, (a, b) in zip(steps, pairwise(order), strict=True):
        if step < _POSITION_TOLERANCE_MM:
            raise InputError(
                f"{_describe(datasets[a], a)} and {_describe(datasets[b], b)} are at the same position "
                f"({heights[a]:.2f} mm along the normal); the series holds duplicate slices."
            )
    if len(datasets) < spec.min_slices:
        raise InputError(
            f"the series has {len(datasets)} slices; this model needs at least {spec.min_slices}."
        )
    if len(steps) == 0:
        raise InputError("the series has a single slice; a volume needs at least two.")
    spacing = float(np.median(steps))
    gaps = [
        (float(heights[order[k]]), float(heights[order[k + 1]]))
        for k, step in enumerate(steps)
        if step > _GAP_FACTOR * spacing
    ]
    if gaps:
        raise InputError(_missing_slices(gaps, spacing))
    low, high = spec.slice_spacing_mm
    if not low <= spacing <= high:
        raise InputError(f"the slice spacing is {spacing:.2f} mm; this model accepts {low:g} to {high:g} mm.")
    return order, spacing


def _hounsfield(ds: Dataset, index: int, out: np.ndarray) -> None:
    """Writes the slice's HU into `out` (float32, rows x columns), with no temporaries."""
    try:
        pixels = ds.pixel_array
    except Exception as error:  # pydicom raises many kinds for damaged or unsupported data
        raise InputError(f"the pixel data of {_describe(ds, index)} cannot be decoded: {error}") from error
    if pixels.shape != (ds.Rows, ds.Columns):
        raise InputError(
            f"{_describe(ds, index)} decodes to shape {pixels.shape}, not {ds.Rows}x{ds.Columns} "
            "single-sample pixels."
        )
    slope = float(ds.get("RescaleSlope", 1) or 1)
    intercept = float(ds.get("RescaleIntercept", 0) or 0)
    np.multiply(pixels, np.float32(slope), out=out, dtype=np.float32)
    out += np.float32(intercept)


def decode_series(datasets: Sequence[Dataset], spec: InputSpec) -> Volume:
    """Checks one series against `spec` and decodes it into a float32 HU volume (z, y, x).

    Raises InputError, with a message fit to show a reader, when the series is not something
    the model can read: wrong SOP class or modality, no pixel data, mixed geometry, duplicate
    or missing slices, too few slices, or spacing, matrix or body part outside the spec.
    """
    if not datasets:
        raise InputError("the series has no instances.")
    _check_instances(datasets, spec)
    _check_consistent(datasets)
    first = datasets[0]
    _check_ranges(first, spec)
    order, spacing_z = _order_and_spacing(datasets, spec)
    hu = np.empty((len(order), int(first.Rows), int(first.Columns)), dtype=np.float32)
    for k, index in enumerate(order):
        _hounsfield(datasets[index], index, hu[k])
    bottom = datasets[order[0]]
    row_spacing, column_spacing = (float(v) for v in first.PixelSpacing)
    orientation = tuple(float(v) for v in first.ImageOrientationPatient)
    origin = tuple(float(v) for v in bottom.ImagePositionPatient)
    geometry = Geometry(
        spacing=(spacing_z, row_spacing, column_spacing),
        origin=(origin[0], origin[1], origin[2]),
        orientation=(
            orientation[0],
            orientation[1],
            orientation[2],
            orientation[3],
            orientation[4],
            orientation[5],
        ),
        sop_instance_uids=tuple(str(datasets[i].SOPInstanceUID) for i in order),
        frame_of_reference_uid=str(first.get("FrameOfReferenceUID", "")),
    )
    return Volume(hu=hu, geometry=geometry)


def voxel_to_patient(geometry: Geometry, voxel: Sequence[float]) -> tuple[float, float, float]:
    """Patient coordinates (x, y, z) in mm of a (z, y, x) voxel index, fractional allowed."""
    row, column = np.array(geometry.orientation[:3]), np.array(geometry.orientation[3:])
    normal = np.cross(row, column)
    normal /= np.linalg.norm(normal)
    z, y, x = (float(v) for v in voxel)
    dz, dy, dx = geometry.spacing
    point = np.array(geometry.origin) + x * dx * row + y * dy * column + z * dz * normal
    return (float(point[0]), float(point[1]), float(point[2]))
