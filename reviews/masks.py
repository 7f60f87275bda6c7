"""Masks of findings: the reader's (decoded from the API, kept as npz files), the AI's (read
from the job's mask array), their Dice, and the series geometry they live in.

A mask is a dict {slice index: bool (rows, columns)} over the slices that hold any voxel;
slice k is the reading's slice_uids[k]. Readers send masks as {SOP Instance UID: base64 of
rows*columns uint8 bytes}, one entry per slice that holds any voxel (what the viewer's
labelmap gives per slice); any non-zero byte is inside.
"""

from __future__ import annotations

import base64
import binascii
import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage

from inference.arrays import ArrayError
from inference.models import InferenceJob, JobOutput
from inference.outputs import output_slices
from viewer.models import Instance, Series

Mask = dict[int, np.ndarray]


class MaskError(ValueError):
    """The mask the client sent cannot be used; the message says why."""


@dataclass(frozen=True)
class Geometry:
    """Where the reading's voxels lie: slice k is slice_uids[k]; patient coordinates (mm) of
    voxel (z, y, x) are origin + x*dx*row + y*dy*column + z*dz*normal."""

    slice_uids: list[str]
    rows: int
    columns: int
    origin: tuple[float, float, float]
    row: tuple[float, float, float]  # direction of increasing column index (x)
    column: tuple[float, float, float]  # direction of increasing row index (y)
    normal: tuple[float, float, float]
    spacing: tuple[float, float, float]  # (dz, dy, dx) mm

    @property
    def voxel_mm3(self) -> float:
        dz, dy, dx = self.spacing
        return dz * dy * dx

    def to_patient(self, voxel: Sequence[float]) -> tuple[float, float, float]:
        z, y, x = voxel
        dz, dy, dx = self.spacing
        point = (
            np.array(self.origin)
            + x * dx * np.array(self.row)
            + y * dy * np.array(self.column)
            + z * dz * np.array(self.normal)
        )
        return (float(point[0]), float(point[1]), float(point[2]))

    def affine_ras(self) -> np.ndarray:
        """The NIfTI affine (RAS+) of an array indexed [x, y, z] (the mask transposed)."""
        dz, dy, dx = self.spacing
        lps = np.eye(4)
        lps[:3, 0] = np.array(self.row) * dx
        lps[:3, 1] = np.array(self.column) * dy
        lps[:3, 2] = np.array(self.normal) * dz
        lps[:3, 3] = self.origin
        return np.diag([-1.0, -1.0, 1.0, 1.0]) @ lps


def series_geometry(series: Series, *, slice_uids: Sequence[str] | None = None) -> Geometry:
    """The series' geometry, its slices in the order the AI engine uses (by position along the
    slice normal; pass a job's slice_uids to take its order as it is)."""
    instances = list(
        Instance.objects.filter(series=series, number_of_frames__gte=1)
        .order_by("instance_number", "pk")
        .values("sop_instance_uid", "rows", "columns", "pixel_spacing", "image_position", "image_orientation")
    )
    if not instances:
        raise MaskError(f"series {series.series_uid} holds no images")
    first = instances[0]
    orientation = [float(v) for v in (first["image_orientation"] or [1, 0, 0, 0, 1, 0])]
    row, column = np.array(orientation[:3]), np.array(orientation[3:])
    normal = np.cross(row, column)
    normal = normal / (np.linalg.norm(normal) or 1.0)
    heights = np.array(
        [float(np.dot(normal, np.array(i["image_position"] or [0, 0, 0], float))) for i in instances]
    )
    by_uid = {i["sop_instance_uid"]: (i, h) for i, h in zip(instances, heights, strict=True)}
    if slice_uids is None or set(slice_uids) != set(by_uid):
        order = list(np.argsort(heights, kind="stable"))
        slice_uids = [instances[k]["sop_instance_uid"] for k in order]
    ordered_heights = np.array([by_uid[uid][1] for uid in slice_uids])
    steps = np.abs(np.diff(ordered_heights))
    dz = float(np.median(steps)) if len(steps) and float(np.median(steps)) > 0 else 1.0
    dy, dx = (float(v) for v in (first["pixel_spacing"] or [1.0, 1.0]))
    origin_instance = by_uid[slice_uids[0]][0]
    origin = [float(v) for v in (origin_instance["image_position"] or [0, 0, 0])]
    return Geometry(
        slice_uids=list(slice_uids),
        rows=int(first["rows"] or 0),
        columns=int(first["columns"] or 0),
        origin=(origin[0], origin[1], origin[2]),
        row=(float(row[0]), float(row[1]), float(row[2])),
        column=(float(column[0]), float(column[1]), float(column[2])),
        normal=(float(normal[0]), float(normal[1]), float(normal[2])),
        spacing=(dz, dy, dx),
    )


# --- The reader's masks -------------------------------------------------------------------------
def mask_decode(value: Any, *, slice_uids: Sequence[str], rows: int, columns: int) -> Mask:
    """A mask from the API's {SOP Instance UID: base64} (see the module docstring)."""
    if not isinstance(value, Mapping) or not value:
        raise MaskError("a mask is an object {SOP Instance UID: base64 of rows*columns uint8 bytes}")
    if len(value) > len(slice_uids):
        raise MaskError(f"the mask names {len(value)} slices; the series has {len(slice_uids)}")
    index = {uid: k for k, uid in enumerate(slice_uids)}
    plane = rows * columns
    mask: Mask = {}
    for uid, encoded in value.items():
        if uid not in index:
            raise MaskError(f"{str(uid)[:64]!r} is not an image of the series being read")
        if not isinstance(encoded, str):
            raise MaskError(f"slice {uid}: base64 text expected")
        try:
            raw = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            raise MaskError(f"slice {uid}: not valid base64") from None
        if len(raw) != plane:
            raise MaskError(_size_message(uid, len(raw), rows, columns))
        pixels = np.frombuffer(raw, dtype=np.uint8).reshape(rows, columns) != 0
        if pixels.any():
            mask[index[uid]] = pixels
    if not mask:
        raise MaskError("the mask is empty: it holds no voxel")
    return mask


def _size_message(uid: str, size: int, rows: int, columns: int) -> str:
    plane = rows * columns
    message = (
        f"slice {uid}: {size} bytes, expected {plane} ({rows} rows x {columns} columns, one uint8 per pixel)"
    )
    if size and size % plane == 0:
        message += f"; {size // plane} bytes per pixel looks like a {8 * size // plane}-bit array: send uint8"
    return message


def mask_from_box(box: Sequence[Sequence[int]], *, rows: int, columns: int) -> Mask:
    """The filled box [[z0, z1], [y0, y1], [x0, x1]] (half-open) as a mask."""
    (z0, z1), (y0, y1), (x0, x1) = box
    plane = np.zeros((rows, columns), dtype=bool)
    plane[y0:y1, x0:x1] = True
    return {z: plane.copy() for z in range(z0, z1)}


def mask_bbox(mask: Mask) -> list[list[int]]:
    zs = sorted(mask)
    ys = np.flatnonzero(np.any(np.stack([mask[z].any(axis=1) for z in zs]), axis=0))
    xs = np.flatnonzero(np.any(np.stack([mask[z].any(axis=0) for z in zs]), axis=0))
    return [[zs[0], zs[-1] + 1], [int(ys[0]), int(ys[-1]) + 1], [int(xs[0]), int(xs[-1]) + 1]]


def mask_voxels(mask: Mask) -> int:
    return int(sum(int(plane.sum()) for plane in mask.values()))


def mask_centroid(mask: Mask) -> tuple[float, float, float]:
    total = mask_voxels(mask)
    if total == 0:
        return (0.0, 0.0, 0.0)
    z_sum = sum(z * int(plane.sum()) for z, plane in mask.items())
    y_sum = sum(float(np.nonzero(plane)[0].sum()) for plane in mask.values())
    x_sum = sum(float(np.nonzero(plane)[1].sum()) for plane in mask.values())
    return (z_sum / total, y_sum / total, x_sum / total)


def mask_save(mask: Mask, *, key: str, slice_uids: Sequence[str]) -> str:
    """Stores the mask as npz (slice indices, their SOP Instance UIDs, the planes); returns
    the key it was stored under."""
    zs = sorted(mask)
    buffer = io.BytesIO()
    np.savez_compressed(
        buffer,
        slice_indices=np.array(zs, dtype=np.int32),
        sop_uids=np.array([slice_uids[z] for z in zs]),
        masks=np.stack([mask[z] for z in zs]).astype(np.uint8),
    )
    default_storage.delete(key)
    return default_storage.save(key, ContentFile(buffer.getvalue()))


def mask_load(key: str) -> Mask:
    with default_storage.open(key, "rb") as handle, np.load(handle) as data:
        return {
            int(z): plane.astype(bool) for z, plane in zip(data["slice_indices"], data["masks"], strict=True)
        }


# --- The AI's masks -------------------------------------------------------------------------------
def ai_mask(
    job: InferenceJob, *, index: int, bbox: Sequence[Sequence[int]], slice_uids: Sequence[str]
) -> Mask:
    """Finding `index`'s voxels in the job's mask array, as a mask over the reading's slices."""
    output = job.outputs.filter(kind=JobOutput.Kind.MASK).first()
    if output is None:
        raise MaskError(f"job {job.pk} has no mask array")
    reading_index = {uid: k for k, uid in enumerate(slice_uids)}
    (z0, z1), _, _ = bbox
    try:
        voxels = np.frombuffer(output_slices(output, z0, z1), dtype=np.uint8)
    except ArrayError as error:
        raise MaskError(f"job {job.pk}'s mask array cannot be read: {error}") from error
    mask: Mask = {}
    for z, plane in enumerate(voxels.reshape(z1 - z0, job.rows, job.columns) == index, start=z0):
        k = reading_index.get(job.slice_uids[z])
        if k is not None and plane.any():
            mask[k] = plane
    return mask


def dice(a: Mask, b: Mask) -> float:
    total = mask_voxels(a) + mask_voxels(b)
    if total == 0:
        return 1.0
    overlap = sum(int((a[z] & b[z]).sum()) for z in set(a) & set(b))
    return 2.0 * overlap / total


def label_volume(masks: Sequence[tuple[int, Mask]], *, depth: int, rows: int, columns: int) -> np.ndarray:
    """A uint8 (z, y, x) label volume: value n on the voxels of the n-th mask (later masks win
    where masks overlap)."""
    volume = np.zeros((depth, rows, columns), dtype=np.uint8)
    for value, mask in masks:
        for z, plane in mask.items():
            volume[z][plane] = value
    return volume
