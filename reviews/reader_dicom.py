"""The reader's DICOM SEG and TID 1500 SR of a submitted reading, through the shared writer
(inference.derived).

One segment per current decision (withdrawn ones left out), numbered 1..n: the AI findings
by index, then the reader's own by number. An overridden AI finding keeps its segment, empty,
so the SR can say the reader overrode it and why. UIDs derive from the reading's uid_root and
its version, and the content time is the reading's last change, so the same reading at the
same version always gives the same bytes.

The SR also holds the study-level verdict: the AI triage level beside the study score the
reader saw, and, in the report's Qualitative Evaluations, the agreement with that triage and
the unaided and final impressions.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

import pydicom
from pydicom.dataset import Dataset

from inference.derived import (
    AlgorithmInfo,
    Device,
    Evaluation,
    Note,
    Person,
    SegmentSpec,
    codes,
    derived_uid,
    findings_sr,
    segment_tracking_uid,
    segmentation,
    to_part10_bytes,
)
from inference.engine.types import Finding as EngineFinding
from inference.models import Finding, InferenceJob
from inference.outputs import job_uid
from reviews.masks import (
    Geometry,
    Mask,
    ai_mask,
    label_volume,
    mask_bbox,
    mask_centroid,
    mask_load,
    mask_voxels,
)
from reviews.models import Decision, MemberRole, Reading
from viewer.models import Instance
from viewer.store import store_open

SEG_SERIES_NUMBER, SR_SERIES_NUMBER = 9101, 9102


@dataclass(frozen=True)
class ReaderObject:
    kind: str  # "seg" or "sr"
    sop_uid: str
    series_uid: str
    content: bytes


def reading_uid(reading: Reading, what: str) -> str:
    """A 2.25 UID for one object of this reading at its current version."""
    return f"2.25.{uuid.uuid5(reading.uid_root, f'v{reading.version}/{what}').int}"


def reader_person(reading: Reading) -> Person:
    user = reading.reader
    name = "^".join(part for part in (user.last_name, user.first_name) if part) or user.get_username()
    return Person(
        name=name,
        login=user.get_username(),
        role_in_organisation=codes.PHYSICIAN if reading.reader_role == MemberRole.RADIOLOGIST else None,
        role_in_procedure=codes.READER,
    )


def model_device(job: InferenceJob) -> Device:
    """The model as inference.derived_job describes it (same UID)."""
    model = job.model_version
    return Device(
        name=model.name,
        version=model.version,
        uid=derived_uid("model", model.name, model.version, model.weights_sha256),
        model_card=f"{model.name} {model.version} model card"
        + (" (demonstration model)" if model.demonstration else ""),
    )


def decision_mask(decision: Decision, reading: Reading) -> Mask:
    """The final mask of a decision (empty for an override)."""
    if decision.kind in (Decision.Kind.OVERRIDDEN, Decision.Kind.WITHDRAWN):
        return {}
    if decision.mask_key:
        return mask_load(decision.mask_key)
    if decision.mask_source == Decision.MaskSource.AI and decision.inference_job is not None:
        assert decision.ai_finding_index is not None
        assert decision.ai_bbox is not None
        return ai_mask(
            decision.inference_job,
            index=decision.ai_finding_index,
            bbox=decision.ai_bbox,
            slice_uids=reading.slice_uids,
        )
    return {}


def ordered_decisions(decisions: Sequence[Decision]) -> list[Decision]:
    """Current decisions as segments are numbered: AI findings by index, then added ones."""
    kept = [d for d in decisions if d.kind != Decision.Kind.WITHDRAWN]
    return sorted(
        kept,
        key=lambda d: (0, d.ai_finding_index) if d.ai_finding_index else (1, int(d.target.split("-")[1])),
    )


def reader_objects(
    *,
    reading: Reading,
    decisions: Sequence[Decision],
    geometry: Geometry,
    triage_agreement: str | None = None,
    final_impression: str | None = None,
) -> list[ReaderObject]:
    """The reading's SEG and SR (an SR alone when there is nothing to segment but the AI's
    study score or the reader's verdict; nothing when there is none of these).

    `triage_agreement` and `final_impression` are the verdict given with the submission;
    None takes the reading's saved draft."""
    job = reading.revealed_job
    ordered = ordered_decisions(decisions)
    verdict = study_verdict(
        reading,
        triage_agreement=reading.triage_agreement if triage_agreement is None else triage_agreement,
        final_impression=reading.final_impression if final_impression is None else final_impression,
    )
    has_score = job is not None and job.study_score is not None
    if not ordered and not has_score and not verdict.evaluations and not verdict.notes:
        return []
    when = reading.updated_at
    person = reader_person(reading)
    device = model_device(job) if job is not None else None
    uses_ai = device is not None and any(
        d.kind in (Decision.Kind.ACCEPTED, Decision.Kind.EDITED) for d in ordered
    )
    algorithm = AlgorithmInfo.for_device(device) if uses_ai and device is not None else None
    source = _source(reading)
    ai_findings = {f.index: f for f in Finding.objects.filter(job=job)} if job is not None else {}
    masks = [(number, decision_mask(d, reading)) for number, d in enumerate(ordered, start=1)]
    seg = None
    objects: list[ReaderObject] = []
    if ordered:
        seg = segmentation(
            source=source,
            mask=label_volume(
                masks, depth=len(reading.slice_uids), rows=reading.rows, columns=reading.columns
            ),
            segments=[_segment(number, d, job) for number, d in enumerate(ordered, start=1)],
            series_uid=reading_uid(reading, "seg/series"),
            sop_uid=reading_uid(reading, "seg"),
            series_number=SEG_SERIES_NUMBER,
            content_datetime=when,
            author=person,
            algorithm=algorithm,
            series_description="Reader review (SEG)",
            content_label="READER",
            content_description=f"Reading {reading.pk} by {person.login}",
            slice_uids=reading.slice_uids,
        )
        assert seg is not None
        objects.append(
            ReaderObject("seg", str(seg.SOPInstanceUID), str(seg.SeriesInstanceUID), to_part10_bytes(seg))
        )
    findings = [
        _finding(number, d, mask, geometry, ai_findings.get(d.ai_finding_index or 0))
        for (number, mask), d in zip(masks, ordered, strict=True)
    ]
    sr = findings_sr(
        source=source,
        seg=seg,
        findings=findings,
        study_score=job.study_score if job is not None else None,
        study_triage=codes.TRIAGE_LEVELS.get(job.triage) if job is not None and has_score else None,
        study_evaluations=verdict.evaluations,
        study_notes=verdict.notes,
        series_uid=reading_uid(reading, "sr/series"),
        sop_uid=reading_uid(reading, "sr"),
        series_number=SR_SERIES_NUMBER,
        content_datetime=when,
        observer=person,
        device=device,
        algorithm=algorithm,
        evaluations={number: _evaluations(d) for number, d in enumerate(ordered, start=1)},
        series_description="Reader review (SR)",
        final=True,
    )
    objects.append(ReaderObject("sr", str(sr.SOPInstanceUID), str(sr.SeriesInstanceUID), to_part10_bytes(sr)))
    return objects


@dataclass(frozen=True)
class StudyVerdict:
    evaluations: list[Evaluation]
    notes: list[Note]


def study_verdict(reading: Reading, *, triage_agreement: str, final_impression: str) -> StudyVerdict:
    """The reader's verdict on the whole study as SR items: the agreement with the AI triage
    (when given) and the impressions that hold text (unaided first, then the final one)."""
    evaluations: list[Evaluation] = []
    if triage_agreement:
        evaluations.append((codes.TRIAGE_AGREEMENT, codes.TRIAGE_AGREEMENTS[triage_agreement]))
    notes: list[Note] = [
        (concept, text.strip())
        for concept, text in (
            (codes.UNAIDED_IMPRESSION, reading.unaided_impression),
            (codes.IMPRESSION, final_impression),
        )
        if text.strip()
    ]
    return StudyVerdict(evaluations=evaluations, notes=notes)


def _label(decision: Decision) -> str:
    return decision.final_label or decision.ai_label or "lesion"


def _segment(number: int, decision: Decision, job: InferenceJob | None) -> SegmentSpec:
    label = _label(decision)
    tracking_uid = None
    if decision.ai_finding_index and job is not None:
        # The AI SEG's segment of this finding: the finding keeps its identity across both.
        tracking_uid = segment_tracking_uid(sop_uid=job_uid(job, "seg"), number=decision.ai_finding_index)
    return SegmentSpec(
        number=number,
        label=label,
        property_type=codes.finding_type(label),
        tracking_uid=tracking_uid,
        tracking_id=f"{label} {decision.target}",
    )


def _finding(
    number: int, decision: Decision, mask: Mask, geometry: Geometry, ai: Finding | None
) -> EngineFinding:
    voxels = mask_voxels(mask)
    if voxels:
        (z0, z1), (y0, y1), (x0, x1) = mask_bbox(mask)
        centroid = mask_centroid(mask)
    elif ai is not None:
        (z0, z1), (y0, y1), (x0, x1) = ai.bbox
        centroid = (float(ai.centroid_voxel[0]), float(ai.centroid_voxel[1]), float(ai.centroid_voxel[2]))
    else:
        (z0, z1), (y0, y1), (x0, x1) = decision.final_bbox or [[0, 1], [0, 1], [0, 1]]
        centroid = ((z0 + z1) / 2, (y0 + y1) / 2, (x0 + x1) / 2)
    return EngineFinding(
        index=number,
        label=_label(decision),
        bbox=((z0, z1), (y0, y1), (x0, x1)),
        centroid_voxel=centroid,
        centroid_mm=geometry.to_patient(centroid),
        volume_mm3=voxels * geometry.voxel_mm3,
        voxel_count=voxels,
        max_probability=ai.max_probability if ai is not None else math.nan,
        mean_probability=ai.mean_probability if ai is not None else math.nan,
    )


def _evaluations(decision: Decision) -> list[Evaluation]:
    evaluations: list[Evaluation] = [(codes.READER_DECISION, codes.DECISIONS[decision.kind])]
    if decision.kind == Decision.Kind.OVERRIDDEN:
        reason = codes.OVERRIDE_REASONS.get(decision.reason_code, codes.OTHER_REASON)
        evaluations.append((codes.OVERRIDE_REASON, reason))
    return evaluations


def _source(reading: Reading) -> list[Dataset]:
    keys = Instance.objects.filter(sop_instance_uid__in=reading.slice_uids).values_list(
        "storage_key", flat=True
    )
    datasets: list[Dataset] = []
    for key in keys:
        with store_open(key) as handle:
            datasets.append(pydicom.dcmread(handle))
    return datasets
