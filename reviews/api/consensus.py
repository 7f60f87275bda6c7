"""Consensus projects over the API: the dashboard, the adjudication queue, a case with every
read side by side, the fused masks, and recording the reference standard.

Open to admins and the project's adjudicators only. A reader of the project gets 403 and
anyone else 404 (both audited): readers never see each other's reads, before adjudication or
after. Masks come as the decision masks do: {"rows", "columns", "slices": {SOP UID: base64 of
rows*columns uint8}} over the slices that hold any voxel. docs/consensus.md has the contract.
"""

from __future__ import annotations

import base64
from typing import Any

from django.db.models import Max
from django.http import Http404
from django.urls import reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.exceptions import PermissionDenied
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response

from config.inputs import BIGGEST_ID, id_param
from reviews import services
from reviews.api.common import ErrorSerializer, HasRole, ReviewsApi, hidden_or_missing, valid
from reviews.errors import Invalid
from reviews.masks import Mask, mask_load
from reviews.models import ConsensusCase, Decision, Reading, ReadingProject, ReferenceStandard
from reviews.permissions import ADJUDICATE, SEE_CONSENSUS, member_role
from reviews.reader_dicom import decision_mask
from reviews.selectors import (
    CASE_FILTERS,
    consensus_case_reads,
    consensus_cases,
    consensus_progress,
    consensus_project_agreement,
    consensus_projects_for_user,
    decisions_current,
)

ERRORS = {400: ErrorSerializer, 403: ErrorSerializer, 404: ErrorSerializer, 409: ErrorSerializer}
FUSED = ("majority", "staple")


# --- Lookups ----------------------------------------------------------------------------------
def _allowed(request: Request, project: ReadingProject, perm: str) -> None:
    """403 for a member of the project without the right (a reader), 404 for anyone else."""
    if request.user.has_perm(perm, project):
        return
    if member_role(request.user, project) is not None:
        raise PermissionDenied("the project's readers do not see its cases")
    hidden_or_missing(request, exists=True)


def _project(request: Request, pk: int) -> ReadingProject:
    project = ReadingProject.objects.filter(pk=pk, kind=ReadingProject.Kind.CONSENSUS).first()
    if project is None:
        raise Http404("no such consensus project")
    _allowed(request, project, SEE_CONSENSUS)
    return project


def _case(request: Request, pk: int, perm: str = SEE_CONSENSUS) -> ConsensusCase:
    case = ConsensusCase.objects.select_related("project", "entry__study__patient").filter(pk=pk).first()
    if case is None:
        raise Http404("no such case")
    _allowed(request, case.project, perm)
    return case


# --- Shapes -------------------------------------------------------------------------------------
def _iso(value: Any) -> str | None:
    return value.isoformat() if value else None


def mask_data(mask: Mask, *, slice_uids: list[str], rows: int, columns: int) -> dict[str, Any]:
    slices = {
        slice_uids[z]: base64.b64encode(plane.astype("uint8").tobytes()).decode()
        for z, plane in sorted(mask.items())
    }
    return {"rows": rows, "columns": columns, "slices": slices}


def project_data(project: ReadingProject) -> dict[str, Any]:
    return {
        "id": project.pk,
        "name": project.name,
        "kind": project.kind,
        "active": project.active,
        "reading_mode": project.reading_mode,
        "reads_per_case": project.reads_per_case,
        "label_schema": project.label_schema,
        "show_ai_to_annotators": project.show_ai_to_annotators,
        "triage_in_worklist": project.triage_in_worklist,
        "min_dice": project.min_dice,
        "adjudicate_all": project.adjudicate_all,
        "due_date": _iso(project.due_date),
    }


def case_row(case: ConsensusCase) -> dict[str, Any]:
    study = case.entry.study
    return {
        "id": case.pk,
        "project": case.project_id,
        "study_uid": study.study_uid,
        "patient_id": study.patient.patient_id,
        "accession": study.accession_number,
        "study_date": _iso(study.study_date),
        "description": study.description,
        "status": case.status,
        "reads_done": case.reads_done,
        "reads_per_case": case.project.reads_per_case,
        "worst_dice": case.worst_dice,
        "agree": case.agreement.get("agree"),
        "reasons": case.agreement.get("reasons", []),
        "error": case.error or None,
        "reference_version": getattr(case, "reference_version", None),
        "url": reverse("api-consensus-case", args=[case.pk]),
    }


def reference_data(reference: ReferenceStandard) -> dict[str, Any]:
    return {
        "id": reference.pk,
        "version": reference.version,
        "supersedes": reference.supersedes_id,
        "source": reference.source,
        "fusion": reference.fusion or None,
        "readings": reference.readings,
        "adjudicator": reference.adjudicator.get_username(),
        "answers": reference.answers,
        "findings": reference.findings,
        "mask_voxels": reference.mask_voxels,
        "mask_url": reverse("api-consensus-case-mask", args=[reference.case_id, "reference"])
        + f"?version={reference.version}",
        "reader_agreement": reference.reader_agreement,
        "rationale": reference.rationale,
        "created_at": _iso(reference.created_at),
    }


def _read_data(case: ConsensusCase, reading: Reading) -> dict[str, Any]:
    findings = []
    for decision in decisions_current(reading=reading).exclude(kind=Decision.Kind.WITHDRAWN):
        has_mask = decision.kind != Decision.Kind.OVERRIDDEN
        findings.append(
            {
                "decision": decision.pk,
                "target": decision.target,
                "kind": decision.kind,
                "label": decision.final_label or None,
                "bbox": decision.final_bbox,
                "voxels": decision.mask_voxels,
                "confidence": decision.confidence,
                "mask_url": (
                    reverse("api-consensus-case-decision-mask", args=[case.pk, decision.pk])
                    if has_mask
                    else None
                ),
            }
        )
    return {
        "reading": reading.pk,
        "reader": reading.reader.get_username(),
        "reader_role": reading.reader_role,
        "submitted_at": _iso(reading.submitted_at),
        # Whether the read saw the AI (revealed in it, or elsewhere before it): the adjudicator
        # weighs an aided read against a blind one knowing which is which.
        "read_with_ai": reading.revealed_job_id is not None,
        "ai_seen_before": reading.ai_seen_before,
        "answers": reading.answers,
        "final_impression": reading.final_impression,
        "findings": findings,
    }


def case_data(case: ConsensusCase) -> dict[str, Any]:
    reads = list(consensus_case_reads(case=case))
    first = reads[0] if reads else None
    computed = case.computed_at is not None and not case.error
    references = list(case.references.select_related("adjudicator").order_by("version"))
    superseded = {r.supersedes_id for r in references}
    current = next((r for r in references if r.pk not in superseded), None)
    fused_url = "api-consensus-case-mask"
    return {
        **case_row(case),
        "reference_version": current.version if current else None,
        "project": project_data(case.project),
        "series_uid": first.series.series_uid if first else None,
        "slice_uids": first.slice_uids if first else None,
        "rows": first.rows if first else None,
        "columns": first.columns if first else None,
        "reads": [_read_data(case, reading) for reading in reads],
        "agreement": case.agreement or None,
        "computed_at": _iso(case.computed_at),
        "fusion": (
            {
                "majority": {"mask_url": reverse(fused_url, args=[case.pk, "majority"])},
                "staple": {
                    "mask_url": reverse(fused_url, args=[case.pk, "staple"]),
                    "readers": case.staple_readers,
                    "iterations": case.agreement.get("staple_iterations"),
                },
            }
            if computed
            else None
        ),
        "reference": reference_data(current) if current else None,
        "references": [reference_data(r) for r in references],
        "urls": {
            "self": reverse("api-consensus-case", args=[case.pk]),
            "reference": reverse("api-consensus-case-reference", args=[case.pk]),
            "viewer": reverse("study-viewer", args=[case.entry.study.study_uid]),
        },
    }


# --- Views --------------------------------------------------------------------------------------
class ConsensusProjectListApi(ReviewsApi):
    """The consensus projects the caller may see (admins: all; adjudicators: theirs)."""

    permission_classes = [IsAuthenticated, HasRole]

    @extend_schema(operation_id="consensus_projects_list", responses={200: OpenApiTypes.OBJECT})
    def get(self, request: Request) -> Response:
        projects = consensus_projects_for_user(user=request.user).distinct().order_by("name")
        return Response([project_data(p) for p in projects])


class ConsensusProjectApi(ReviewsApi):
    """A consensus project's dashboard: progress per reader and per case, agreement over the
    project, the distributions of per-case Dice and HD95, readers against the reference."""

    permission_classes = [IsAuthenticated, HasRole]

    @extend_schema(responses={200: OpenApiTypes.OBJECT, 403: ErrorSerializer, 404: ErrorSerializer})
    def get(self, request: Request, pk: int) -> Response:
        project = _project(request, pk)
        return Response(
            {
                **project_data(project),
                "progress": consensus_progress(project=project),
                "agreement": consensus_project_agreement(project=project),
                "urls": {
                    "cases": reverse("api-consensus-project-cases", args=[project.pk]),
                    "queue": reverse("api-consensus-project-cases", args=[project.pk]) + "?status=queue",
                },
            }
        )


class ConsensusCaseListApi(ReviewsApi):
    """The project's cases: by default the adjudication queue, lowest agreement first."""

    permission_classes = [IsAuthenticated, HasRole]

    class InputSerializer(serializers.Serializer):
        class Meta:
            ref_name = "ConsensusCaseQuery"

        status = serializers.ChoiceField(choices=list(CASE_FILTERS), required=False, default="queue")

    @extend_schema(
        parameters=[InputSerializer],
        responses={200: OpenApiTypes.OBJECT, 400: ErrorSerializer, 403: ErrorSerializer},
    )
    def get(self, request: Request, pk: int) -> Response:
        project = _project(request, pk)
        data = valid(self.InputSerializer, request.query_params)
        cases = consensus_cases(project=project, status=data["status"]).annotate(
            reference_version=Max("references__version")
        )
        return Response({"status": data["status"], "results": [case_row(case) for case in cases]})


class ConsensusCaseApi(ReviewsApi):
    """A case for its adjudicator: every read side by side (reader, answers, findings with their
    masks), the agreement, the fused masks with STAPLE's estimate of each reader, and the
    reference standard with its history."""

    permission_classes = [IsAuthenticated, HasRole]

    @extend_schema(responses={200: OpenApiTypes.OBJECT, 403: ErrorSerializer, 404: ErrorSerializer})
    def get(self, request: Request, pk: int) -> Response:
        return Response(case_data(_case(request, pk)))


def _case_mask_response(case: ConsensusCase, mask: Mask) -> Response:
    reading = (
        consensus_case_reads(case=case).select_related(None).only("slice_uids", "rows", "columns").first()
    )
    if reading is None:
        raise Http404("the case has no reads")
    return Response(
        mask_data(mask, slice_uids=reading.slice_uids, rows=reading.rows, columns=reading.columns)
    )


class ConsensusCaseMaskApi(ReviewsApi):
    """A fused mask (majority, staple) or the reference's (reference; ?version=n for an earlier
    one), in the case's slice order. 404 until the case is compared (or has a reference)."""

    permission_classes = [IsAuthenticated, HasRole]

    @extend_schema(
        parameters=[OpenApiParameter("version", int, required=False, description="reference only")],
        responses={200: OpenApiTypes.OBJECT, 403: ErrorSerializer, 404: ErrorSerializer},
    )
    def get(self, request: Request, pk: int, kind: str) -> Response:
        case = _case(request, pk)
        if kind in FUSED:
            if case.computed_at is None or case.error:
                raise Http404("the case's reads are not compared yet")
            key = case.majority_key if kind == "majority" else case.staple_key
            return _case_mask_response(case, mask_load(key) if key else {})
        if kind != "reference":
            raise Http404("masks are majority, staple or reference")
        references = case.references.all()
        version = request.query_params.get("version", "")
        if version:
            number = id_param(version)
            if number is None:
                raise Invalid("version is a positive whole number", field="version")
            reference = references.filter(version=number).first()
        else:
            reference = references.filter(superseded_by__isnull=True).first()
        if reference is None:
            raise Http404("no such reference")
        return _case_mask_response(case, mask_load(reference.mask_key) if reference.mask_key else {})


class ConsensusDecisionMaskApi(ReviewsApi):
    """One finding's mask in one of the case's submitted reads (for the adjudicator's viewer)."""

    permission_classes = [IsAuthenticated, HasRole]

    @extend_schema(responses={200: OpenApiTypes.OBJECT, 403: ErrorSerializer, 404: ErrorSerializer})
    def get(self, request: Request, pk: int, decision_pk: int) -> Response:
        case = _case(request, pk)
        decision = (
            Decision.objects.filter(pk=decision_pk, reading__in=consensus_case_reads(case=case))
            .select_related("reading", "inference_job")
            .first()
        )
        if decision is None:
            raise Http404("no such finding in this case's reads")
        reading = decision.reading
        mask = decision_mask(decision, reading)
        return Response(
            mask_data(mask, slice_uids=reading.slice_uids, rows=reading.rows, columns=reading.columns)
        )


class ReferenceCreateApi(ReviewsApi):
    """Records the case's reference standard (201): from one read ("reading:<id>"), a fused mask
    ("majority", "staple") or the adjudicator's own mask ("edited", with `mask`), with the
    answers and a rationale. `version` is the current reference's version you read (0: none);
    a stale one is 409."""

    permission_classes = [IsAuthenticated, HasRole]

    class InputSerializer(serializers.Serializer):
        class Meta:
            ref_name = "ReferenceInput"

        version = serializers.IntegerField(
            min_value=0, max_value=BIGGEST_ID, help_text="the current reference's version (0: none)"
        )
        # `source` is also Field.source in the stubs; DRF's metaclass takes it as a field all the same.
        source = serializers.CharField(  # type: ignore[assignment]
            max_length=32, help_text='"reading:<id>", "majority", "staple", "edited"'
        )
        answers = serializers.DictField(child=serializers.CharField(), required=False, default=dict)
        rationale = serializers.CharField(allow_blank=True, max_length=10_000)
        mask = serializers.DictField(
            child=serializers.CharField(),
            required=False,
            help_text='with source "edited": {SOP Instance UID: base64 of rows*columns uint8}',
        )
        fusion = serializers.ChoiceField(
            choices=["", *FUSED],
            required=False,
            default="",
            help_text="edited: the fused mask it started from",
        )

    @extend_schema(request=InputSerializer, responses={201: OpenApiTypes.OBJECT, **ERRORS})
    def post(self, request: Request, pk: int) -> Response:
        case = _case(request, pk, ADJUDICATE)
        data = valid(self.InputSerializer, request.data)
        reference = services.reference_record(
            case=case,
            adjudicator=request.user,
            source=data["source"],
            answers=data["answers"],
            rationale=data["rationale"],
            expected_version=data["version"],
            mask=data.get("mask"),
            fusion=data["fusion"],
            request=request._request,
        )
        reference = ReferenceStandard.objects.select_related("adjudicator").get(pk=reference.pk)
        return Response(
            {
                "reference": reference_data(reference),
                "status": ConsensusCase.Status.ADJUDICATED,
                "version": reference.version,
            },
            status=201,
        )


__all__ = [
    "ConsensusCaseApi",
    "ConsensusCaseListApi",
    "ConsensusCaseMaskApi",
    "ConsensusDecisionMaskApi",
    "ConsensusProjectApi",
    "ConsensusProjectListApi",
    "ReferenceCreateApi",
]
