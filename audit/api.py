"""JSON API of the audit app (one view per operation): list events, export events.

Admin role only, by permission; a refusal is a 403 that AuditMiddleware records.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from django.http import Http404, StreamingHttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.permissions import BasePermission, IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from audit import selectors, services
from audit.codes import Action, Outcome
from audit.exporters import FORMATS, attach
from audit.filters import FAILURES, AuditFilter
from config.inputs import BIGGEST_ID, validate_date_range


class CanViewAuditEvents(BasePermission):
    def has_permission(self, request: Request, view: Any) -> bool:
        return bool(request.user.has_perm("audit.view_auditevent"))


class CanExportAuditEvents(BasePermission):
    def has_permission(self, request: Request, view: Any) -> bool:
        return bool(
            request.user.has_perm("audit.view_auditevent")
            and request.user.has_perm("audit.export_auditevent")
        )


class FilterSerializer(serializers.Serializer):
    """The filter, as query parameters (the review page uses the same names)."""

    since = serializers.DateTimeField(
        required=False, help_text="inclusive, ISO 8601", validators=[validate_date_range]
    )
    until = serializers.DateTimeField(
        required=False, help_text="exclusive, ISO 8601", validators=[validate_date_range]
    )
    username = serializers.CharField(required=False, max_length=150)
    patient_id = serializers.CharField(required=False, max_length=64)
    study_uid = serializers.CharField(required=False, max_length=64)
    event_id = serializers.CharField(required=False, max_length=16, help_text="a DICOM CID 400 code")
    outcome = serializers.ChoiceField(
        required=False, choices=[str(code) for code, _ in Outcome.CHOICES] + [FAILURES]
    )

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if problem := self._filter_of(attrs).range_problem:
            raise serializers.ValidationError({"until": [problem]})
        return attrs

    def audit_filter(self) -> AuditFilter:
        return self._filter_of(self.validated_data)

    @staticmethod
    def _filter_of(values: dict[str, Any]) -> AuditFilter:
        return AuditFilter(**{name: value for name, value in values.items() if name in _FILTER_FIELDS})


_FILTER_FIELDS = {field.name for field in dataclasses.fields(AuditFilter)}


class AuditEventListApi(APIView):
    """Audit events matching a filter, newest first, by keyset (`before`/`after` an id)."""

    permission_classes = [IsAuthenticated, CanViewAuditEvents]

    class InputSerializer(FilterSerializer):
        class Meta:
            ref_name = "AuditEventListInput"

        before = serializers.IntegerField(required=False, min_value=1, max_value=BIGGEST_ID)
        after = serializers.IntegerField(required=False, min_value=0, max_value=BIGGEST_ID)
        limit = serializers.IntegerField(required=False, min_value=1, max_value=500, default=50)

    class OutputSerializer(serializers.Serializer):
        class Meta:
            ref_name = "AuditEvent"

        id = serializers.IntegerField()
        occurred_at = serializers.DateTimeField()
        event_id = serializers.CharField()
        event_meaning = serializers.CharField()
        event_type = serializers.CharField()
        event_type_meaning = serializers.CharField()
        action = serializers.ChoiceField(choices=Action.CHOICES)
        outcome = serializers.IntegerField()
        outcome_reason = serializers.CharField()
        user_id = serializers.IntegerField(allow_null=True)
        username = serializers.CharField()
        role = serializers.CharField()
        source_ip = serializers.CharField()
        request_id = serializers.CharField()
        patient_id = serializers.CharField()
        accession = serializers.CharField()
        study_uid = serializers.CharField()
        series_uid = serializers.CharField()
        sop_uid = serializers.CharField()
        model_version = serializers.CharField()
        inference_job_id = serializers.IntegerField(allow_null=True)
        detail = serializers.JSONField(source="detail_data")
        prev_hash = serializers.CharField()
        hash = serializers.CharField()

    serializer_class = OutputSerializer

    @extend_schema(parameters=[InputSerializer])
    def get(self, request: Request) -> Response:
        given = self.InputSerializer(data=request.query_params)
        given.is_valid(raise_exception=True)
        audit_filter = given.audit_filter()
        page = selectors.audit_event_page(
            audit_filter=audit_filter,
            before=given.validated_data.get("before"),
            after=given.validated_data.get("after"),
            limit=given.validated_data["limit"],
        )
        services.audit_log_used(request=request._request, audit_filter=audit_filter, page="audit API")
        return Response(
            {
                "results": self.OutputSerializer(page.events, many=True).data,
                "newer_than": page.newer_than,
                "older_than": page.older_than,
            }
        )


class AuditEventExportApi(APIView):
    """Matching events exported as csv, jsonl, fhir or syslog, streamed (recorded as 110106 + 110101)."""

    permission_classes = [IsAuthenticated, CanExportAuditEvents]

    @extend_schema(
        parameters=[FilterSerializer], responses={(200, "application/octet-stream"): OpenApiTypes.BINARY}
    )
    def get(self, request: Request, export_format: str) -> StreamingHttpResponse:
        if export_format not in FORMATS:
            raise Http404("unknown export format")
        given = FilterSerializer(data=request.query_params)
        given.is_valid(raise_exception=True)
        chunks = services.audit_export_stream(
            export_format=export_format, audit_filter=given.audit_filter(), request=request._request
        )
        response = StreamingHttpResponse(chunks)
        attach(response, FORMATS[export_format])
        return response
