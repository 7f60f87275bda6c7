"""Django admin: audit events are shown read-only (no add, change or delete, superusers included)."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest, HttpResponse

from audit.filters import AuditFilter
from audit.models import AuditEvent
from audit.services import audit_log_used


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):
    list_display = (
        "id",
        "occurred_at",
        "event_id",
        "event_type",
        "action",
        "outcome",
        "username",
        "patient_id",
    )
    list_filter = ("event_id", "outcome", "action")
    search_fields = ("=username", "=patient_id", "=study_uid", "=request_id")  # exact: indexed, fast
    show_full_result_count = False  # no second COUNT(*) over millions of rows
    list_per_page = 50

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return [field.name for field in AuditEvent._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def changelist_view(self, request: HttpRequest, extra_context: Any = None) -> HttpResponse:
        response = super().changelist_view(request, extra_context)
        if response.status_code == 200:
            audit_log_used(request=request, audit_filter=AuditFilter(), page="django admin")
        return response

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: Any = None
    ) -> HttpResponse:
        response = super().change_view(request, object_id, form_url, extra_context)
        if response.status_code == 200:
            audit_log_used(
                request=request, audit_filter=AuditFilter(), page=f"django admin event {object_id}"
            )
        return response
