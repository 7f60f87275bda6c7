"""The DICOM Segmentation (binary) of a label mask: one segment per finding."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

import highdicom as hd
import numpy as np
from pydicom.dataset import Dataset
from pydicom.sr.coding import Code

from inference.engine.types import Finding

from . import codes
from ._common import check_volume, derived_uid, ordered_source, pin
from .authors import AlgorithmInfo, Author, Device, Equipment


@dataclass(frozen=True)
class SegmentSpec:
    """One segment: `number` is both the label value in the mask and the SEG Segment
    Number (Finding.index for the model's findings). Tracking UID and ID default to
    values derived from the SEG's SOP Instance UID and the number."""

    number: int
    label: str
    property_type: Code = codes.LESION
    property_category: Code = codes.MORPHOLOGICALLY_ABNORMAL_STRUCTURE
    tracking_uid: str | None = None
    tracking_id: str | None = None

    @classmethod
    def for_finding(cls, finding: Finding, *, tracking_uid: str | None = None) -> SegmentSpec:
        """The segment of one engine finding: numbered by its index, typed by its label."""
        return cls(
            number=finding.index,
            label=finding.label,
            property_type=codes.finding_type(finding.label),
            tracking_uid=tracking_uid,
        )


def segment_tracking_uid(*, sop_uid: str, number: int) -> str:
    """The tracking UID a segment gets when its spec names none."""
    return derived_uid("segment", sop_uid, number)


def segmentation(
    *,
    source: Sequence[Dataset],
    mask: np.ndarray,
    segments: Sequence[SegmentSpec],
    series_uid: str,
    sop_uid: str,
    series_number: int,
    content_datetime: dt.datetime,
    author: Author,
    algorithm: AlgorithmInfo | None = None,
    series_description: str = "AI findings (SEG)",
    content_label: str = "FINDINGS",
    content_description: str | None = None,
    slice_uids: Sequence[str] | None = None,
    equipment: Equipment | None = None,
    instance_number: int = 1,
) -> Dataset | None:
    """A BINARY DICOM SEG of `mask` (uint8, (z, y, x), 0 background, k for segment k).

    `segments` must be numbered 1..n in order; every non-zero mask value must be one of
    them. mask[k] belongs to the source instance slice_uids[k] (pass the engine's
    Geometry.sop_instance_uids), or to source[k] when slice_uids is None; `source` may
    come in any order when slice_uids is given. Empty frames are left out; a segment with
    no voxels (a finding the reader erased) is still described and has no frames. When
    every segment is empty, highdicom keeps all frames (empty), as a SEG needs at least one.

    Returns None when there are no segments (a study without findings): a SEG must
    describe at least one segment, and "no findings" is said by the SR instead.

    Authorship: a Device author needs `algorithm` (AUTOMATIC segments); a Person author
    without one gives MANUAL segments, with one (a reader editing the model's mask)
    SEMIAUTOMATIC.
    """
    check_volume(mask, "mask")
    if mask.dtype != np.uint8:
        raise ValueError(f"mask must be uint8 label values, not {mask.dtype}")
    numbers = [spec.number for spec in segments]
    if numbers != list(range(1, len(segments) + 1)):
        raise ValueError(f"segments must be numbered 1..n in order, got {numbers}")
    if int(mask.max(initial=0)) > len(segments):
        raise ValueError(f"the mask holds label {int(mask.max())} but only {len(segments)} segments")
    if not segments:
        return None
    ordered = ordered_source(source, slice_uids, mask.shape[0], (mask.shape[1], mask.shape[2]))
    algorithm_type = _algorithm_type(author, algorithm)
    descriptions = [
        hd.seg.SegmentDescription(
            segment_number=spec.number,
            segment_label=spec.label,
            segmented_property_category=spec.property_category,
            segmented_property_type=spec.property_type,
            algorithm_type=algorithm_type,
            algorithm_identification=algorithm.identification_sequence() if algorithm else None,
            tracking_uid=spec.tracking_uid or segment_tracking_uid(sop_uid=sop_uid, number=spec.number),
            tracking_id=spec.tracking_id or f"{spec.label} {spec.number}",
        )
        for spec in segments
    ]
    equipment = equipment or Equipment.for_author(author)
    seg = hd.seg.Segmentation(
        source_images=ordered,
        pixel_array=mask,
        segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=descriptions,
        series_instance_uid=series_uid,
        series_number=series_number,
        sop_instance_uid=sop_uid,
        instance_number=instance_number,
        **equipment.as_kwargs(),
        content_label=content_label,
        content_description=content_description,
        content_creator_name=None if isinstance(author, Device) else author.name,
        omit_empty_frames=True,
        content_date=content_datetime.date(),
        content_time=content_datetime.time(),
        series_description=series_description,
    )
    return pin(seg, content_datetime=content_datetime, sop_uid=sop_uid)


def _algorithm_type(author: Author, algorithm: AlgorithmInfo | None) -> hd.seg.SegmentAlgorithmTypeValues:
    if isinstance(author, Device):
        if algorithm is None:
            raise ValueError("a segmentation by a device needs its AlgorithmInfo")
        return hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC
    if algorithm is None:
        return hd.seg.SegmentAlgorithmTypeValues.MANUAL
    return hd.seg.SegmentAlgorithmTypeValues.SEMIAUTOMATIC
