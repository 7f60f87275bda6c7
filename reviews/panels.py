"""The reading panel of the study page (viewer.panels): what a reader of the study sees
beside the images.

Opening the study page opens the reader's reading (as POST readings/ does), so that a blind
read is blind from the first request on: while the reading has revealed no AI result,
`reviews.selectors.ai_blind_scope` keeps the AI's output, its series included, from every
route, and the page loads none. The panel shows the AI once the reading reveals it."""

from __future__ import annotations

import json
from typing import Any

from django.http import HttpRequest
from django.urls import reverse

from config.inputs import id_param
from reviews import services
from reviews.errors import Invalid
from reviews.models import ConsensusCase
from reviews.permissions import ADJUDICATE, READ_STUDY, SEE_AI, SEE_CONSENSUS
from reviews.selectors import BLIND_PHASES
from reviews.services.decisions import LABELS
from viewer.models import Study
from viewer.panels import StudyPanel

TEMPLATE = "reviews/reading_panel.html"


def reading_panel(request: HttpRequest, study: Study) -> StudyPanel | None:
    user: Any = request.user
    if not user.has_perm("reviews.add_reading"):
        return None
    wanted = id_param(request.GET.get("project", ""))
    entry = services.reading_entry(user=user, study=study, project_pk=wanted)
    if entry is None or not user.has_perm(READ_STUDY, entry):
        return None
    try:
        reading, _ = services.reading_start(user=user, entry=entry, request=request)
    except Invalid:  # nothing in the study to read (no images)
        return None
    context = {
        "readings_url": reverse("api-readings"),
        "study_uid": study.study_uid,
        "project": entry.project,
        "labels_json": json.dumps(list(LABELS)),
        "confidences": [1, 2, 3, 4, 5],
        "questions": entry.project.questions,  # a consensus project's study-level questions
        "show_ai": user.has_perm(SEE_AI, entry.project),
    }
    return StudyPanel(template=TEMPLATE, context=context, hides_ai=reading.phase in BLIND_PHASES)


ADJUDICATION_TEMPLATE = "reviews/adjudication_panel.html"


def adjudication_panel(request: HttpRequest, study: Study) -> StudyPanel | None:
    """`?case=<id>` on the study page of a consensus case: for its adjudicators (and admins),
    every read side by side, the fused masks, and the form that records the reference."""
    wanted = id_param(request.GET.get("case", ""))
    if wanted is None:
        return None
    case = ConsensusCase.objects.select_related("project").filter(pk=wanted, entry__study=study).first()
    if case is None or not request.user.has_perm(SEE_CONSENSUS, case.project):
        return None
    context = {
        "case": case,
        "case_url": reverse("api-consensus-case", args=[case.pk]),
        "may_adjudicate": request.user.has_perm(ADJUDICATE, case.project),
        "questions": case.project.questions,
        "question_texts": json.dumps(case.project.question_texts),
        "dashboard_url": reverse("consensus-project", args=[case.project_id]),
    }
    return StudyPanel(template=ADJUDICATION_TEMPLATE, context=context)
