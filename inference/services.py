"""Requesting, cancelling and re-running inference jobs (keyword-only, typed, <entity>_<action>).

How a series reaches the models: every stored instance marks its series as pending with a
due time (now + INFERENCE_SERIES_STABLE_SECONDS); a settle task runs when it is due, and if
no instance came in the meantime it queues one job for each active or shadow model whose
input specification the series matches. Jobs are sent to the worker after the transaction
commits, and a job is keyed by (model, series, input hash), so a series reported twice is
read once.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from audit.codes import Action, EventID, EventType, Outcome
from audit.services import audit_record
from config.jobs import job_pending
from inference.matching import series_matches
from inference.models import InferenceJob, ModelVersion, PendingSeries
from viewer.models import Series


class JobError(Exception):
    """A job cannot be requested, cancelled or re-run; the message says why."""


def series_pending_mark(*, series_uid: str) -> None:
    """Called for each stored instance: (re)sets the series' due time, schedules a settle once."""
    from inference.tasks import series_settle

    series = Series.objects.filter(series_uid=series_uid).only("pk").first()
    if series is None:
        return
    due = timezone.now() + dt.timedelta(seconds=settings.INFERENCE_SERIES_STABLE_SECONDS)
    updated = PendingSeries.objects.filter(series=series).update(due_at=due)
    if updated:
        return  # a settle task is already scheduled; it will see the later due time
    try:
        with transaction.atomic():
            PendingSeries.objects.create(series=series, due_at=due)
    except IntegrityError:  # a concurrent ingest of the same series created it
        PendingSeries.objects.filter(series=series).update(due_at=due)
        return
    delay = settings.INFERENCE_SERIES_STABLE_SECONDS
    transaction.on_commit(lambda: series_settle.apply_async(kwargs={"series_pk": series.pk}, countdown=delay))


def series_settle_check(*, series_pk: int) -> float | None:
    """Queues the series' jobs if it stopped growing; else returns the seconds to wait."""
    pending = PendingSeries.objects.filter(series_id=series_pk).first()
    if pending is None:
        return None
    wait = (pending.due_at - timezone.now()).total_seconds()
    if wait > 0:
        return wait
    with transaction.atomic():
        if PendingSeries.objects.filter(pk=pending.pk, due_at=pending.due_at).delete()[0] == 0:
            return None  # an instance arrived after all, or another settle task got here first
        series = Series.objects.select_related("study").get(pk=series_pk)
        jobs_for_new_series(series=series)
    return None


def jobs_for_new_series(*, series: Series) -> list[InferenceJob]:
    """One automatic job per active or shadow model that the series matches (none twice)."""
    models = ModelVersion.objects.filter(status__in=[ModelVersion.Status.ACTIVE, ModelVersion.Status.SHADOW])
    jobs = []
    for model in models:
        if series_matches(series=series, model=model).ok:
            job = _job_create(model=model, series=series, trigger=InferenceJob.Trigger.AUTO, user=None)
            if job is not None:
                jobs.append(job)
    return jobs


def job_request(*, series: Series, model: ModelVersion, user: Any = None) -> InferenceJob:
    """A job asked for by a person or script (run_inference, the API): runs even on a series the
    model's input specification does not match, so the job says why the model cannot read it."""
    if model.status == ModelVersion.Status.RETIRED:
        raise JobError(f"{model} is retired; make it active or shadow to run it")
    job = _job_create(model=model, series=series, trigger=InferenceJob.Trigger.MANUAL, user=user)
    assert job is not None  # an automatic job's duplicate is refused, a request's is the same job
    return job


def job_rerun(*, job: InferenceJob, user: Any = None) -> InferenceJob:
    """A new job for the same model and series; the old one and its outputs stay as they were.
    Asked again while that new job is queued or running (a double click), the same new job."""
    if not job.finished:
        raise JobError(f"job {job.pk} is still {job.status}; cancel it or wait for it to finish")
    series = Series.objects.select_related("study").get(pk=job.series_id)
    new = _job_create(
        model=job.model_version, series=series, trigger=InferenceJob.Trigger.RERUN, user=user, rerun_of=job
    )
    assert new is not None
    return new


def job_cancel(*, job: InferenceJob, user: Any = None) -> bool:
    """Cancels a queued or running job (a running one stops at its next progress report)."""
    cancelled = (
        InferenceJob.objects.filter(
            pk=job.pk, status__in=[InferenceJob.Status.QUEUED, InferenceJob.Status.RUNNING]
        ).update(status=InferenceJob.Status.CANCELLED, finished_at=timezone.now(), stage="cancelled")
        == 1
    )
    if cancelled:
        job.refresh_from_db()
        job_audit(job, action=Action.UPDATE, user=user, detail={"cancelled": True})
        job_finished_announce(job)
    return cancelled


def job_finished_announce(job: InferenceJob) -> None:
    """Sends inference.signals.job_finished once the caller's transaction commits."""
    from inference.signals import job_finished

    job_pk, study_pk, status = job.pk, job.series.study_id, job.status
    transaction.on_commit(
        lambda: job_finished.send(sender=InferenceJob, job_pk=job_pk, study_pk=study_pk, status=status)
    )


def input_hash(*, series: Series) -> tuple[str, int]:
    """SHA-256 over the series' instances' SHA-256s in SOP Instance UID order, and their count."""
    digest = hashlib.sha256()
    count = 0
    for sha in series.instances.order_by("sop_instance_uid").values_list("sha256", flat=True):
        digest.update(bytes.fromhex(sha))
        count += 1
    return digest.hexdigest(), count


def _job_create(
    *, model: ModelVersion, series: Series, trigger: str, user: Any, rerun_of: InferenceJob | None = None
) -> InferenceJob | None:
    """A new queued job, sent to the workers once the transaction commits. An automatic job
    that the model already has for exactly this input is not made (None); a person's request
    for what they asked for already, still queued or running, gets that job (no second run
    of the model for a double click or a client's retry)."""
    from inference.tasks import job_run

    digest, count = input_hash(series=series)
    requester = user if getattr(user, "is_authenticated", False) else None
    if trigger != InferenceJob.Trigger.AUTO:
        pending = job_pending(
            InferenceJob,
            user=requester,
            queued=InferenceJob.Status.QUEUED,
            running=InferenceJob.Status.RUNNING,
            model_version_id=model.pk,
            series_id=series.pk,
            input_hash=digest,
            trigger=trigger,
            rerun_of_id=rerun_of.pk if rerun_of else None,
        )
        if pending is not None:
            return pending
    try:
        with transaction.atomic():
            job = InferenceJob.objects.create(
                model_version=model,
                series=series,
                trigger=trigger,
                input_hash=digest,
                instance_count=count,
                requested_by=requester,
                rerun_of=rerun_of,
                stage="queued",
            )
            job_audit(job, action=Action.CREATE, user=user, detail={"trigger": trigger})
    except IntegrityError:
        return None  # this model already has an automatic job for exactly this input
    transaction.on_commit(lambda: job_run.apply_async(kwargs={"job_pk": job.pk}))
    return job


def job_audit(
    job: InferenceJob,
    *,
    action: str,
    user: Any = None,
    detail: dict[str, Any] | None = None,
    outcome: int = Outcome.SUCCESS,
    outcome_reason: str = "",
) -> None:
    series = job.series
    study = series.study
    audit_record(
        event=EventID.APPLICATION_ACTIVITY,
        event_type=EventType.LOCAL_SERVICE_STARTED if action == Action.CREATE else None,
        action=action,
        outcome=outcome,
        outcome_reason=outcome_reason,
        user=user,
        username="" if user else "os:inference",
        patient_id=study.patient.patient_id,
        accession=study.accession_number,
        study_uid=study.study_uid,
        series_uid=series.series_uid,
        model_version=str(job.model_version),
        inference_job_id=job.pk,
        detail={"status": job.status, **(detail or {})},
    )
