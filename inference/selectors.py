"""Reads of the inference app (keyword-only, typed, named <entity>_<action>).

Who sees which job: a job is visible with its series (viewer.selectors decides that), and a
shadow model's jobs only to those who monitor models (inference.view_shadow_output). That
rule lives here, once; every page and API that shows AI output starts from `jobs_for_user`.
An app that hides AI output from some readers (reviews: annotators of projects that do not
show them the AI) registers a scope with `job_scope_register` when it starts.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.db.models import Exists, OuterRef, Q, QuerySet

from inference.models import InferenceJob, ModelVersion
from viewer.models import Series, Study
from viewer.selectors import study_queryset_for_user

VIEW_SHADOW = "inference.view_shadow_output"

# (user=) -> a condition on InferenceJob that the jobs a user sees must also meet.
JobScope = Callable[..., Q]
_job_scopes: list[JobScope] = []


def job_scope_register(scope: JobScope) -> None:
    """Narrows every read of AI output to jobs that also meet `scope(user=...)`'s condition."""
    if scope not in _job_scopes:
        _job_scopes.append(scope)


def jobs_for_user(*, user: Any) -> QuerySet[InferenceJob]:
    # The job's input series is an image series from outside: the study decides.
    visible = study_queryset_for_user(user=user).filter(pk=OuterRef("series__study_id"))
    jobs = InferenceJob.objects.filter(Exists(visible)).select_related("model_version", "series__study")
    if not user.has_perm(VIEW_SHADOW):
        jobs = jobs.exclude(model_version__status=ModelVersion.Status.SHADOW)
    if not user.is_superuser:
        for scope in _job_scopes:
            jobs = jobs.filter(scope(user=user))
    return jobs


def job_for_study(*, user: Any, study: Study) -> InferenceJob | None:
    """The job whose outputs a reader sees on a study: the newest of an active model, preferring
    one that succeeded (a re-run in progress does not hide the last good result)."""
    jobs = jobs_for_user(user=user).filter(
        series__study=study, model_version__status=ModelVersion.Status.ACTIVE
    )
    newest = jobs.order_by("-created_at", "-pk").first()
    if newest is None or newest.status == InferenceJob.Status.SUCCEEDED:
        return newest
    if newest.status in (InferenceJob.Status.QUEUED, InferenceJob.Status.RUNNING):
        return newest  # its progress is what the reader wants to see
    succeeded = jobs.filter(status=InferenceJob.Status.SUCCEEDED).order_by("-created_at", "-pk").first()
    return succeeded or newest


def model_by_name(*, name: str, version: str | None = None) -> ModelVersion:
    """The named model version, or the newest active (else shadow) version of that name.
    LookupError names what is missing."""
    models = ModelVersion.objects.filter(name=name)
    if version:
        models = models.filter(version=version)
    else:
        models = models.exclude(status=ModelVersion.Status.RETIRED).order_by("status", "-created_at")
    model = models.first()  # "active" sorts before "shadow"
    if model is None:
        raise LookupError(f"no model {name!r}{' ' + version if version else ''} is registered")
    return model


def output_series_scope(*, user: Any) -> Q:
    """Condition on Series (viewer.selectors' series scope): a series holding an AI job's
    DICOM objects (SEG, Parametric Map, SR) is seen by whoever sees that job's output."""
    seen = jobs_for_user(user=user).filter(pk=OuterRef("producer_id"))
    return ~Q(producer_kind=Series.Producer.AI_JOB) | Q(Exists(seen))
