"""The labelled feedback export over the API: start one in the background, watch it, fetch it.
Admins only (reviews.export_feedback); every fetched file is audited as 110106 Export."""

from __future__ import annotations

from django.core.files.storage import default_storage
from django.http import FileResponse, Http404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response

from reviews import services
from reviews.api.common import ErrorSerializer, ReviewsApi, has, hidden_or_missing, valid
from reviews.errors import Invalid
from reviews.models import Decision, FeedbackExport
from reviews.permissions import EXPORT_FEEDBACK


def _status(export: FeedbackExport) -> dict[str, object]:
    return {
        "id": export.pk,
        "status": export.status,
        "filters": export.filters,
        "total": export.total,
        "written": export.written,
        "error": export.error or None,
        "created_at": export.created_at.isoformat(),
        "finished_at": export.finished_at.isoformat() if export.finished_at else None,
        "file_url": f"/api/v1/feedback/exports/{export.pk}/file/" if export.file_name else None,
    }


def _export(request: Request, pk: int) -> FeedbackExport:
    """The caller's own export; another admin's is 404 as if it did not exist (audited)."""
    export = FeedbackExport.objects.filter(pk=pk, requested_by_id=request.user.pk).first()
    if export is None:
        hidden_or_missing(request, exists=FeedbackExport.objects.filter(pk=pk).exists())
    assert export is not None
    return export


class FeedbackExportCreateApi(ReviewsApi):
    """Starts a background export of the matching feedback (202, with its status URL)."""

    permission_classes = [IsAuthenticated, has(EXPORT_FEEDBACK)]

    class InputSerializer(serializers.Serializer):
        """Every filter is optional: left out or "" it does not narrow the export."""

        class Meta:
            ref_name = "FeedbackExportInput"

        project = serializers.CharField(
            required=False, allow_blank=True, default="", max_length=100, help_text="name or id"
        )
        model = serializers.CharField(
            required=False, allow_blank=True, default="", max_length=100, help_text="name or name:version"
        )
        since = serializers.CharField(
            required=False, allow_blank=True, default="", help_text="YYYY-MM-DD or ISO 8601, inclusive"
        )
        until = serializers.CharField(
            required=False, allow_blank=True, default="", help_text="YYYY-MM-DD or ISO 8601, exclusive"
        )
        decision = serializers.CharField(
            required=False,
            allow_blank=True,
            default="",
            max_length=16,
            help_text=f"one kind only: {', '.join(Decision.Kind.values)}",
        )
        reference = serializers.BooleanField(
            required=False, default=False, help_text="the consensus cases' reference standards instead"
        )

    @extend_schema(
        request=InputSerializer,
        responses={202: OpenApiTypes.OBJECT, 400: ErrorSerializer, 403: ErrorSerializer},
    )
    def post(self, request: Request) -> Response:
        data = valid(self.InputSerializer, request.data)
        try:
            feedback_filter = services.FeedbackFilter.from_params(data)
            feedback_filter.check_names()
        except services.FilterError as exc:
            raise Invalid(str(exc), field=exc.field) from None
        export = services.feedback_export_request(feedback_filter=feedback_filter, user=request.user)
        body = _status(export) | {"status_url": f"/api/v1/feedback/exports/{export.pk}/"}
        return Response(body, status=202)


class FeedbackExportStatusApi(ReviewsApi):
    permission_classes = [IsAuthenticated, has(EXPORT_FEEDBACK)]

    @extend_schema(responses={200: OpenApiTypes.OBJECT, 404: ErrorSerializer})
    def get(self, request: Request, pk: int) -> Response:
        return Response(_status(_export(request, pk)))


class FeedbackExportFileApi(ReviewsApi):
    """The finished export as a zip (feedback/manifest.jsonl, feedback/masks/, feedback/seg/)."""

    permission_classes = [IsAuthenticated, has(EXPORT_FEEDBACK)]

    @extend_schema(responses={(200, "application/zip"): OpenApiTypes.BINARY, 404: ErrorSerializer})
    def get(self, request: Request, pk: int) -> FileResponse:
        export = _export(request, pk)
        if not export.file_name:
            raise Http404(f"the export is {export.status}: no file yet")
        services.feedback_export_fetched(export=export, request=request._request)
        return FileResponse(
            default_storage.open(export.file_name, "rb"),
            as_attachment=True,
            filename=f"overread-feedback-{export.pk}.zip",
            content_type="application/zip",
        )
