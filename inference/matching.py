"""Whether a series is something a model reads, decided from the index alone (no pixels).

Automatic jobs start only for matching series. A job asked for by hand runs anyway, and
the engine then fails it with the same kind of message (inference.engine.decode).
"""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import Max, Min

from inference.engine.types import InputSpec
from inference.models import ModelVersion
from viewer.models import Series


@dataclass(frozen=True)
class Match:
    ok: bool
    reason: str = ""


def series_matches(*, series: Series, model: ModelVersion) -> Match:
    spec = InputSpec.from_dict(model.input_spec)
    if series.modality != spec.modality:
        return Match(False, f"modality {series.modality or 'none'}, the model reads {spec.modality}")
    if spec.body_parts and series.body_part.upper() not in {b.upper() for b in spec.body_parts}:
        return Match(
            False, f"body part {series.body_part or 'none'} is not one of {', '.join(spec.body_parts)}"
        )
    instances = series.instances.all()
    foreign = instances.exclude(sop_class_uid__in=spec.sop_class_uids).values_list("sop_class_uid", flat=True)
    if foreign.exists():
        return Match(False, f"the series holds objects of SOP class {foreign.first()}")
    facts = instances.aggregate(
        rows_min=Min("rows"), rows_max=Max("rows"), columns_min=Min("columns"), columns_max=Max("columns")
    )
    count = instances.count()
    if count < spec.min_slices:
        return Match(False, f"{count} images; the model needs at least {spec.min_slices}")
    low, high = spec.matrix
    sizes = [facts["rows_min"], facts["rows_max"], facts["columns_min"], facts["columns_max"]]
    if any(size is None or not low <= size <= high for size in sizes):
        return Match(False, f"image size outside {low}..{high} pixels")
    return Match(True)
