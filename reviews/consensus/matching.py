"""Which readers marked the same finding: connected components matched across readers by overlap.

Each reader's mask of a case splits into findings, its face-connected components (as the AI
engine splits its own). Readers are taken in the order given: the first reader's findings start
the groups; each next reader's findings are assigned to the groups by the Hungarian algorithm
(scipy's linear_sum_assignment), maximising the total IoU, where a finding's IoU with a group
is its best IoU with any finding already in it. A pair matches when its IoU reaches `min_iou`,
or when the overlap covers at least `min_contained` of the smaller finding: a tight outline of a
nodule inside another reader's generous one is the same nodule, whatever their IoU. Other pairs
are never matched; an unmatched finding starts a new group. A group holds at most one finding
per reader, so a reader absent from a group missed that finding.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from dataclasses import dataclass, field
from typing import Generic, TypeVar

import numpy as np
import numpy.typing as npt
from scipy import ndimage
from scipy.optimize import linear_sum_assignment

from reviews.consensus.masks import MaskShapeError, PairwiseTable, Spacing, as_mask, pairwise_table

R = TypeVar("R", bound=Hashable)


@dataclass(frozen=True)
class Finding(Generic[R]):
    """One reader's finding: a face-connected component of their mask, numbered from 1 in
    scipy.ndimage.label's raster order. `crop` holds its voxels inside `box`."""

    reader: R
    number: int
    box: tuple[slice, ...]
    crop: npt.NDArray[np.bool_] = field(repr=False)

    @property
    def voxels(self) -> int:
        return int(self.crop.sum())


def findings_of(mask: npt.ArrayLike, *, reader: R) -> list[Finding[R]]:
    """The reader's findings in a mask (non-zero voxels are inside)."""
    labels, _ = ndimage.label(as_mask(mask))
    return [
        Finding(reader=reader, number=number, box=box, crop=labels[box] == number)
        for number, box in enumerate(ndimage.find_objects(labels), start=1)
        if box is not None
    ]


def _overlap(a: Finding[R], b: Finding[R]) -> int:
    shared = tuple(
        slice(max(p.start, q.start), min(p.stop, q.stop)) for p, q in zip(a.box, b.box, strict=True)
    )
    if any(s.start >= s.stop for s in shared):
        return 0
    in_a = tuple(slice(s.start - p.start, s.stop - p.start) for s, p in zip(shared, a.box, strict=True))
    in_b = tuple(slice(s.start - q.start, s.stop - q.start) for s, q in zip(shared, b.box, strict=True))
    return int(np.logical_and(a.crop[in_a], b.crop[in_b]).sum())


def iou(a: Finding[R], b: Finding[R]) -> float:
    """Intersection over union of two findings of the same case."""
    shared = _overlap(a, b)
    return shared / (a.voxels + b.voxels - shared)


def _pair_score(a: Finding[R], b: Finding[R], min_iou: float, min_contained: float) -> float:
    """The pair's IoU where the pair may match (see the module's docstring), else 0.0."""
    shared = _overlap(a, b)
    if shared == 0:
        return 0.0
    score = shared / (a.voxels + b.voxels - shared)
    return score if score >= min_iou or shared >= min_contained * min(a.voxels, b.voxels) else 0.0


@dataclass(frozen=True)
class Matching(Generic[R]):
    """Findings grouped across readers. `groups[k]` maps each reader who marked finding k to
    their finding; `shape` is the case's array shape."""

    readers: tuple[R, ...]
    groups: tuple[Mapping[R, Finding[R]], ...]
    shape: tuple[int, ...]

    def missed_by(self, reader: R) -> list[int]:
        """Indices of the groups (findings marked by someone) that this reader did not mark."""
        return [k for k, group in enumerate(self.groups) if reader not in group]

    def misses(self) -> dict[R, int]:
        """How many findings each reader missed."""
        return {reader: len(self.missed_by(reader)) for reader in self.readers}

    def group_table(self, index: int, *, spacing: Spacing) -> PairwiseTable[R]:
        """Dice and HD95 of finding `index` between every two readers; a reader who missed it
        counts as an empty mask (Dice 0.0, HD95 inf against a reader who marked it)."""
        group = self.groups[index]
        box = tuple(
            slice(
                min(f.box[axis].start for f in group.values()), max(f.box[axis].stop for f in group.values())
            )
            for axis in range(len(self.shape))
        )
        masks = {}
        for reader in self.readers:
            mask = np.zeros(tuple(s.stop - s.start for s in box), dtype=bool)
            finding = group.get(reader)
            if finding is not None:
                place = tuple(
                    slice(f.start - b.start, f.stop - b.start) for f, b in zip(finding.box, box, strict=True)
                )
                mask[place] = finding.crop
            masks[reader] = mask
        return pairwise_table(masks, spacing=spacing)


def _assign(
    groups: list[dict[R, Finding[R]]], found: list[Finding[R]], min_iou: float, min_contained: float
) -> set[int]:
    """Adds the reader's findings to the groups they best match; returns those placed."""
    # A pair that may not match scores 0.0, so it never displaces one that may.
    score = np.array(
        [
            [
                max(_pair_score(f, member, min_iou, min_contained) for member in group.values())
                for group in groups
            ]
            for f in found
        ]
    )
    rows, columns = linear_sum_assignment(score, maximize=True)
    placed = set()
    for row, column in zip(rows, columns, strict=True):
        if score[row, column] > 0.0:
            groups[column][found[row].reader] = found[row]
            placed.add(int(row))
    return placed


def match_findings(
    masks: Mapping[R, npt.ArrayLike], *, min_iou: float = 0.1, min_contained: float = 0.5
) -> Matching[R]:
    """Groups the readers' findings of one case by overlap: IoU >= min_iou, or the smaller
    finding at least `min_contained` inside the other (both in (0, 1])."""
    for name, value in (("min_iou", min_iou), ("min_contained", min_contained)):
        if not 0.0 < value <= 1.0:
            raise ValueError(f"{name} must lie in (0, 1], got {value}")
    arrays = {reader: as_mask(mask) for reader, mask in masks.items()}
    shapes = {array.shape for array in arrays.values()}
    if len(shapes) > 1:
        raise MaskShapeError(f"masks differ in shape: {sorted(shapes)}")
    groups: list[dict[R, Finding[R]]] = []
    for reader, array in arrays.items():
        found = findings_of(array, reader=reader)
        placed = _assign(groups, found, min_iou, min_contained) if groups and found else set()
        groups.extend({reader: f} for k, f in enumerate(found) if k not in placed)
    return Matching(readers=tuple(arrays), groups=tuple(groups), shape=shapes.pop() if shapes else (0,))
