"""Agreement between readers' masks of one case: Dice and surface distances in millimetres.

A mask is an array (z, y, x) (or (y, x)) whose non-zero voxels are inside; `spacing` gives the
voxel size in mm along the same axes, e.g. (3.0, 0.7, 0.7). Both masks of a pair have the
same shape.

Conventions: two empty masks agree perfectly (Dice 1.0, distances 0.0 mm); one empty mask
against a non-empty one is a total miss (Dice 0.0, distances inf). Surface distances are
computed by SimpleITK (contours and signed Maurer distance maps with the spacing set on the
images), in float32: about 1e-6 relative precision.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from itertools import combinations
from typing import Generic, TypeVar

import numpy as np
import numpy.typing as npt
import SimpleITK as sitk

R = TypeVar("R", bound=Hashable)
Spacing = Sequence[float]


class MaskShapeError(ValueError):
    """Masks that cannot be compared: different shapes, or a spacing that does not fit them."""


def as_mask(mask: npt.ArrayLike) -> npt.NDArray[np.bool_]:
    """The mask as a bool array: non-zero voxels are inside."""
    return np.asarray(mask) != 0


def check_pair(a: npt.NDArray[np.bool_], b: npt.NDArray[np.bool_], spacing: Spacing | None = None) -> None:
    """Raises MaskShapeError unless a and b have one shape and `spacing` one positive size per axis."""
    if a.shape != b.shape:
        raise MaskShapeError(f"masks differ in shape: {a.shape} and {b.shape}")
    if spacing is None:
        return
    if len(spacing) != a.ndim:
        raise MaskShapeError(f"spacing {tuple(spacing)} does not fit masks of {a.ndim} axes")
    if not all(math.isfinite(s) and s > 0 for s in spacing):
        raise MaskShapeError(f"spacing must be positive millimetres, got {tuple(spacing)}")


def dice(a: npt.ArrayLike, b: npt.ArrayLike) -> float:
    """Dice coefficient 2|A ∩ B| / (|A| + |B|); 1.0 when both masks are empty."""
    first, second = as_mask(a), as_mask(b)
    check_pair(first, second)
    total = int(first.sum()) + int(second.sum())
    if total == 0:
        return 1.0
    return 2.0 * int(np.logical_and(first, second).sum()) / total


def bounding_box(mask: npt.ArrayLike, *, margin: int = 0) -> tuple[slice, ...]:
    """The smallest box holding every inside voxel, grown by `margin` voxels each way (within
    the array). Raises ValueError for an empty mask or a negative margin."""
    inside = as_mask(mask)
    if margin < 0:
        raise ValueError(f"margin must be a number of voxels >= 0, got {margin}")
    if not inside.any():
        raise ValueError("an empty mask has no bounding box")
    box = []
    for axis, size in enumerate(inside.shape):
        others = tuple(a for a in range(inside.ndim) if a != axis)
        hits = np.flatnonzero(inside.any(axis=others))
        box.append(slice(max(int(hits[0]) - margin, 0), min(int(hits[-1]) + 1 + margin, size)))
    return tuple(box)


def _image(mask: npt.NDArray[np.bool_], spacing: Spacing) -> sitk.Image:
    image = sitk.GetImageFromArray(mask.astype(np.uint8))
    image.SetSpacing([float(s) for s in reversed(spacing)])  # SimpleITK orders axes x, y, z
    return image


def _contour(image: sitk.Image) -> sitk.Image:
    # A surface voxel is inside with a face neighbour outside (fullyConnected=False).
    return sitk.BinaryContour(image, fullyConnected=False, backgroundValue=0, foregroundValue=1)


def _distance_to(surface: sitk.Image) -> npt.NDArray[np.float64]:
    distance = sitk.SignedMaurerDistanceMap(
        surface, insideIsPositive=False, squaredDistance=False, useImageSpacing=True, backgroundValue=0
    )
    return np.abs(sitk.GetArrayFromImage(distance).astype(np.float64))


def surface_distances_mm(
    a: npt.ArrayLike, b: npt.ArrayLike, *, spacing: Spacing
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Distances (mm) from each surface voxel of A to the nearest surface voxel of B, and from B's
    to A's. A surface voxel is one inside the mask with a face neighbour outside it (the edge of
    the array counts as outside). An empty mask has no surface voxels, and nothing to reach:
    the other mask's distances are then inf."""
    first, second = as_mask(a), as_mask(b)
    check_pair(first, second, spacing)
    if not first.any() and not second.any():
        return np.zeros(0), np.zeros(0)
    # Only the union's box (with a one-voxel border) matters: it holds both surfaces.
    box = bounding_box(first | second)
    surface_a = _contour(_image(np.pad(first[box], 1), spacing))
    surface_b = _contour(_image(np.pad(second[box], 1), spacing))
    on_a = sitk.GetArrayViewFromImage(surface_a) != 0
    on_b = sitk.GetArrayViewFromImage(surface_b) != 0
    if not on_a.any() or not on_b.any():  # one mask is empty: nothing to reach
        return np.full(int(on_a.sum()), math.inf), np.full(int(on_b.sum()), math.inf)
    return _distance_to(surface_b)[on_a], _distance_to(surface_a)[on_b]


def hausdorff_mm(a: npt.ArrayLike, b: npt.ArrayLike, *, spacing: Spacing, percentile: float = 100.0) -> float:
    """Symmetric Hausdorff distance (mm) at a percentile of the surface distances: the larger of
    the two directed percentiles (A to B, B to A; numpy's linear interpolation), as MONAI and
    DeepMind's surface-distance define it. 100 is the classic Hausdorff distance. 0.0 when both
    masks are empty, inf when one is."""
    if not 0.0 <= percentile <= 100.0:
        raise ValueError(f"percentile must lie in [0, 100], got {percentile}")
    a_to_b, b_to_a = surface_distances_mm(a, b, spacing=spacing)
    if a_to_b.size == 0 and b_to_a.size == 0:
        return 0.0
    if a_to_b.size == 0 or b_to_a.size == 0:
        return math.inf
    return float(max(np.percentile(a_to_b, percentile), np.percentile(b_to_a, percentile)))


def hd95_mm(a: npt.ArrayLike, b: npt.ArrayLike, *, spacing: Spacing) -> float:
    """The 95th percentile Hausdorff distance (mm): hausdorff_mm at percentile 95."""
    return hausdorff_mm(a, b, spacing=spacing, percentile=95.0)


@dataclass(frozen=True)
class PairwiseTable(Generic[R]):
    """Dice and HD95 (mm) of every pair of readers; row and column i are readers[i]. Symmetric,
    with Dice 1.0 and HD95 0.0 on the diagonal."""

    readers: tuple[R, ...]
    dice: npt.NDArray[np.float64]
    hd95_mm: npt.NDArray[np.float64]

    def pairs(self) -> list[tuple[R, R, float, float]]:
        """(reader, reader, Dice, HD95 mm) for each unordered pair, in reader order."""
        return [
            (self.readers[i], self.readers[j], float(self.dice[i, j]), float(self.hd95_mm[i, j]))
            for i, j in combinations(range(len(self.readers)), 2)
        ]


def pairwise_table(masks: Mapping[R, npt.ArrayLike], *, spacing: Spacing) -> PairwiseTable[R]:
    """Dice and HD95 between every two readers' masks of one case (readers in mapping order)."""
    readers = tuple(masks)
    arrays = [as_mask(masks[reader]) for reader in readers]
    count = len(readers)
    dice_table = np.eye(count)
    hd95_table = np.zeros((count, count))
    for i, j in combinations(range(count), 2):
        check_pair(arrays[i], arrays[j], spacing)
        dice_table[i, j] = dice_table[j, i] = dice(arrays[i], arrays[j])
        hd95_table[i, j] = hd95_table[j, i] = hd95_mm(arrays[i], arrays[j], spacing=spacing)
    return PairwiseTable(readers=readers, dice=dice_table, hd95_mm=hd95_table)
