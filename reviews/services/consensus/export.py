"""The current reference standards as the feedback export writes them (reviews.services.export,
`export_feedback --reference`): one manifest line per case with its provenance, and its mask."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.db.models import QuerySet

from reviews.masks import Geometry, Mask, mask_load, series_geometry
from reviews.models import Reading, ReferenceStandard
from reviews.selectors import project_named

REFERENCE_FIELDS = (
    "reference_id",
    "version",
    "supersedes",
    "created_at",
    "project",
    "project_id",
    "case_id",
    "study_uid",
    "series_uid",
    "slice_uids",
    "source",
    "readings",
    "readers",
    "fusion",
    "adjudicator",
    "rationale",
    "answers",
    "findings",
    "mask_voxels",
    "mask_nifti",
)


def references_current(
    *, project: str = "", since: dt.datetime | None = None, until: dt.datetime | None = None
) -> QuerySet[ReferenceStandard]:
    """The current reference standard of each adjudicated case (of a project: its name or id;
    recorded in [since, until)), oldest first."""
    references = ReferenceStandard.objects.filter(superseded_by__isnull=True).select_related(
        "case__project", "case__entry__study", "adjudicator"
    )
    if project:
        references = references.filter(project_named(project, "case__project"))
    if since:
        references = references.filter(created_at__gte=since)
    if until:
        references = references.filter(created_at__lt=until)
    return references.order_by("pk")


def reference_mask(reference: ReferenceStandard) -> tuple[Mask, Geometry, Reading]:
    """The reference's mask and the geometry it lies in (its case's reads share one series)."""
    reading = (
        Reading.objects.select_related("series")
        .filter(pk__in=reference.readings)
        .order_by("submitted_at", "pk")
        .first()
    )
    if reading is None:
        raise LookupError(f"reference {reference.pk} names no reading")
    geometry = series_geometry(reading.series, slice_uids=reading.slice_uids)
    return (mask_load(reference.mask_key) if reference.mask_key else {}), geometry, reading


def reference_line(reference: ReferenceStandard, *, reading: Reading, nifti: str) -> dict[str, Any]:
    case = reference.case
    readers = dict(Reading.objects.filter(pk__in=reference.readings).values_list("pk", "reader__username"))
    line = {
        "reference_id": reference.pk,
        "version": reference.version,
        "supersedes": reference.supersedes_id,
        "created_at": reference.created_at.isoformat(),
        "project": case.project.name,
        "project_id": case.project_id,
        "case_id": case.pk,
        "study_uid": case.entry.study.study_uid,
        "series_uid": reading.series.series_uid,
        "slice_uids": reading.slice_uids,
        "source": reference.source,
        "readings": reference.readings,
        "readers": [readers.get(pk) for pk in reference.readings],
        "fusion": reference.fusion or None,
        "adjudicator": reference.adjudicator.get_username(),
        "rationale": reference.rationale,
        "answers": reference.answers,
        "findings": reference.findings,
        "mask_voxels": reference.mask_voxels,
        "mask_nifti": nifti,
    }
    assert tuple(line) == REFERENCE_FIELDS
    return line
