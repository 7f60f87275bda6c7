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
    path("inference/jobs/<int:pk>/cancel/", inference_api.JobCancelApi.as_view(), name="api-inference-job-cancel"),
    path("inference/jobs/<int:pk>/rerun/", inference_api.JobRerunApi.as_view(), name="api-inference-job-rerun"),
    path(
        "audit/events/export/<str:export_format>/",
        audit_api.AuditEventExportApi.as_view(),
        name="api-audit-export",
    ),
]
