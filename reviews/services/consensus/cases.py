"""Consensus cases: opened as studies join a consensus project, counted as reads arrive, and
compared once they have all their reads (a Celery task queued after the commit of the N-th
submit): findings matched across readers with pairwise Dice and HD95 in mm, answers compared,
masks fused by majority vote and STAPLE. Computing again replaces what was there.

A read's mask is the union of the final masks of its current decisions (findings the reader
added, and AI findings they accepted or edited when the project shows them the AI), in the
reading's slice order; every read of a case must lie on the same series.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from django.core.files.storage import default_storage
from django.db import transaction
from django.utils import timezone

from reviews.masks import Geometry, Mask, MaskError, mask_save, series_geometry
from reviews.models import ConsensusCase, Decision, ProjectStudy, Reading
from reviews.reader_dicom import decision_mask
from reviews.selectors import decisions_current

logger = logging.getLogger(__name__)

MIN_IOU = 0.1  # findings of two readers overlapping less than this are different findings...
MIN_CONTAINED = 0.5  # ...unless the smaller lies at least this much inside the other
STAPLE_MARGIN = 5  # voxels around the readers' marks STAPLE runs on (docs/consensus.md)
DEFAULT_LABEL = "lesion"


class CaseError(ValueError):
    """The reads of a case cannot be compared (written on the case; it goes to adjudication)."""


def consensus_cases_open(*, entries: Iterable[ProjectStudy]) -> None:
    """A case for each worklist entry of a consensus project that has none yet."""
    cases = [ConsensusCase(entry=e, project_id=e.project_id) for e in entries]
    ConsensusCase.objects.bulk_create(cases, ignore_conflicts=True)


def consensus_case_for(*, project_pk: int, study_pk: int) -> ConsensusCase:
    """The case of a study in a consensus project (opened if the entry has none)."""
    entry = ProjectStudy.objects.get(project_id=project_pk, study_id=study_pk)
    case, _ = ConsensusCase.objects.get_or_create(entry=entry, defaults={"project_id": project_pk})
    return case


def case_readings(case: ConsensusCase) -> list[Reading]:
    """The case's submitted readings, in the order they were submitted."""
    return list(
        Reading.objects.filter(
            project_id=case.project_id, study_id=case.entry.study_id, phase=Reading.Phase.SUBMITTED
        )
        .select_related("reader", "series", "study")
        .order_by("submitted_at", "pk")
    )


def consensus_reading_submitted(*, reading: Reading) -> None:
    """Counts a submitted read on its case; once the case has all its reads (or more), its
    comparison is queued after the commit. Inside the submit's transaction; the case row is
    locked so two reads submitted at once are both counted by one of them."""
    if not reading.project.is_consensus:
        return
    case = consensus_case_for(project_pk=reading.project_id, study_pk=reading.study_id)
    case = ConsensusCase.objects.select_for_update().get(pk=case.pk)
    done = Reading.objects.filter(
        project_id=reading.project_id, study_id=reading.study_id, phase=Reading.Phase.SUBMITTED
    ).count()
    ConsensusCase.objects.filter(pk=case.pk).update(reads_done=done)
    if done >= reading.project.reads_per_case:
        ProjectStudy.objects.filter(pk=case.entry_id).update(reading_status=ProjectStudy.Status.READ)
        from reviews.tasks import consensus_case_compute_run  # the task module imports this one

        case_pk = case.pk
        transaction.on_commit(lambda: consensus_case_compute_run.delay(case_pk=case_pk))


# --- Masks of the reads -------------------------------------------------------------------------
@dataclass
class Read:
    """One submitted read, as the comparison uses it."""

    reading: Reading
    volume: npt.NDArray[np.bool_]  # (z, y, x) in the case's slice order
    labelled: list[tuple[str, Mask]]  # each current decision's final label and mask


def case_geometry(readings: Sequence[Reading]) -> Geometry:
    """The geometry of the case's first read; every read must lie on its series."""
    first = readings[0]
    for reading in readings[1:]:
        if reading.series_id != first.series_id or set(reading.slice_uids) != set(first.slice_uids):
            raise CaseError(
                f"reading {reading.pk} was made on another series than reading {first.pk}: "
                "their masks cannot be compared"
            )
    return series_geometry(first.series, slice_uids=first.slice_uids)


def read_of(reading: Reading, geometry: Geometry) -> Read:
    """The read's union mask over the case's slices, and each finding's label and mask."""
    index = {uid: k for k, uid in enumerate(geometry.slice_uids)}
    volume = np.zeros((len(geometry.slice_uids), geometry.rows, geometry.columns), dtype=bool)
    labelled: list[tuple[str, Mask]] = []
    decisions = decisions_current(reading=reading).select_related("inference_job")
    for decision in decisions.exclude(kind__in=[Decision.Kind.WITHDRAWN, Decision.Kind.OVERRIDDEN]):
        own = decision_mask(decision, reading)
        mask = {index[reading.slice_uids[z]]: plane for z, plane in own.items()}
        for z, plane in mask.items():
            volume[z] |= plane
        labelled.append((decision.final_label or DEFAULT_LABEL, mask))
    return Read(reading=reading, volume=volume, labelled=labelled)


def volume_as_mask(volume: npt.NDArray[np.bool_]) -> Mask:
    return {int(z): volume[z] for z in np.flatnonzero(volume.any(axis=(1, 2)))}


def label_of(region: npt.NDArray[np.bool_], reads: Iterable[Read]) -> str:
    """The label the reads gave the voxels of `region` most (by overlap); DEFAULT_LABEL if none."""
    votes: dict[str, int] = {}
    for read in reads:
        for label, mask in read.labelled:
            overlap = sum(int((region[z] & plane).sum()) for z, plane in mask.items())
            if overlap:
                votes[label] = votes.get(label, 0) + overlap
    return max(sorted(votes), key=lambda label: votes[label]) if votes else DEFAULT_LABEL


def box_of(region: npt.NDArray[np.bool_]) -> list[list[int]]:
    """[[z0, z1], [y0, y1], [x0, x1]], half-open, of the region's voxels."""
    found = np.nonzero(region)
    return [[int(axis.min()), int(axis.max()) + 1] for axis in found]


def _finite(value: float) -> float | None:
    return round(float(value), 6) if math.isfinite(value) else None


# --- The comparison -------------------------------------------------------------------------------
@dataclass
class Comparison:
    agreement: dict[str, Any]
    agree: bool
    worst_dice: float | None
    majority: npt.NDArray[np.bool_]
    staple: npt.NDArray[np.bool_]
    staple_readers: list[dict[str, Any]]


def compare(case: ConsensusCase, reads: Sequence[Read], geometry: Geometry) -> Comparison:
    """Matches the reads' findings, compares them and the answers, and fuses the masks."""
    # reviews.consensus brings scikit-learn and SimpleITK (a second to import): only here.
    from reviews.consensus import majority_vote, match_findings, staple

    project = case.project
    spacing = geometry.spacing
    volumes = {read.reading.pk: read.volume for read in reads}
    by_pk = {read.reading.pk: read for read in reads}
    matching = match_findings(volumes, min_iou=MIN_IOU, min_contained=MIN_CONTAINED)
    findings: list[dict[str, Any]] = []
    matched_dice: list[float] = []
    matched_hd95: list[float] = []
    for k, group in enumerate(matching.groups):
        marked = [pk for pk in volumes if pk in group]
        pairs: list[dict[str, Any]] = []
        if len(marked) >= 2:
            for a, b, dice, hd95 in matching.group_table(k, spacing=spacing).pairs():
                if a in group and b in group:
                    pairs.append({"a": a, "b": b, "dice": round(dice, 6), "hd95_mm": _finite(hd95)})
                    matched_dice.append(dice)
                    matched_hd95.append(hd95)
        marks = []
        for pk in marked:
            finding = group[pk]
            region = np.zeros(matching.shape, dtype=bool)
            region[finding.box] = finding.crop
            marks.append(
                {
                    "reading": pk,
                    "label": label_of(region, [by_pk[pk]]),
                    "bbox": [[s.start, s.stop] for s in finding.box],
                    "voxels": finding.voxels,
                }
            )
        findings.append(
            {
                "group": k + 1,
                "marked_by": marks,
                "missed_by": [pk for pk in volumes if pk not in group],
                "pairs": pairs,
                "worst_dice": round(min(p["dice"] for p in pairs), 6) if pairs else None,
            }
        )
    misses = sum(len(f["missed_by"]) for f in findings)
    worst_matched = min(matched_dice) if matched_dice else None
    answers = _answers(project, reads)
    reasons = _reasons(project, findings, worst_matched, answers)
    worst = (0.0 if misses else worst_matched) if findings else None
    fused = staple(volumes, margin=STAPLE_MARGIN)
    agreement = {
        "readings": [{"id": read.reading.pk, "reader": read.reading.reader.get_username()} for read in reads],
        "spacing_mm": list(spacing),
        "min_dice": project.min_dice,
        "min_iou": MIN_IOU,
        "min_contained": MIN_CONTAINED,
        "findings": findings,
        "worst_dice": round(worst_matched, 6) if worst_matched is not None else None,
        "worst_hd95_mm": _finite(max(matched_hd95)) if matched_hd95 else None,
        "missed": misses,
        "answers": answers,
        "agree": not reasons,
        "reasons": reasons,
        "staple_iterations": fused.iterations,
    }
    staple_readers = [
        {
            "reading": pk,
            "reader": by_pk[pk].reading.reader.get_username(),
            "sensitivity": _finite(fused.sensitivity[pk]),
            "specificity": _finite(fused.specificity[pk]),
        }
        for pk in volumes
    ]
    return Comparison(
        agreement=agreement,
        agree=not reasons,
        worst_dice=round(worst, 6) if worst is not None else None,
        majority=majority_vote(volumes),
        staple=fused.mask,
        staple_readers=staple_readers,
    )


def _answers(project: Any, reads: Sequence[Read]) -> list[dict[str, Any]]:
    rows = []
    for question in project.questions:
        given = [
            {"reading": read.reading.pk, "choice": read.reading.answers.get(question["code"])}
            for read in reads
        ]
        choices = {g["choice"] for g in given}
        rows.append(
            {"code": question["code"], "answers": given, "agree": len(choices) == 1 and None not in choices}
        )
    return rows


def _reasons(
    project: Any, findings: list[dict[str, Any]], worst: float | None, answers: list[dict[str, Any]]
) -> list[str]:
    """Why the case needs adjudication (empty: the readers agree)."""
    reasons = []
    if worst is not None and worst < project.min_dice:
        reasons.append(f"worst Dice of a matched finding {worst:.3f} is under {project.min_dice:g}")
    missed = [f["group"] for f in findings if f["missed_by"]]
    if missed:
        reasons.append(
            f"finding{'s' if len(missed) > 1 else ''} {', '.join(map(str, missed))} "
            "not marked by every reader"
        )
    texts = project.question_texts
    differing = [texts.get(a["code"], a["code"]) for a in answers if not a["agree"]]
    if differing:
        reasons.append(f"answers differ: {', '.join(differing)}")
    return reasons


# --- Computing and storing ------------------------------------------------------------------------
def consensus_case_compute(*, case_pk: int) -> ConsensusCase | None:
    """Compares the case's reads and fuses their masks (when it has all its reads), replacing
    any earlier result; a case whose reads cannot be compared gets the error written on it and
    goes to adjudication. Idempotent: the same reads give the same rows and files."""
    case = ConsensusCase.objects.select_related("project", "entry").filter(pk=case_pk).first()
    if case is None:
        return None
    readings = case_readings(case)
    if len(readings) < max(case.project.reads_per_case, 2):
        ConsensusCase.objects.filter(pk=case.pk).update(reads_done=len(readings))
        return case
    try:
        geometry = case_geometry(readings)
        reads = [read_of(reading, geometry) for reading in readings]
        result = compare(case, reads, geometry)
    except (CaseError, MaskError) as exc:
        _store_error(case, readings, str(exc))
        return ConsensusCase.objects.get(pk=case.pk)
    except Exception as exc:  # written on the case for the adjudicator, who decides by eye
        logger.exception("consensus case %s: comparing its reads failed", case.pk)
        _store_error(case, readings, f"{type(exc).__name__}: the reads could not be compared")
        return ConsensusCase.objects.get(pk=case.pk)
    _store(case, readings, result, geometry)
    return ConsensusCase.objects.get(pk=case.pk)


def _keys(case: ConsensusCase, readings: Sequence[Reading]) -> tuple[str, str]:
    stem = f"reviews/consensus/case-{case.pk}/readings-{'-'.join(str(r.pk) for r in readings)}"
    return f"{stem}-majority.npz", f"{stem}-staple.npz"


def _save(volume: npt.NDArray[np.bool_], key: str, geometry: Geometry) -> str:
    mask = volume_as_mask(volume)
    if not mask:
        default_storage.delete(key)
        return ""
    return mask_save(mask, key=key, slice_uids=geometry.slice_uids)


def _store(case: ConsensusCase, readings: Sequence[Reading], result: Comparison, geometry: Geometry) -> None:
    majority_key, staple_key = _keys(case, readings)
    majority_key = _save(result.majority, majority_key, geometry)
    staple_key = _save(result.staple, staple_key, geometry)
    computed_from = [r.pk for r in readings]
    with transaction.atomic():
        current = ConsensusCase.objects.select_for_update().get(pk=case.pk)
        if len(current.computed_from) > len(computed_from):
            return  # a comparison of more reads got there first
        stale = {current.majority_key, current.staple_key} - {majority_key, staple_key, ""}
        ConsensusCase.objects.filter(pk=case.pk).update(
            status=current.status_after_compute(agree=result.agree),
            reads_done=len(readings),
            agreement=result.agreement,
            worst_dice=result.worst_dice,
            computed_from=computed_from,
            computed_at=timezone.now(),
            majority_key=majority_key,
            staple_key=staple_key,
            staple_readers=result.staple_readers,
            error="",
        )
    for key in stale:
        default_storage.delete(key)


def _store_error(case: ConsensusCase, readings: Sequence[Reading], message: str) -> None:
    logger.warning("consensus case %s cannot be compared: %s", case.pk, message)
    # The earlier comparison's figures and fused masks no longer describe the reads: dropped.
    ConsensusCase.objects.filter(pk=case.pk).update(
        status=case.status_after_compute(agree=False),
        reads_done=len(readings),
        computed_from=[r.pk for r in readings],
        computed_at=timezone.now(),
        agreement={"agree": False, "reasons": [message]},
        worst_dice=None,
        majority_key="",
        staple_key="",
        staple_readers=[],
        error=message,
    )
