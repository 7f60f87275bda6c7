"""The JSON API under /api/v1/: each app contributes its own routes."""

from django.urls import path

from audit import api as audit_api
from inference import api as inference_api
from reviews import api as reviews_api

urlpatterns = [
    path("me/", reviews_api.CurrentUserApi.as_view(), name="api-me"),
    path("audit/events/", audit_api.AuditEventListApi.as_view(), name="api-audit-events"),
    path("studies/<str:study_uid>/ai/", inference_api.StudyAiApi.as_view(), name="api-study-ai"),
    path("inference/models/", inference_api.ModelListApi.as_view(), name="api-inference-models"),
    path("inference/jobs/", inference_api.JobRequestApi.as_view(), name="api-inference-job-request"),
    path("inference/jobs/<int:pk>/", inference_api.JobDetailApi.as_view(), name="api-inference-job"),
    path(
        "inference/jobs/<int:pk>/arrays/<str:kind>/",
        inference_api.JobArrayApi.as_view(),
        name="api-inference-job-array",
    ),
    path(
        "inference/jobs/<int:pk>/cancel/",
        inference_api.JobCancelApi.as_view(),
        name="api-inference-job-cancel",
    ),
    path(
        "inference/jobs/<int:pk>/rerun/", inference_api.JobRerunApi.as_view(), name="api-inference-job-rerun"
    ),
    path("worklist/", reviews_api.WorklistApi.as_view(), name="api-worklist"),
    path("projects/", reviews_api.ProjectListApi.as_view(), name="api-projects"),
    path(
        "projects/<int:pk>/assignments/",
        reviews_api.AssignmentCreateApi.as_view(),
        name="api-project-assignments",
    ),
    path("readings/", reviews_api.ReadingListCreateApi.as_view(), name="api-readings"),
    path("readings/<int:pk>/", reviews_api.ReadingApi.as_view(), name="api-reading"),
    path(
        "readings/<int:pk>/heartbeat/",
        reviews_api.ReadingHeartbeatApi.as_view(),
        name="api-reading-heartbeat",
    ),
    path("readings/<int:pk>/lock/", reviews_api.ReadingLockApi.as_view(), name="api-reading-lock"),
    path("readings/<int:pk>/reveal/", reviews_api.ReadingRevealApi.as_view(), name="api-reading-reveal"),
    path("readings/<int:pk>/decisions/", reviews_api.DecisionsApi.as_view(), name="api-reading-decisions"),
    path(
        "readings/<int:pk>/decisions/<int:decision_pk>/mask/",
        reviews_api.DecisionMaskApi.as_view(),
        name="api-reading-decision-mask",
    ),
    path("readings/<int:pk>/submit/", reviews_api.ReadingSubmitApi.as_view(), name="api-reading-submit"),
    path("consensus/projects/", reviews_api.ConsensusProjectListApi.as_view(), name="api-consensus-projects"),
    path(
        "consensus/projects/<int:pk>/",
        reviews_api.ConsensusProjectApi.as_view(),
        name="api-consensus-project",
    ),
    path(
        "consensus/projects/<int:pk>/cases/",
        reviews_api.ConsensusCaseListApi.as_view(),
        name="api-consensus-project-cases",
    ),
    path("consensus/cases/<int:pk>/", reviews_api.ConsensusCaseApi.as_view(), name="api-consensus-case"),
    path(
        "consensus/cases/<int:pk>/masks/<str:kind>/",
        reviews_api.ConsensusCaseMaskApi.as_view(),
        name="api-consensus-case-mask",
    ),
    path(
        "consensus/cases/<int:pk>/decisions/<int:decision_pk>/mask/",
        reviews_api.ConsensusDecisionMaskApi.as_view(),
        name="api-consensus-case-decision-mask",
    ),
    path(
        "consensus/cases/<int:pk>/reference/",
        reviews_api.ReferenceCreateApi.as_view(),
        name="api-consensus-case-reference",
    ),
    path("feedback/exports/", reviews_api.FeedbackExportCreateApi.as_view(), name="api-feedback-exports"),
    path(
        "feedback/exports/<int:pk>/",
        reviews_api.FeedbackExportStatusApi.as_view(),
        name="api-feedback-export",
    ),
    path(
        "feedback/exports/<int:pk>/file/",
        reviews_api.FeedbackExportFileApi.as_view(),
        name="api-feedback-export-file",
    ),
    path(
        "audit/events/export/<str:export_format>/",
        audit_api.AuditEventExportApi.as_view(),
        name="api-audit-export",
    ),
]
