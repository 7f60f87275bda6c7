"""From a probability map to findings: threshold, 3D connected components, measurements."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from inference.engine.decode import voxel_to_patient
from inference.engine.types import Finding, Geometry, ModelSpec

MAX_FINDINGS = 255  # the mask is uint8


def _bounding_box(mask: np.ndarray) -> tuple[slice, ...] | None:
    """The smallest box holding every set voxel, or None when none is set."""
    box = []
    for axis in range(mask.ndim):
        others = tuple(a for a in range(mask.ndim) if a != axis)
        hits = np.flatnonzero(mask.any(axis=others))
        if hits.size == 0:
            return None
        box.append(slice(int(hits[0]), int(hits[-1]) + 1))
    return tuple(box)


def find_findings(
    probability: np.ndarray,
    spec: ModelSpec,
    geometry: Geometry,
    channel: np.ndarray | None = None,
) -> tuple[np.ndarray, list[Finding]]:
    """The finding mask (uint8, k for findings[k - 1]) and the findings of a probability map.

    A finding is a face-connected component of `probability >= spec.threshold` of at least
    `spec.min_finding_mm3`. Findings are numbered in raster order of their first voxel (from
    slice 0 up); past MAX_FINDINGS only the largest are kept. `channel`, when the model has
    several labels, holds each voxel's most probable output channel; a finding takes the label
    most of its voxels have.
    """
    mask = np.zeros(probability.shape, dtype=np.uint8)
    box = _bounding_box(probability >= spec.threshold)
    if box is None:
        return mask, []
    offset = np.array([s.start for s in box])
    crop = probability[box]
    labels, count = ndimage.label(crop >= spec.threshold)
    voxel_mm3 = float(np.prod(geometry.spacing))
    sizes = np.bincount(labels.ravel(), minlength=count + 1)
    kept = [k for k in range(1, count + 1) if sizes[k] * voxel_mm3 >= spec.min_finding_mm3]
    if len(kept) > MAX_FINDINGS:
        kept = sorted(sorted(kept, key=lambda k: -sizes[k])[:MAX_FINDINGS])
    objects = ndimage.find_objects(labels)
    lookup = np.zeros(count + 1, dtype=np.uint8)
    findings = []
    for index, component in enumerate(kept, start=1):
        lookup[component] = index
        region = objects[component - 1]
        assert region is not None  # every kept component has voxels
        inside = labels[region] == component
        values = crop[region][inside]
        where = np.argwhere(inside) + offset + [s.start for s in region]
        centroid = tuple(float(v) for v in where.mean(axis=0))
        label = spec.labels[0]
        if channel is not None and len(spec.labels) > 1:
            channels = channel[box][region][inside]
            label = spec.labels[int(np.bincount(channels).argmax())]
        low, high = where.min(axis=0), where.max(axis=0) + 1
        findings.append(
            Finding(
                index=index,
                label=label,
                bbox=(
                    (int(low[0]), int(high[0])),
                    (int(low[1]), int(high[1])),
                    (int(low[2]), int(high[2])),
                ),
                centroid_voxel=(centroid[0], centroid[1], centroid[2]),
                centroid_mm=voxel_to_patient(geometry, centroid),
                volume_mm3=float(sizes[component] * voxel_mm3),
                voxel_count=int(sizes[component]),
                max_probability=float(values.max()),
                mean_probability=float(values.mean()),
            )
        )
    mask[box] = lookup[labels]
    return mask, findings
