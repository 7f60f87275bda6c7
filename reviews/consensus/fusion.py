"""One mask from several readers' masks of a case: majority vote and STAPLE.

Masks are arrays of one shape whose non-zero voxels are inside, keyed by reader.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping
from dataclasses import dataclass, field
from typing import Generic, Literal, TypeVar

import numpy as np
import numpy.typing as npt
import SimpleITK as sitk

from reviews.consensus.masks import MaskShapeError, as_mask, bounding_box

R = TypeVar("R", bound=Hashable)


def _stack(masks: Mapping[R, npt.ArrayLike]) -> npt.NDArray[np.bool_]:
    if not masks:
        raise MaskShapeError("fusion needs at least one reader's mask")
    arrays = [as_mask(mask) for mask in masks.values()]
    shapes = {array.shape for array in arrays}
    if len(shapes) > 1:
        raise MaskShapeError(f"masks differ in shape: {sorted(shapes)}")
    return np.stack(arrays)


def majority_vote(
    masks: Mapping[R, npt.ArrayLike], *, ties: Literal["outside", "inside"] = "outside"
) -> npt.NDArray[np.bool_]:
    """Voxels marked by more than half of the readers. With an even number of readers a voxel
    marked by exactly half is a tie: outside by default (a strict majority), inside with
    ties="inside". Same as SimpleITK's LabelVoting with the tie label 0 (or 1)."""
    stack = _stack(masks)
    votes = 2 * stack.sum(axis=0, dtype=np.int32)
    readers = stack.shape[0]
    return (votes >= readers) if ties == "inside" else (votes > readers)


@dataclass(frozen=True)
class StapleResult(Generic[R]):
    """STAPLE's estimate of the true mask and of each reader's performance against it.

    `probability` is each voxel's posterior probability of being inside; `mask` is
    probability >= the threshold asked for. Specificity counts every voxel STAPLE ran on (the
    whole array, or the box `margin` chose), so it depends on that field of view: compare
    readers within one case, not across cases.
    """

    probability: npt.NDArray[np.float64] = field(repr=False)
    mask: npt.NDArray[np.bool_] = field(repr=False)
    sensitivity: dict[R, float]
    specificity: dict[R, float]
    iterations: int


def staple(
    masks: Mapping[R, npt.ArrayLike],
    *,
    threshold: float = 0.5,
    confidence_weight: float = 1.0,
    max_iterations: int | None = None,
    margin: int | None = None,
) -> StapleResult[R]:
    """STAPLE (Warfield et al. 2004) by SimpleITK's STAPLEImageFilter, foreground value 1.

    STAPLE runs on the whole array, or with `margin` on the bounding box of every reader's
    voxels grown by `margin` voxels each way (far faster on a large series; voxels outside the
    box have probability 0.0 and do not count towards specificity). When no reader marks any
    voxel, or every reader marks every voxel, STAPLE is undefined (SimpleITK returns NaN): the
    result is then the unanimous mask with probability 0.0 or 1.0 and NaN sensitivity and
    specificity.
    """
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(f"threshold must lie in [0, 1], got {threshold}")
    stack = _stack(masks)
    readers = list(masks)
    if not stack.any() or stack.all():
        probability = np.full(stack.shape[1:], 1.0 if stack.all() else 0.0)
        undefined = dict.fromkeys(readers, math.nan)
        return StapleResult(probability, probability >= threshold, undefined, dict(undefined), 0)
    staple_filter = sitk.STAPLEImageFilter()
    staple_filter.SetForegroundValue(1.0)
    staple_filter.SetConfidenceWeight(confidence_weight)
    if max_iterations is not None:
        staple_filter.SetMaximumIterations(max_iterations)
    whole = (slice(None),) * (stack.ndim - 1)
    box = bounding_box(np.any(stack, axis=0), margin=margin) if margin is not None else whole
    images = [sitk.GetImageFromArray(mask[box].astype(np.uint8)) for mask in stack]
    probability = np.zeros(stack.shape[1:])
    probability[box] = sitk.GetArrayFromImage(staple_filter.Execute(images))
    return StapleResult(
        probability=probability,
        mask=probability >= threshold,
        sensitivity=dict(zip(readers, staple_filter.GetSensitivity(), strict=True)),
        specificity=dict(zip(readers, staple_filter.GetSpecificity(), strict=True)),
        iterations=staple_filter.GetElapsedIterations(),
    )
