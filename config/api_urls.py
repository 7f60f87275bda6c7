"""The JSON API under /api/v1/: each app contributes its own routes."""

from django.urls import path

from audit import api as audit_api
from reviews import api as reviews_api

urlpatterns = [
    path("me/", reviews_api.CurrentUserApi.as_view(), name="api-me"),
    path("audit/events/", audit_api.AuditEventListApi.as_view(), name="api-audit-events"),
    path(
        "audit/events/export/<str:export_format>/",
        audit_api.AuditEventExportApi.as_view(),
        name="api-audit-export",
    ),
]
