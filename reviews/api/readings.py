"""The reading session over the API: start, read, heartbeat, draft, lock, reveal, decide, submit.

Every write except the heartbeat sends `version`, the reading's version the client read; a
stale one gets 409 {"detail", "version"} and changes nothing. docs/review.md has the whole
contract.
"""

from __future__ import annotations

import base64
from typing import Any

from django.http import Http404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.exceptions import PermissionDenied
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response

from config.api import NumberField
from config.inputs import BIGGEST_ID
from inference.auditing import audit_outputs_accessed
from reviews import services
from reviews.api.common import (
    ErrorSerializer,
    ReviewsApi,
    created_or_ok,
    hidden_or_missing,
    reading_or_404,
    valid,
)
from reviews.api.presenting import decision_data, reading_data
from reviews.errors import Invalid
from reviews.masks import mask_load
from reviews.models import Decision, Reading
from reviews.permissions import READ_STUDY, SEE_AI, SEE_READING, WRITE_READING
from reviews.selectors import (
    decisions_current,
    decisions_history,
    readings_for_user,
)
from viewer.models import Study
from viewer.selectors import study_queryset_for_user
from viewer.store import is_valid_uid

ERRORS = {400: ErrorSerializer, 403: ErrorSerializer, 404: ErrorSerializer, 409: ErrorSerializer}


def _respond(request: Request, reading: Reading, *, status: int = 200) -> Response:
    reading = readings_for_user(user=request.user).get(pk=reading.pk)  # fresh, with its relations
    show_ai = bool(request.user.has_perm(SEE_AI, reading.project))
    if show_ai and reading.revealed_job is not None:
        audit_outputs_accessed(request._request, reading.revealed_job)
    return Response(reading_data(reading, show_ai=show_ai), status=status)


def _writable(request: Request, pk: int) -> Reading:
    reading = reading_or_404(request, pk)
    if not request.user.has_perm(WRITE_READING, reading):
        raise PermissionDenied("only the reader of this reading may change it")
    reading.reader = request.user  # type: ignore[assignment]  # theirs: the write names them, no query
    return reading


class VersionSerializer(serializers.Serializer):
    version = serializers.IntegerField(
        min_value=1, max_value=BIGGEST_ID, help_text="the reading's version you read"
    )


class ReadingListCreateApi(ReviewsApi):
    """GET: the caller's readings (admins: everybody's), optionally of one study.
    POST: opens the caller's reading of a study (200 with the existing one if already open)."""

    permission_classes = [IsAuthenticated]

    class InputSerializer(serializers.Serializer):
        class Meta:
            ref_name = "ReadingCreateInput"

        study_uid = serializers.CharField(max_length=64)
        project = serializers.IntegerField(
            required=False, min_value=1, max_value=BIGGEST_ID, help_text="the project's id; else the caller's"
        )

    @extend_schema(
        operation_id="readings_list",
        parameters=[OpenApiParameter("study_uid", str, required=False)],
        responses={200: OpenApiTypes.OBJECT},
    )
    def get(self, request: Request) -> Response:
        readings = readings_for_user(user=request.user).order_by("-created_at", "-pk")
        if request.query_params.get("study_uid"):
            if not is_valid_uid(request.query_params["study_uid"]):
                raise Invalid("study_uid is not a valid DICOM UID", field="study_uid")
            readings = readings.filter(study__study_uid=request.query_params["study_uid"])
        return Response(
            [
                {
                    "id": r.pk,
                    "project": r.project.name,
                    "study_uid": r.study.study_uid,
                    "reader": r.reader.get_username(),
                    "phase": r.phase,
                    "version": r.version,
                    "url": f"/api/v1/readings/{r.pk}/",
                }
                for r in readings[:200]
            ]
        )

    @extend_schema(
        request=InputSerializer, responses={200: OpenApiTypes.OBJECT, 201: OpenApiTypes.OBJECT, **ERRORS}
    )
    def post(self, request: Request) -> Response:
        if not request.user.has_perm("reviews.add_reading"):
            raise PermissionDenied("your role does not read studies")
        data = valid(self.InputSerializer, request.data)
        study = study_queryset_for_user(user=request.user).filter(study_uid=data["study_uid"]).first()
        if study is None:
            hidden_or_missing(request, exists=Study.objects.filter(study_uid=data["study_uid"]).exists())
        assert study is not None
        entry = services.reading_entry(user=request.user, study=study, project_pk=data.get("project"))
        if entry is None or not request.user.has_perm(READ_STUDY, entry):
            raise PermissionDenied("you are not a reader of a project that holds this study")
        reading, created = services.reading_start(user=request.user, entry=entry, request=request._request)
        return _respond(request, reading, status=created_or_ok(created))


class ReadingApi(ReviewsApi):
    """GET: the reading, with the AI result once revealed and the current decisions.
    PATCH: draft text (unaided_impression before the lock; final_impression, triage_agreement after)."""

    permission_classes = [IsAuthenticated]

    class InputSerializer(VersionSerializer):
        class Meta:
            ref_name = "ReadingUpdateInput"

        unaided_impression = serializers.CharField(required=False, allow_blank=True, max_length=10_000)
        final_impression = serializers.CharField(required=False, allow_blank=True, max_length=10_000)
        triage_agreement = serializers.ChoiceField(required=False, choices=["agree", "disagree", ""])
        answers = serializers.DictField(
            child=serializers.CharField(), required=False, help_text="{question code: choice}, merged"
        )

    @extend_schema(responses={200: OpenApiTypes.OBJECT, 404: ErrorSerializer})
    def get(self, request: Request, pk: int) -> Response:
        reading = reading_or_404(request, pk)
        if not request.user.has_perm(SEE_READING, reading):
            raise PermissionDenied("not your reading")
        return _respond(request, reading)

    @extend_schema(request=InputSerializer, responses={200: OpenApiTypes.OBJECT, **ERRORS})
    def patch(self, request: Request, pk: int) -> Response:
        reading = _writable(request, pk)
        data = valid(self.InputSerializer, request.data)
        reading = services.reading_update(reading=reading, **data)
        return _respond(request, reading)


class ReadingHeartbeatApi(ReviewsApi):
    """Adds `seconds` (1..60) of active reading time to the current phase. No version."""

    permission_classes = [IsAuthenticated]

    class InputSerializer(serializers.Serializer):
        class Meta:
            ref_name = "HeartbeatInput"

        seconds = NumberField(
            help_text=f"active seconds since the last beat, at most {services.MAX_HEARTBEAT_SECONDS}"
        )

    @extend_schema(request=InputSerializer, responses={200: OpenApiTypes.OBJECT, **ERRORS})
    def post(self, request: Request, pk: int) -> Response:
        reading = _writable(request, pk)
        data = valid(self.InputSerializer, request.data)
        reading = services.reading_heartbeat(reading=reading, seconds=data["seconds"])
        return Response(
            {
                "phase": reading.phase,
                "version": reading.version,
                "unaided_seconds": round(reading.unaided_seconds, 1),
                "aided_seconds": round(reading.aided_seconds, 1),
            }
        )


class ReadingLockApi(ReviewsApi):
    """Locks the unaided read for ever, then reveals the AI (when there is a result the
    reader may see)."""

    permission_classes = [IsAuthenticated]

    class InputSerializer(VersionSerializer):
        class Meta:
            ref_name = "LockInput"

        unaided_impression = serializers.CharField(required=False, allow_blank=True, max_length=10_000)

    @extend_schema(request=InputSerializer, responses={200: OpenApiTypes.OBJECT, **ERRORS})
    def post(self, request: Request, pk: int) -> Response:
        reading = _writable(request, pk)
        data = valid(self.InputSerializer, request.data)
        reading = services.reading_lock(reading=reading, request=request._request, **data)
        return _respond(request, reading)


class ReadingRevealApi(ReviewsApi):
    """Reveals an AI result that was not there at the lock (or at the start, ai-first)."""

    permission_classes = [IsAuthenticated]

    @extend_schema(request=VersionSerializer, responses={200: OpenApiTypes.OBJECT, **ERRORS})
    def post(self, request: Request, pk: int) -> Response:
        reading = _writable(request, pk)
        if not request.user.has_perm(SEE_AI, reading.project):
            raise PermissionDenied("this project does not show annotators the AI")
        data = valid(VersionSerializer, request.data)
        reading = services.reading_reveal(reading=reading, version=data["version"], request=request._request)
        return _respond(request, reading)


class DecisionsApi(ReviewsApi):
    """GET: the current decision of each finding (?history=1: every decision, oldest first).
    POST: records a decision (201 with it and the reading's new version)."""

    permission_classes = [IsAuthenticated]

    class InputSerializer(VersionSerializer):
        class Meta:
            ref_name = "DecisionInput"

        kind = serializers.ChoiceField(choices=Decision.Kind.values)
        confidence = serializers.IntegerField(
            required=False,
            allow_null=True,
            help_text="1 (unsure) to 5 (certain); left out or null: none given",
        )
        finding = serializers.IntegerField(
            required=False, min_value=1, max_value=BIGGEST_ID, help_text="the AI finding's index"
        )
        target = serializers.CharField(
            required=False, max_length=16, help_text='"added-<n>": an added finding'
        )
        # `label` is also Field.label in the stubs; DRF's metaclass takes it as a field all the same.
        label = serializers.CharField(required=False, max_length=64)  # type: ignore[assignment]
        mask = serializers.DictField(
            child=serializers.CharField(),
            required=False,
            help_text="{SOP Instance UID: base64 of rows*columns uint8}",
        )
        bbox = serializers.JSONField(required=False, help_text="[[z0, z1], [y0, y1], [x0, x1]], half-open")
        reason_code = serializers.CharField(required=False, max_length=32)
        reason_text = serializers.CharField(required=False, allow_blank=True, max_length=2000)
        time_spent_s = NumberField(required=False)

    @extend_schema(
        parameters=[OpenApiParameter("history", bool, required=False)],
        responses={200: OpenApiTypes.OBJECT, 404: ErrorSerializer},
    )
    def get(self, request: Request, pk: int) -> Response:
        reading = reading_or_404(request, pk)
        history = request.query_params.get("history") in {"1", "true"}
        decisions = decisions_history(reading=reading) if history else decisions_current(reading=reading)
        return Response([decision_data(d) for d in decisions.select_related("reader")])

    @extend_schema(request=InputSerializer, responses={201: OpenApiTypes.OBJECT, **ERRORS})
    def post(self, request: Request, pk: int) -> Response:
        reading = _writable(request, pk)
        data = valid(self.InputSerializer, request.data)
        version = data.pop("version")
        decision = services.decision_record(
            reading=reading, version=version, given=services.DecisionInput(**data), request=request._request
        )
        # decision_record leaves `reading` as its write left it: its version is the new one.
        return Response({"decision": decision_data(decision), "version": reading.version}, status=201)


class DecisionMaskApi(ReviewsApi):
    """A decision's final mask as the client sent it: {SOP Instance UID: base64 uint8} per slice
    that holds any voxel (404 for a decision without a mask of its own)."""

    permission_classes = [IsAuthenticated]

    @extend_schema(responses={200: OpenApiTypes.OBJECT, 404: ErrorSerializer})
    def get(self, request: Request, pk: int, decision_pk: int) -> Response:
        reading = reading_or_404(request, pk)
        decision = Decision.objects.filter(reading=reading, pk=decision_pk).first()
        if decision is None or not decision.mask_key:
            raise Http404("this decision has no mask of its own")
        mask = mask_load(decision.mask_key)
        slices = {
            reading.slice_uids[z]: base64.b64encode(plane.astype("uint8").tobytes()).decode()
            for z, plane in sorted(mask.items())
        }
        return Response({"rows": reading.rows, "columns": reading.columns, "slices": slices})


class ReadingSubmitApi(ReviewsApi):
    """Submits the reading: writes the reader's SEG and SR into the study. Needs a decision on
    every AI finding and, when an AI result was revealed, triage_agreement."""

    permission_classes = [IsAuthenticated]

    class InputSerializer(VersionSerializer):
        class Meta:
            ref_name = "SubmitInput"

        triage_agreement = serializers.ChoiceField(required=False, choices=["agree", "disagree"])
        final_impression = serializers.CharField(required=False, allow_blank=True, max_length=10_000)
        answers = serializers.DictField(
            child=serializers.CharField(), required=False, help_text="{question code: choice}, merged"
        )

    @extend_schema(request=InputSerializer, responses={200: OpenApiTypes.OBJECT, **ERRORS})
    def post(self, request: Request, pk: int) -> Response:
        reading = _writable(request, pk)
        data: dict[str, Any] = valid(self.InputSerializer, request.data)
        reading = services.reading_submit(reading=reading, request=request._request, **data)
        return _respond(request, reading)


__all__ = [
    "DecisionMaskApi",
    "DecisionsApi",
    "ReadingApi",
    "ReadingHeartbeatApi",
    "ReadingListCreateApi",
    "ReadingLockApi",
    "ReadingRevealApi",
    "ReadingSubmitApi",
]
