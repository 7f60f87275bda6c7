"""The worklist and assignment over the API."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response

from config.inputs import BIGGEST_ID
from reviews import services
from reviews.api.common import ErrorSerializer, HasRole, ReviewsApi, has, hidden_or_missing, valid
from reviews.api.presenting import worklist_row_data
from reviews.errors import Invalid
from reviews.models import ReadingProject
from reviews.permissions import ASSIGN
from reviews.selectors import (
    MAX_PAGE,
    PRIORITY_FILTERS,
    STATUS_FILTERS,
    WorklistFilter,
    projects_for_user,
    worklist_page,
)
from viewer.models import Study


class WorklistApi(ReviewsApi):
    """The caller's worklist, one page of 50: urgent, priority, then the rest, oldest first."""

    permission_classes = [IsAuthenticated, HasRole]

    class InputSerializer(serializers.Serializer):
        class Meta:
            ref_name = "WorklistQuery"

        status = serializers.ChoiceField(choices=list(STATUS_FILTERS), required=False, default="to_read")
        priority = serializers.ChoiceField(choices=list(PRIORITY_FILTERS), required=False, default="")
        modality = serializers.CharField(required=False, default="", max_length=16)
        q = serializers.CharField(
            required=False, default="", max_length=64, help_text="patient, accession, description"
        )
        mine = serializers.BooleanField(
            required=False, default=False, help_text="only studies assigned to me"
        )
        project = serializers.IntegerField(
            required=False, allow_null=True, default=None, min_value=1, max_value=BIGGEST_ID
        )
        page = serializers.IntegerField(required=False, default=1, min_value=1, max_value=MAX_PAGE)

    @extend_schema(parameters=[InputSerializer], responses={200: OpenApiTypes.OBJECT, 400: ErrorSerializer})
    def get(self, request: Request) -> Response:
        data = valid(self.InputSerializer, request.query_params)
        number = data.pop("page")
        page = worklist_page(user=request.user, worklist_filter=WorklistFilter(**data), page=number)
        return Response(
            {
                "results": [worklist_row_data(row) for row in page.rows],
                "page": page.number,
                "has_next": page.has_next,
                "has_previous": page.has_previous,
                "polling": page.polling,
            }
        )


class ProjectListApi(ReviewsApi):
    """The reading projects the caller sees (admins: all active ones)."""

    permission_classes = [IsAuthenticated, HasRole]

    @extend_schema(responses={200: OpenApiTypes.OBJECT})
    def get(self, request: Request) -> Response:
        projects = projects_for_user(user=request.user).distinct()
        return Response(
            [
                {
                    "id": p.pk,
                    "name": p.name,
                    "reading_mode": p.reading_mode,
                    "override_reasons": p.override_reasons,
                    "show_ai_to_annotators": p.show_ai_to_annotators,
                    "triage_in_worklist": p.triage_in_worklist,
                }
                for p in projects
            ]
        )


class AssignmentCreateApi(ReviewsApi):
    """An admin assigns a study to a reader of the project (201; 200 when it already was)."""

    permission_classes = [IsAuthenticated, has(ASSIGN)]

    class InputSerializer(serializers.Serializer):
        class Meta:
            ref_name = "AssignmentInput"

        study_uid = serializers.CharField(max_length=64)
        reader = serializers.CharField(max_length=150, help_text="the reader's username")

    @extend_schema(
        request=InputSerializer,
        responses={201: OpenApiTypes.OBJECT, 400: ErrorSerializer, 403: ErrorSerializer},
    )
    def post(self, request: Request, pk: int) -> Response:
        data = valid(self.InputSerializer, request.data)
        project = ReadingProject.objects.filter(pk=pk).first()
        if project is None:
            hidden_or_missing(request, exists=False)
        assert project is not None
        study = Study.objects.filter(study_uid=data["study_uid"]).first()
        if study is None:
            raise Invalid("no such study", field="study_uid")
        reader = get_user_model().objects.filter(username=data["reader"]).first()
        if reader is None:
            raise Invalid("no such user", field="reader")
        before = project.assignments.filter(study=study, reader=reader).exists()
        assignment = services.assignment_create(
            project=project, study=study, reader=reader, user=request.user
        )
        return Response(
            {
                "id": assignment.pk,
                "project": project.pk,
                "study_uid": study.study_uid,
                "reader": reader.get_username(),
            },
            status=200 if before else 201,
        )
