"""The reading panel of the study page (viewer.panels): what a reader of the study sees
beside the images. The page itself stays free of the AI: the panel reveals it (after the
lock in an unaided-first project), and until then the AI's own series stay out of the
series list as well."""

from __future__ import annotations

import json
from typing import Any

from django.http import HttpRequest
from django.urls import reverse

from inference.models import JobOutput
from reviews.models import Reading, ReadingProject
from reviews.permissions import READ_STUDY, ai_hidden_from, member_role
from reviews.selectors import department_project_for_reader, project_entry_for_reader
from reviews.services.decisions import LABELS
from viewer.models import Instance, Study
from viewer.panels import StudyPanel

TEMPLATE = "reviews/reading_panel.html"


def reading_project(*, user: Any, study: Study, project_pk: int | None = None) -> ReadingProject | None:
    """The project through which `user` would read `study` (as POST readings/ picks it), or
    None when they read it in none. Nothing is created."""
    entry = project_entry_for_reader(user=user, study=study, project_pk=project_pk)
    if entry is not None:
        return entry.project if user.has_perm(READ_STUDY, entry) else None
    return department_project_for_reader(user=user, project_pk=project_pk)


def reading_panel(request: HttpRequest, study: Study) -> StudyPanel | None:
    user = request.user
    if not user.has_perm("reviews.add_reading"):
        return None
    wanted = request.GET.get("project", "")
    project = reading_project(user=user, study=study, project_pk=int(wanted) if wanted.isdigit() else None)
    if project is None:
        return None
    reading = Reading.objects.filter(project=project, study=study, reader=user.pk).first()
    if reading is not None:
        blind = reading.revealed_job_id is None
    else:  # the reading opens with the page (the panel's POST readings/)
        hidden = ai_hidden_from(member_role(user, project), project)
        blind = hidden or project.reading_mode == ReadingProject.Mode.UNAIDED_FIRST
    context = {
        "readings_url": reverse("api-readings"),
        "study_uid": study.study_uid,
        "project": project,
        "labels_json": json.dumps(list(LABELS)),
        "confidences": [1, 2, 3, 4, 5],
    }
    return StudyPanel(
        template=TEMPLATE,
        context=context,
        hides_ai=blind,  # the panel shows the AI when the reading reveals it
        hidden_series=_ai_series(study) if blind else frozenset(),
    )


def _ai_series(study: Study) -> frozenset[str]:
    """The series of the study that hold the AI's DICOM objects (SEG, Parametric Map, SR)."""
    outputs = JobOutput.objects.filter(
        job__series__study=study, kind__in=JobOutput.DICOM_KINDS, indexed=True
    ).values("sop_instance_uid")
    return frozenset(
        Instance.objects.filter(sop_instance_uid__in=outputs).values_list("series__series_uid", flat=True)
    )
