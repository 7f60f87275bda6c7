"""The model's attention (saliency) as a DICOM Parametric Map of 16-bit integers.

Float frames do not survive common PACS (Orthanc cannot serve them), so values 0..1 are
stored as 0..65535 with a Real World Value Mapping (slope 1/65535) back to 0..1.
"""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Sequence

import highdicom as hd
import numpy as np
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.sr.coding import Code

from . import codes
from ._common import check_volume, ordered_source, pin, quantize
from .authors import Author, Device, Equipment

STORED_MAX = 65535
SLOPE = 1.0 / STORED_MAX


def parametric_map(
    *,
    source: Sequence[Dataset],
    heatmap: np.ndarray,
    series_uid: str,
    sop_uid: str,
    series_number: int,
    content_datetime: dt.datetime,
    author: Author,
    series_description: str = "AI attention map",
    content_label: str = "ATTENTION",
    explanation: str = "Model attention (saliency), 0..1",
    quantity: Code = codes.MODEL_ATTENTION,
    anatomic_region: Code | None = None,
    slice_uids: Sequence[str] | None = None,
    equipment: Equipment | None = None,
    instance_number: int = 1,
    planes: Sequence[int] | None = None,
) -> Dataset:
    """A Parametric Map of `heatmap` (float, (z, y, x), values 0..1; clipped to that range).

    Stored as round(value * 65535) in unsigned 16-bit frames; the Real World Value Mapping
    (slope 1/65535, intercept 0, unit UCUM "1", quantity `quantity`, described by
    `explanation`) gives the value back within 1/65535. heatmap[k] belongs to the source
    slice_uids[k], or source[k] when slice_uids is None. The frames' anatomy, which the IOD
    requires, is `anatomic_region` (by default the code for the source's BodyPartExamined)
    with laterality U.

    `planes` (ascending slice indices) gives frames to those slices alone: a map computed on a
    few slices of a long series stores those, not hundreds of frames of zeros that would read
    as "no attention" where none was computed. By default every slice gets a frame.
    """
    check_volume(heatmap, "heatmap")
    ordered = ordered_source(source, slice_uids, heatmap.shape[0], (heatmap.shape[1], heatmap.shape[2]))
    if planes is not None:
        planes = _checked_planes(planes, heatmap.shape[0])
        heatmap = heatmap[planes]
        ordered = [ordered[z] for z in planes]
    if not np.all(np.isfinite(heatmap)):
        raise ValueError("heatmap holds NaN or infinite values")
    stored = quantize(heatmap, STORED_MAX, np.uint16)
    mapping = hd.pm.RealWorldValueMapping(
        lut_label="ATTENTION",
        lut_explanation=explanation,
        unit=codes.NO_UNITS,
        value_range=(0, STORED_MAX),
        slope=SLOPE,
        intercept=0,
        quantity_definition=quantity,
    )
    equipment = equipment or Equipment.for_author(author)
    pmap = hd.pm.ParametricMap(
        source_images=ordered,
        pixel_array=stored,
        series_instance_uid=series_uid,
        series_number=series_number,
        sop_instance_uid=sop_uid,
        instance_number=instance_number,
        **equipment.as_kwargs(),
        contains_recognizable_visual_features=False,
        real_world_value_mappings=[mapping],
        voi_lut_transformations=[
            hd.VOILUTTransformation(window_center=STORED_MAX / 2, window_width=STORED_MAX + 1)
        ],
        content_label=content_label,
        content_description=explanation,
        content_creator_name=None if isinstance(author, Device) else author.name,
        content_date=content_datetime.date(),
        content_time=content_datetime.time(),
        series_description=series_description,
    )
    region = anatomic_region or codes.anatomic_region(str(ordered[0].get("BodyPartExamined", "")))
    _add_frame_anatomy(pmap, region)
    return pin(pmap, content_datetime=content_datetime, sop_uid=sop_uid)


def stored_to_real(ds: Dataset, stored: np.ndarray) -> np.ndarray:
    """Applies the map's Real World Value Mapping to its stored values (float64)."""
    mapping = ds.SharedFunctionalGroupsSequence[0].RealWorldValueMappingSequence[0]
    slope, intercept = float(mapping.RealWorldValueSlope), float(mapping.RealWorldValueIntercept)
    return stored.astype(np.float64) * slope + intercept


def _checked_planes(planes: Sequence[int], depth: int) -> list[int]:
    chosen = [int(z) for z in planes]
    if not chosen:
        raise ValueError("planes is empty: a Parametric Map needs at least one frame")
    if any(b <= a for a, b in itertools.pairwise(chosen)):
        raise ValueError("planes must be ascending slice indices, each once")
    if chosen[0] < 0 or chosen[-1] >= depth:
        raise ValueError(f"planes must lie in 0..{depth - 1}; got {chosen[0]}..{chosen[-1]}")
    return chosen


def _add_frame_anatomy(pmap: Dataset, region: Code) -> None:
    """Frame Anatomy, shared by all frames: the region, and laterality U(npaired)."""
    item = Dataset()
    item.AnatomicRegionSequence = DicomSequence([hd.sr.CodedConcept.from_code(region)])
    item.FrameLaterality = "U"
    pmap.SharedFunctionalGroupsSequence[0].FrameAnatomySequence = DicomSequence([item])
