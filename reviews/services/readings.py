"""A reading's life: start, heartbeat, draft text, lock (which reveals the AI), reveal.

Every write but the heartbeat sends the version it read; a write is one conditional UPDATE
on (pk, version, phase), so of two writes made from the same version one wins and the other
gets StaleVersion (HTTP 409) having changed nothing. Submitting is in reviews.services.submission.
"""

from __future__ import annotations

from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import Count, F, Q
from django.http import HttpRequest
from django.utils import timezone

from audit.codes import Action, EventID
from audit.services import audit_record
from inference.auditing import audit_outputs_accessed
from inference.models import InferenceJob, ModelVersion
from reviews.errors import Conflict, Invalid, StaleVersion
from reviews.masks import MaskError, series_geometry
from reviews.models import Assignment, ProjectStudy, Reading, ReadingProject
from reviews.permissions import ai_hidden_from, member_role
from reviews.selectors import newest_result, revealable_job, unaided_elsewhere
from reviews.services.consensus.answers import answers_check
from reviews.services.projects import project_status_refresh
from viewer.models import Series

Phase = Reading.Phase
MAX_HEARTBEAT_SECONDS = 60
# Series that are not images a reader draws on.
_NOT_IMAGES = ("SEG", "SR", "KO", "PR", "RTSTRUCT", "OT")


def reading_start(
    *, user: Any, entry: ProjectStudy, request: HttpRequest | None = None
) -> tuple[Reading, bool]:
    """The user's reading of the entry's study in its project, opened if it is new (True).
    The caller has checked reviews.read_study. In an ai-first project (and for a reader the
    project shows the AI) the reading starts with the AI revealed."""
    project, study = entry.project, entry.study
    existing = Reading.objects.filter(project=project, study=study, reader=user).first()
    if existing is not None:
        return existing, False
    role = member_role(user, project) or ""
    series, job = _reading_series(study_pk=study.pk)
    try:
        geometry = series_geometry(
            series, slice_uids=job.slice_uids if job is not None and job.slice_uids else None
        )
    except MaskError:  # the AI read a series whose images are no longer in the store
        raise Invalid("the study holds no images to read") from None
    ai_first = project.reading_mode == ReadingProject.Mode.AI_FIRST and not ai_hidden_from(role, project)
    revealed = revealable_job(user=user, series=series) if ai_first else None
    seen_before = Reading.objects.filter(reader=user, study=study, revealed_job__isnull=False).exists()
    now = timezone.now()
    try:
        with transaction.atomic():
            reading = Reading.objects.create(
                project=project,
                study=study,
                reader=user,
                reader_role=role,
                reading_mode=project.reading_mode,
                phase=Phase.AI_REVEALED if ai_first else Phase.UNAIDED,
                series=series,
                slice_uids=geometry.slice_uids,
                rows=geometry.rows,
                columns=geometry.columns,
                revealed_job=revealed,
                revealed_at=now if ai_first else None,
                ai_seen_before=seen_before,
            )
            Assignment.objects.get_or_create(
                project=project, study=study, reader=user, defaults={"assigned_by": user}
            )
            project_status_refresh(project_pk=project.pk, study_pk=study.pk)
            reading_audit(reading, Action.CREATE, "reading started", request=request)
    except IntegrityError:  # the same reader opened it twice at once
        return Reading.objects.get(project=project, study=study, reader=user), False
    if revealed is not None and request is not None:
        audit_outputs_accessed(request, revealed)
    return reading, True


def reading_heartbeat(*, reading: Reading, seconds: float) -> Reading:
    """Adds active seconds to the current phase (unaided, or aided after the lock). Idle
    time never arrives: the client sends only seconds the reader was active, at most
    MAX_HEARTBEAT_SECONDS per beat. Needs no version: beats add, they never conflict."""
    if not 0 < seconds <= MAX_HEARTBEAT_SECONDS:
        raise Invalid(f"seconds must be more than 0 and at most {MAX_HEARTBEAT_SECONDS}", field="seconds")
    if reading.phase == Phase.SUBMITTED:
        raise Conflict("the reading is submitted: its time is no longer counted")
    field = "unaided_seconds" if reading.phase == Phase.UNAIDED else "aided_seconds"
    updated = Reading.objects.filter(pk=reading.pk, phase=reading.phase).update(**{field: F(field) + seconds})
    reading.refresh_from_db()
    if not updated:  # the phase moved on meanwhile: count the beat in the new one
        return reading_heartbeat(reading=reading, seconds=seconds)
    return reading


def reading_update(
    *,
    reading: Reading,
    version: int,
    unaided_impression: str | None = None,
    final_impression: str | None = None,
    triage_agreement: str | None = None,
    answers: dict[str, str] | None = None,
) -> Reading:
    """Saves draft text: the unaided impression (before the lock only) and the final impression
    and triage agreement (after it); and answers to the project's questions (any time before
    the submit; merged into those already given)."""
    _check_version(reading, version)
    if reading.phase == Phase.SUBMITTED:
        raise Conflict("the reading is submitted and can no longer change")
    changes: dict[str, Any] = {}
    if unaided_impression is not None:
        if reading.phase != Phase.UNAIDED:
            raise Conflict(
                "the unaided read is locked: its impression can no longer change", field="unaided_impression"
            )
        changes["unaided_impression"] = unaided_impression
    if final_impression is not None:
        if reading.phase == Phase.UNAIDED:
            raise Conflict(
                "lock the unaided read before writing the final impression", field="final_impression"
            )
        changes["final_impression"] = final_impression
    if triage_agreement is not None:
        _check_agreement(reading, triage_agreement, required=False)
        changes["triage_agreement"] = triage_agreement
    if answers is not None:
        given = answers_check(project=reading.project, answers=answers, complete=False)
        changes["answers"] = {**reading.answers, **given}
    if not changes:  # nothing to save: the version stays, so no other window's next write is stale
        return reading
    return _write(reading, version, **changes)


def reading_lock(
    *,
    reading: Reading,
    version: int,
    unaided_impression: str | None = None,
    request: HttpRequest | None = None,
) -> Reading:
    """Freezes the unaided read for ever (its findings and impression), then reveals the AI
    when the reader may see it and a result is there (else the reading stays locked; reveal
    later with reading_reveal)."""
    _check_version(reading, version)
    if reading.phase != Phase.UNAIDED:
        raise Conflict(f"the unaided read is already locked (the reading is {reading.phase})")
    now = timezone.now()
    changes: dict[str, Any] = {"phase": Phase.LOCKED, "locked_at": now}
    if unaided_impression is not None:
        changes["unaided_impression"] = unaided_impression
    job = None
    if not ai_hidden_from(member_role(reading.reader, reading.project), reading.project):
        job = revealable_job(user=reading.reader, series=reading.series, reading=reading.pk)
    if job is not None:
        changes.update(phase=Phase.AI_REVEALED, revealed_job=job, revealed_at=now)
    with transaction.atomic():
        reading = _write(reading, version, **changes)
        reading_audit(reading, Action.UPDATE, "unaided read locked", request=request, job=job)
    if job is not None and request is not None:
        audit_outputs_accessed(request, job)
    return reading


def reading_reveal(*, reading: Reading, version: int, request: HttpRequest | None = None) -> Reading:
    """Reveals the AI result that was not there at the lock (or at the start, ai-first)."""
    _check_version(reading, version)
    waiting = reading.phase == Phase.LOCKED or (
        reading.phase == Phase.AI_REVEALED and reading.revealed_job_id is None
    )
    if not waiting:
        raise Conflict(f"there is nothing to reveal: the reading is {reading.phase}")
    elsewhere = unaided_elsewhere(reader=reading.reader, study_pk=reading.study_id, excluding=reading.pk)
    if elsewhere is not None:
        raise Conflict(withheld_because(elsewhere))
    job = newest_result(user=reading.reader, series=reading.series)  # nothing open elsewhere: checked
    if job is None:
        raise Conflict("no AI result to reveal yet: the AI has not finished reading this series")
    with transaction.atomic():
        reading = _write(
            reading, version, phase=Phase.AI_REVEALED, revealed_job=job, revealed_at=timezone.now()
        )
        reading_audit(reading, Action.UPDATE, "AI revealed", request=request, job=job)
    if request is not None:
        audit_outputs_accessed(request, job)
    return reading


def withheld_because(elsewhere: Reading) -> str:
    """Why a reading shows no AI while the same reader's unaided read of the study is open
    in another project."""
    return (
        f"The AI stays hidden while your unaided read of this study in “{elsewhere.project.name}” "
        "is open: lock that read first."
    )


# --- Shared by the writes ----------------------------------------------------------------------
def _check_version(reading: Reading, version: int) -> None:
    if version != reading.version:
        raise StaleVersion(sent=version, current=reading.version)


def _check_agreement(reading: Reading, value: str, *, required: bool) -> None:
    if reading.revealed_job_id is None:
        if value:
            raise Invalid(
                "no AI result was revealed: there is no AI triage to agree with", field="triage_agreement"
            )
        return
    allowed = {Reading.Agreement.AGREE, Reading.Agreement.DISAGREE} | (set() if required else {""})
    if value not in allowed:
        raise Invalid("say whether you agree or disagree with the AI triage", field="triage_agreement")


def _write(reading: Reading, version: int, **changes: Any) -> Reading:
    """One conditional UPDATE on (pk, version, phase) that also moves the version on. `reading`
    then holds what was written, and its related rows stay loaded: the rest of its row is as
    it was read (a heartbeat may have added seconds since; the API answers with a fresh read)."""
    now = timezone.now()
    updated = Reading.objects.filter(pk=reading.pk, version=version, phase=reading.phase).update(
        version=version + 1, updated_at=now, **changes
    )
    if not updated:
        current = Reading.objects.get(pk=reading.pk)
        if current.version != version:
            raise StaleVersion(sent=version, current=current.version)
        raise Conflict(f"the reading is now {current.phase}; reload it")
    for name, value in {**changes, "version": version + 1, "updated_at": now}.items():
        setattr(reading, name, value)
    return reading


def _reading_series(*, study_pk: int) -> tuple[Series, InferenceJob | None]:
    """The series the reader annotates: the one the active model read (newest job), else the
    image series with the most images."""
    job = (
        InferenceJob.objects.filter(
            series__study_id=study_pk, model_version__status=ModelVersion.Status.ACTIVE
        )
        .select_related("series")
        .order_by("-created_at", "-pk")
        .first()
    )
    if job is not None:
        return job.series, job
    series = (
        Series.objects.filter(study_id=study_pk)
        .exclude(modality__in=_NOT_IMAGES)
        .annotate(images=Count("instances", filter=Q(instances__number_of_frames__gte=1)))
        .filter(images__gt=0)
        .order_by("-images", "series_number", "pk")
        .first()
    )
    if series is None:
        raise Invalid("the study holds no images to read")
    return series, None


def reading_audit(
    reading: Reading,
    action: str,
    what: str,
    *,
    request: HttpRequest | None = None,
    job: InferenceJob | None = None,
    detail: dict[str, Any] | None = None,
) -> None:
    study = reading.study
    audit_record(
        event=EventID.PROCEDURE_RECORD,
        action=action,
        request=request,
        user=reading.reader if request is None else None,
        patient_id=study.patient.patient_id,
        accession=study.accession_number,
        study_uid=study.study_uid,
        series_uid=reading.series.series_uid,
        model_version=str(job.model_version) if job is not None else "",
        inference_job_id=job.pk if job is not None else None,
        detail={
            "what": what,
            "reading": reading.pk,
            "project": reading.project_id,
            "phase": reading.phase,
            **(detail or {}),
        },
    )
