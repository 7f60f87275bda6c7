"""JSON API of the inference app (one view per operation).

- GET  /api/v1/studies/{study}/ai/                    what the viewer overlays on a study
- GET  /api/v1/inference/jobs/{id}/                   one job: status, progress, timings, findings
- GET  /api/v1/inference/jobs/{id}/arrays/{kind}/     heatmap or mask, uint8, whole series (gzip) or ?slice=k
- POST /api/v1/inference/jobs/                        ask for a job (series_uid, model name[, version])
- POST /api/v1/inference/jobs/{id}/cancel/ and /rerun/
- GET  /api/v1/inference/models/                      the registry, with model cards

A study, series or job the caller may not see is answered as if it did not exist; when it
does exist, the refusal is audited like a 403 (110113 Security Alert).
"""

from __future__ import annotations

from typing import Any, NoReturn

from django.http import Http404, HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import ValidationError
from rest_framework.permissions import BasePermission, IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from audit.services import audit_hidden_refused
from inference.auditing import audit_outputs_accessed
from inference.models import InferenceJob, JobOutput, ModelVersion
from inference.outputs import output_open, output_slices
from inference.presenting import job_overlay, job_summary
from inference.selectors import job_for_study, jobs_for_user, model_by_name
from inference.services import JobError, job_cancel, job_request, job_rerun
from viewer.models import Series, Study
from viewer.selectors import series_queryset_for_user, study_queryset_for_user
from viewer.store import is_valid_uid


class _Has(BasePermission):
    perm = ""

    def has_permission(self, request: Request, view: Any) -> bool:
        return bool(request.user.has_perm(self.perm))


class CanViewJobs(_Has):
    perm = "inference.view_inferencejob"


class CanRequestJobs(_Has):
    perm = "inference.add_inferencejob"


class CanChangeJobs(_Has):
    perm = "inference.change_inferencejob"


def _not_found(request: Request, message: str, *, exists: bool) -> NoReturn:
    audit_hidden_refused(request=request._request, exists=exists)
    raise Http404(message)


def _job(request: Request, pk: int) -> InferenceJob:
    job = jobs_for_user(user=request.user).filter(pk=pk).first()
    if job is None:
        _not_found(request, "no such job", exists=InferenceJob.objects.filter(pk=pk).exists())
    return job


class StudyAiApi(APIView):
    """The AI result a reader sees on a study (the viewer polls it while the job runs)."""

    permission_classes = [IsAuthenticated, CanViewJobs]

    @extend_schema(responses={200: OpenApiTypes.OBJECT})
    def get(self, request: Request, study_uid: str) -> Response:
        if not is_valid_uid(study_uid):
            raise Http404("no such study")
        study = study_queryset_for_user(user=request.user).filter(study_uid=study_uid).first()
        if study is None:
            _not_found(request, "no such study", exists=Study.objects.filter(study_uid=study_uid).exists())
        job = job_for_study(user=request.user, study=study)
        if job is None:
            return Response({"status": "none", "job": None, "findings": []})
        if job.status == InferenceJob.Status.SUCCEEDED:
            audit_outputs_accessed(request._request, job)
        return Response(job_overlay(job, request=request._request))


class JobDetailApi(APIView):
    permission_classes = [IsAuthenticated, CanViewJobs]

    @extend_schema(responses={200: OpenApiTypes.OBJECT})
    def get(self, request: Request, pk: int) -> Response:
        return Response(job_summary(_job(request, pk), request=request._request))


class JobArrayApi(APIView):
    """A job's heatmap or mask as raw uint8 (slice, row, column), C order: the whole series, or
    one slice with ?slice=k. Headers: X-Array-Shape "slices,rows,columns" of what is sent. The
    whole series goes gzip-encoded (Content-Encoding) to a client that takes gzip: a few MB
    where the raw array is tens."""

    permission_classes = [IsAuthenticated, CanViewJobs]

    @extend_schema(
        parameters=[OpenApiParameter("slice", int, required=False)],
        responses={(200, "application/octet-stream"): OpenApiTypes.BINARY},
    )
    def get(self, request: Request, pk: int, kind: str) -> HttpResponse:
        if kind not in (JobOutput.Kind.HEATMAP, JobOutput.Kind.MASK):
            raise Http404("arrays are 'heatmap' or 'mask'")
        job = _job(request, pk)
        output = job.outputs.filter(kind=kind).first()
        if job.status != InferenceJob.Status.SUCCEEDED or output is None:
            raise Http404(f"job {job.pk} has no {kind} (it is {job.status})")
        depth = len(job.slice_uids)
        encoding = ""
        if "slice" in request.query_params:
            index = _slice_index(request.query_params["slice"], depth)
            content, shape = output_slices(output, index, index + 1), (1, job.rows, job.columns)
        else:
            shape = (depth, job.rows, job.columns)
            if output.slice_offsets and _takes_gzip(request):
                with output_open(output) as handle:  # sent as stored; the client inflates it
                    content, encoding = handle.read(), "gzip"
            else:
                content = output_slices(output, 0, depth)
        audit_outputs_accessed(request._request, job)
        response = HttpResponse(content, content_type="application/octet-stream")
        if encoding:
            response["Content-Encoding"] = encoding
        response["Vary"] = "Accept-Encoding"
        response["X-Array-Shape"] = ",".join(map(str, shape))
        response["X-Array-Dtype"] = "uint8"
        response["Cache-Control"] = "private, max-age=3600"
        return response


def _takes_gzip(request: Request) -> bool:
    """Whether Accept-Encoding allows gzip: named, or '*', with a weight above 0."""
    for item in request.headers.get("Accept-Encoding", "").split(","):
        coding, _, weight = item.partition(";")
        if coding.strip().lower() in ("gzip", "*"):
            name, _, value = weight.partition("=")
            return name.strip().lower() != "q" or value.strip().strip("0.") != ""  # q=0, 0.0, 0.000
    return False


def _slice_index(value: str, depth: int) -> int:
    if not (value.isascii() and value.isdigit() and len(value) <= 9):  # int() takes "1_0" and "+1"
        raise ValidationError({"slice": [f"must be a whole number 0..{depth - 1}, not {value[:20]!r}"]})
    index = int(value)
    if not 0 <= index < depth:
        raise ValidationError({"slice": [f"must be in 0..{depth - 1}"]})
    return index


class JobRequestApi(APIView):
    """Asks for a job on a series, by model name (and version; else the newest active or shadow)."""

    permission_classes = [IsAuthenticated, CanRequestJobs]

    class InputSerializer(serializers.Serializer):
        series_uid = serializers.CharField(max_length=64)
        model = serializers.CharField(max_length=64)
        version = serializers.CharField(max_length=32, required=False)

    @extend_schema(request=InputSerializer, responses={202: OpenApiTypes.OBJECT})
    def post(self, request: Request) -> Response:
        given = self.InputSerializer(data=request.data)
        given.is_valid(raise_exception=True)
        data = given.validated_data
        series = series_queryset_for_user(user=request.user).filter(series_uid=data["series_uid"]).first()
        if series is None:
            audit_hidden_refused(
                request=request._request, exists=Series.objects.filter(series_uid=data["series_uid"]).exists()
            )
            raise ValidationError({"series_uid": ["no such series"]})
        try:
            model = model_by_name(name=data["model"], version=data.get("version"))
        except LookupError as exc:
            raise ValidationError({"model": [str(exc)]}) from exc
        try:
            job = job_request(series=series, model=model, user=request.user)
        except JobError as exc:
            raise ValidationError({"model": [str(exc)]}) from exc
        return Response(job_summary(job, request=request._request), status=status.HTTP_202_ACCEPTED)


class JobCancelApi(APIView):
    permission_classes = [IsAuthenticated, CanChangeJobs]

    @extend_schema(request=None, responses={200: OpenApiTypes.OBJECT})
    def post(self, request: Request, pk: int) -> Response:
        job = _job(request, pk)
        if not job_cancel(job=job, user=request.user):
            return Response(
                {"detail": f"job {job.pk} is already {job.status}"}, status=status.HTTP_409_CONFLICT
            )
        return Response(job_summary(job, request=request._request))


class JobRerunApi(APIView):
    permission_classes = [IsAuthenticated, CanChangeJobs]

    @extend_schema(request=None, responses={202: OpenApiTypes.OBJECT})
    def post(self, request: Request, pk: int) -> Response:
        try:
            new = job_rerun(job=_job(request, pk), user=request.user)
        except JobError as exc:
            return Response({"detail": str(exc)}, status=status.HTTP_409_CONFLICT)
        return Response(job_summary(new, request=request._request), status=status.HTTP_202_ACCEPTED)


class ModelListApi(APIView):
    permission_classes = [IsAuthenticated, CanViewJobs]

    @extend_schema(responses={200: OpenApiTypes.OBJECT})
    def get(self, request: Request) -> Response:
        models = ModelVersion.objects.all()
        if not request.user.has_perm("inference.view_shadow_output"):
            models = models.filter(status=ModelVersion.Status.ACTIVE)
        return Response(
            [
                {
                    "name": m.name,
                    "version": m.version,
                    "status": m.status,
                    "task": m.task,
                    "demonstration": m.demonstration,
                    "labels": m.labels,
                    "threshold": m.threshold,
                    "study_threshold": m.study_threshold,
                    "triage": {"urgent": m.triage_urgent, "priority": m.triage_priority},
                    "input_spec": m.input_spec,
                    "weights_sha256": m.weights_sha256,
                    "model_card": m.model_card,
                }
                for m in models
            ]
        )
