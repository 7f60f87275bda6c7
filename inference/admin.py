"""Django admin of the inference app: the model registry (status changes audited) and jobs (read-only).

Models are added with `manage.py register_model`, which checks that the weights load and
run; the admin changes only a model's status, through model_status_set.
"""

import json

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.html import format_html

from inference.models import InferenceJob, ModelVersion
from inference.registry import model_status_set
from viewer.admin import ReadOnlyAdmin


def _status_action(status: str, label: str):
    @admin.action(description=label, permissions=["change"])
    def action(modeladmin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet[ModelVersion]) -> None:
        for model in queryset:
            model_status_set(model=model, status=status, user=request.user)
        messages.success(request, f"{queryset.count()} model version(s) now {status}.")

    action.__name__ = f"make_{status}"
    return action


@admin.register(ModelVersion)
class ModelVersionAdmin(ReadOnlyAdmin):
    list_display = ["name", "version", "status", "task", "demonstration", "threshold", "created_at"]
    list_filter = ["status", "demonstration", "name"]
    search_fields = ["name", "version", "weights_sha256"]
    actions = [
        _status_action("active", "Make active (readers see its outputs)"),
        _status_action("shadow", "Make shadow (runs, outputs kept for monitoring only)"),
        _status_action("retired", "Retire (runs on nothing new)"),
    ]
    readonly_fields = ["card"]
    exclude = ["model_card"]

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return bool(request.user.has_perm("inference.change_modelversion"))

    def get_readonly_fields(self, request: HttpRequest, obj: object = None) -> list[str]:
        return [f.name for f in ModelVersion._meta.fields if f.name != "model_card"] + ["card"]

    @admin.display(description="Model card")
    def card(self, obj: ModelVersion) -> str:
        return format_html("<pre>{}</pre>", json.dumps(obj.model_card, indent=2, ensure_ascii=False))


@admin.register(InferenceJob)
class InferenceJobAdmin(ReadOnlyAdmin):
    list_display = [
        "pk",
        "model_version",
        "series",
        "status",
        "progress",
        "trigger",
        "created_at",
        "finished_at",
    ]
    list_filter = ["status", "trigger", "model_version"]
    search_fields = ["series__series_uid", "series__study__study_uid", "input_hash"]
    list_select_related = ["model_version", "series"]
