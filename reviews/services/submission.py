"""Submitting a reading: the study-level verdict, then the reader's SEG and SR into the store.

The objects are written and stored before the reading is marked submitted: if storing
fails, the reading stays as it was. They are stored through the ingest service (origin
"derived"), so they appear in the study over DICOMweb and `pacs_push --series UID` sends
them on. Should the reading change between the two steps (a stale version, another phase),
the objects just stored are removed again and the caller gets StaleVersion (or Conflict).
"""

from __future__ import annotations

import io
from typing import Any

from django.db import transaction
from django.http import HttpRequest
from django.utils import timezone

from audit.codes import Action
from inference.derived import SourceUnsupported
from inference.models import Finding
from reviews.errors import Conflict, Invalid, StaleVersion
from reviews.masks import MaskError, series_geometry
from reviews.models import Decision, Reading
from reviews.reader_dicom import ReaderObject, reader_objects
from reviews.selectors import decisions_current
from reviews.services.consensus.answers import answers_check
from reviews.services.consensus.cases import consensus_reading_submitted
from reviews.services.projects import project_status_refresh
from reviews.services.readings import _check_agreement, _check_version, _write, reading_audit
from viewer.ingest.rows import SeriesProducer
from viewer.ingest.service import ingest_file
from viewer.models import Series
from viewer.services import instances_delete

Phase = Reading.Phase


class StoreRefused(RuntimeError):
    """The DICOM store refused a reader object (a bug, not bad input)."""


def reading_submit(
    *,
    reading: Reading,
    version: int,
    triage_agreement: str = "",
    final_impression: str | None = None,
    answers: dict[str, str] | None = None,
    request: HttpRequest | None = None,
) -> Reading:
    """Submits the reading: every AI finding of the revealed result needs a decision, and the
    reader says whether they agree with the AI triage (when one was revealed). In a consensus
    project every question of the label schema needs its answer (given now or before); the
    case counts the read, and is compared once it has all of them. Conflict when the images
    cannot carry the reader's SEG (no Frame of Reference UID)."""
    _check_version(reading, version)
    if reading.phase == Phase.SUBMITTED:
        raise Conflict("the reading is already submitted")
    if reading.phase == Phase.UNAIDED:
        raise Conflict("lock the unaided read before submitting")
    _check_agreement(reading, triage_agreement, required=True)
    if answers is not None:
        answers = {
            **reading.answers,
            **answers_check(project=reading.project, answers=answers, complete=False),
        }
    if reading.project.is_consensus:
        answers_check(
            project=reading.project, answers=reading.answers if answers is None else answers, complete=True
        )
    decisions = list(
        decisions_current(reading=reading).select_related("inference_job__model_version", "reader")
    )
    if reading.revealed_job_id is not None:
        decided = {d.ai_finding_index for d in decisions if d.ai_finding_index}
        missing = sorted(
            set(Finding.objects.filter(job_id=reading.revealed_job_id).values_list("index", flat=True))
            - decided
        )
        if missing:
            listed = ", ".join(str(index) for index in missing)
            raise Invalid(
                f"decide on every AI finding before submitting; still open: {listed}", field="decisions"
            )
    objects = _objects(
        reading,
        decisions,
        triage_agreement=triage_agreement or None,  # none given now: the saved draft's
        final_impression=final_impression,
    )
    _store(objects, reading=reading, request=request)
    changes: dict[str, Any] = {
        "phase": Phase.SUBMITTED,
        "submitted_at": timezone.now(),
        "triage_agreement": triage_agreement,
        "seg_sop_uid": next((o.sop_uid for o in objects if o.kind == "seg"), ""),
        "sr_sop_uid": next((o.sop_uid for o in objects if o.kind == "sr"), ""),
    }
    if final_impression is not None:
        changes["final_impression"] = final_impression
    if answers is not None:
        changes["answers"] = answers
    with transaction.atomic():
        try:
            _write(reading, version, **changes)
        except (StaleVersion, Conflict):
            instances_delete(sop_instance_uids=[o.sop_uid for o in objects])
            raise
        project_status_refresh(project_pk=reading.project_id, study_pk=reading.study_id)
        consensus_reading_submitted(reading=reading)
        reading_audit(
            reading,
            Action.UPDATE,
            "reading submitted",
            request=request,
            job=reading.revealed_job,
            detail={"decisions": len(decisions), "seg": reading.seg_sop_uid, "sr": reading.sr_sop_uid},
        )
    return reading


def _objects(
    reading: Reading,
    decisions: list[Decision],
    *,
    triage_agreement: str | None,
    final_impression: str | None,
) -> list[ReaderObject]:
    """The reader's SEG and SR, or Conflict when the images cannot carry a SEG or are gone from
    the store (nothing is stored yet, so the reading stays as it was)."""
    try:
        geometry = series_geometry(reading.series, slice_uids=reading.slice_uids)
    except MaskError as exc:  # its images were removed from the store after the reading began
        raise Conflict(f"cannot write the reader's SEG: {exc}") from exc
    try:
        return reader_objects(
            reading=reading,
            decisions=decisions,
            geometry=geometry,
            triage_agreement=triage_agreement,
            final_impression=final_impression,
        )
    except SourceUnsupported as exc:
        raise Conflict(f"cannot write the reader's SEG of series {reading.series.series_uid}: {exc}") from exc


def _store(objects: list[ReaderObject], *, reading: Reading, request: HttpRequest | None) -> None:
    stored: list[str] = []
    for obj in objects:
        outcome = ingest_file(
            source=io.BytesIO(obj.content),
            name=f"reader {obj.kind} of reading {reading.pk}",
            origin="derived",
            producer=SeriesProducer(kind=Series.Producer.READING, id=reading.pk),
            user=reading.reader if request is None else None,
            request=request,
        )
        if outcome.status == "rejected":
            instances_delete(sop_instance_uids=stored)
            raise StoreRefused(f"the DICOM store refused the reader {obj.kind}: {outcome.reason}")
        stored.append(obj.sop_uid)
