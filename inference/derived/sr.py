"""The findings as a TID 1500 Measurement Report in a Comprehensive 3D SR."""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping, Sequence
from typing import cast

import highdicom as hd
from pydicom.dataset import Dataset
from pydicom.sr.coding import Code

from inference.engine.types import Finding

from . import codes
from ._common import derived_uid, for_highdicom, pin
from .authors import AlgorithmInfo, Author, Device, Equipment, Person, observer_context

Evaluation = tuple[Code, Code]  # (concept, value), e.g. (codes.READER_DECISION, codes.ACCEPTED)
Note = tuple[Code, str]  # (concept, free text), e.g. (codes.IMPRESSION, "No nodule")


def findings_sr(
    *,
    source: Sequence[Dataset],
    seg: Dataset | None,
    findings: Sequence[Finding],
    study_score: float | None,
    series_uid: str,
    sop_uid: str,
    series_number: int,
    content_datetime: dt.datetime,
    observer: Author,
    device: Device | None = None,
    algorithm: AlgorithmInfo | None = None,
    evaluations: Mapping[int, Sequence[Evaluation]] | None = None,
    study_triage: Code | None = None,
    study_evaluations: Sequence[Evaluation] = (),
    study_notes: Sequence[Note] = (),
    series_description: str = "AI findings (SR)",
    procedure_reported: Code = codes.CT_UNSPECIFIED_BODY_REGION,
    complete: bool = True,
    final: bool = False,
    verifier: Person | None = None,
    equipment: Equipment | None = None,
    instance_number: int = 1,
) -> Dataset:
    """A TID 1500 Measurement Report: one volumetric group per finding, referencing its
    segment in `seg` (segment number == Finding.index), with the volume (mm3), the
    maximum and mean AI probability (unit "1") and the finding type; plus one group with
    the study-level triage score when `study_score` is given.

    Each group carries the tracking UID and ID of its SEG segment, so a finding keeps one
    identity across the SEG and the SR. `evaluations` adds coded (concept, value) pairs to
    a finding's group by Finding.index, e.g. the reader's decision and override reason.
    A finding whose probabilities are NaN (one added by a reader) gets no probability items.
    `study_triage` (e.g. codes.URGENT) joins the study score's group as the AI triage level.

    `study_evaluations` (coded, e.g. the reader's agreement with the AI triage) and
    `study_notes` (free text, e.g. the impressions) are about the whole study: they go in the
    report's Qualitative Evaluations container (TID 1500 rows 12 to 14), as CODE and TEXT items.

    `seg` is None only when there are no findings (see `segmentation`); the report then
    holds the study score and the study-level items alone. `verifier` marks the document
    VERIFIED by that person.
    `device` (with a Person observer) records the model whose findings the reader reviewed.
    """
    if seg is None and findings:
        raise ValueError("findings need the SEG that holds their segments")
    _check_study_level(bool(findings), study_score, study_triage, study_evaluations, study_notes)
    if len({f.index for f in findings}) != len(findings):
        raise ValueError("each finding must have its own index")
    if verifier is not None and not verifier.organisation:
        raise ValueError("a verifier needs an organisation (Verifying Organization is required)")
    evaluations = evaluations or {}
    unknown = set(evaluations) - {f.index for f in findings}
    if unknown:
        raise ValueError(f"evaluations name findings that are not reported: {sorted(unknown)}")
    algorithm_id = algorithm.sr_identification() if algorithm else None
    groups: list[
        hd.sr.VolumetricROIMeasurementsAndQualitativeEvaluations | hd.sr.MeasurementsAndQualitativeEvaluations
    ] = []
    if seg is not None:
        groups += [_finding_group(f, seg, algorithm_id, evaluations.get(f.index, ())) for f in findings]
    if study_score is not None:
        groups.append(_study_group(study_score, sop_uid, algorithm_id, study_triage))
    root = _report_root(_observation_context(observer, device), procedure_reported, groups)
    if study_evaluations or study_notes:
        root.ContentSequence.append(_qualitative_evaluations(study_evaluations, study_notes))
    equipment = equipment or Equipment.for_author(observer)
    # In a fixed order, so the evidence lists do not depend on the order `source` came in.
    ordered = sorted(
        source,
        key=lambda ds: (
            str(ds.SeriesInstanceUID),
            int(ds.get("InstanceNumber") or 0),
            str(ds.SOPInstanceUID),
        ),
    )
    evidence = [*for_highdicom(ordered), *([seg] if seg is not None else [])]
    sr = hd.sr.Comprehensive3DSR(
        evidence=evidence,
        content=root,
        series_instance_uid=series_uid,
        series_number=series_number,
        sop_instance_uid=sop_uid,
        instance_number=instance_number,
        is_complete=complete,
        is_final=final,
        is_verified=verifier is not None,
        verifying_observer_name=verifier.name if verifier else None,
        verifying_organization=verifier.organisation if verifier else None,
        content_date=content_datetime.date(),
        content_time=content_datetime.time(),
        series_description=series_description,
        **equipment.as_kwargs(),
    )
    return pin(sr, content_datetime=content_datetime, sop_uid=sop_uid)


def _check_study_level(
    has_findings: bool,
    score: float | None,
    triage: Code | None,
    evaluations: Sequence[Evaluation],
    notes: Sequence[Note],
) -> None:
    if not has_findings and score is None and not evaluations and not notes:
        raise ValueError("a report needs a finding, a study score or a study-level evaluation")
    if triage is not None and score is None:
        raise ValueError("a study triage level needs the study score it came from")
    if any(not text.strip() for _, text in notes):
        raise ValueError("a study note needs text (leave out the empty ones)")


def _report_root(
    context: hd.sr.ObservationContext,
    procedure_reported: Code,
    groups: Sequence[
        hd.sr.VolumetricROIMeasurementsAndQualitativeEvaluations | hd.sr.MeasurementsAndQualitativeEvaluations
    ],
) -> hd.sr.ContainerContentItem:
    """The TID 1500 root container. Imaging Measurements (row 6) is required only when the
    report holds neither Derived Imaging Measurements nor Qualitative Evaluations; highdicom
    always asks for it, so a report of study-level items alone is put together here."""
    if groups:
        report = hd.sr.MeasurementReport(
            observation_context=context, procedure_reported=procedure_reported, imaging_measurements=groups
        )
        return cast(hd.sr.ContainerContentItem, report[0])
    root = hd.sr.ContainerContentItem(name=codes.IMAGING_MEASUREMENT_REPORT, template_id="1500")
    root.ContentSequence = hd.sr.ContentSequence(
        [
            *hd.sr.LanguageOfContentItemAndDescendants(hd.sr.CodedConcept.from_code(codes.ENGLISH)),
            *context,
            hd.sr.CodeContentItem(
                name=codes.PROCEDURE_REPORTED,
                value=procedure_reported,
                relationship_type=hd.sr.RelationshipTypeValues.HAS_CONCEPT_MOD,
            ),
        ]
    )
    return root


def _qualitative_evaluations(
    evaluations: Sequence[Evaluation], notes: Sequence[Note]
) -> hd.sr.ContainerContentItem:
    """TID 1500 row 12: the study-level CODE items (row 13), then the TEXT items (row 14)."""
    contains = hd.sr.RelationshipTypeValues.CONTAINS
    container = hd.sr.ContainerContentItem(
        name=codes.QUALITATIVE_EVALUATIONS, is_content_continuous=False, relationship_type=contains
    )
    coded = [
        hd.sr.CodeContentItem(name=name, value=value, relationship_type=contains)
        for name, value in evaluations
    ]
    texts = [hd.sr.TextContentItem(name=name, value=text, relationship_type=contains) for name, text in notes]
    container.ContentSequence = hd.sr.ContentSequence([*coded, *texts])
    return container


def _observation_context(observer: Author, device: Device | None) -> hd.sr.ObservationContext:
    if isinstance(observer, Device):
        if device is not None:
            raise ValueError("`device` is for a person observer; a device observer stands alone")
        return hd.sr.ObservationContext(observer_device_context=observer_context(observer))
    return hd.sr.ObservationContext(
        observer_person_context=observer_context(observer),
        observer_device_context=observer_context(device) if device is not None else None,
    )


def _finding_group(
    finding: Finding,
    seg: Dataset,
    algorithm_id: hd.sr.AlgorithmIdentification | None,
    evaluations: Sequence[Evaluation],
) -> hd.sr.VolumetricROIMeasurementsAndQualitativeEvaluations:
    segment = _segment(seg, finding.index)
    measurements = [
        hd.sr.Measurement(name=codes.VOLUME, value=float(finding.volume_mm3), unit=codes.CUBIC_MILLIMETRE)
    ]
    for derivation, value in (
        (codes.MAXIMUM, finding.max_probability),
        (codes.MEAN, finding.mean_probability),
    ):
        if math.isfinite(value):
            measurements.append(
                hd.sr.Measurement(
                    name=codes.AI_PROBABILITY, value=float(value), unit=codes.NO_UNITS, derivation=derivation
                )
            )
    return hd.sr.VolumetricROIMeasurementsAndQualitativeEvaluations(
        tracking_identifier=hd.sr.TrackingIdentifier(
            uid=segment.get("TrackingUID") or derived_uid("finding", seg.SOPInstanceUID, finding.index),
            identifier=segment.get("TrackingID") or f"{finding.label} {finding.index}",
        ),
        referenced_segment=_referenced_segment(seg, finding.index),
        finding_type=codes.finding_type(finding.label),
        finding_category=codes.MORPHOLOGICALLY_ABNORMAL_STRUCTURE,
        algorithm_id=algorithm_id,
        measurements=measurements,
        qualitative_evaluations=[hd.sr.QualitativeEvaluation(name, value) for name, value in evaluations]
        or None,
    )


def _referenced_segment(seg: Dataset, number: int) -> hd.sr.ReferencedSegment:
    """The segment with its source images; a segment without frames (a finding the reader
    erased) is referenced with its source series instead."""
    sources = _source_images(seg, number)
    if sources:
        return hd.sr.ReferencedSegment(
            sop_class_uid=seg.SOPClassUID,
            sop_instance_uid=seg.SOPInstanceUID,
            segment_number=number,
            source_images=sources,
        )
    return hd.sr.ReferencedSegment(
        sop_class_uid=seg.SOPClassUID,
        sop_instance_uid=seg.SOPInstanceUID,
        segment_number=number,
        source_series=hd.sr.SourceSeriesForSegmentation(seg.ReferencedSeriesSequence[0].SeriesInstanceUID),
    )


def _source_images(seg: Dataset, number: int) -> list[hd.sr.SourceImageForSegmentation]:
    """The images the segment's frames derive from, in frame order. Not highdicom's
    ReferencedSegment.from_segmentation: with a single segment, highdicom puts the Segment
    Identification in the shared functional groups, where from_segmentation does not look."""
    shared = seg.get("SharedFunctionalGroupsSequence", [Dataset()])[0]
    shared_id = shared.get("SegmentIdentificationSequence")
    found: dict[str, hd.sr.SourceImageForSegmentation] = {}
    for frame in seg.get("PerFrameFunctionalGroupsSequence", []):
        identification = frame.get("SegmentIdentificationSequence") or shared_id
        if not identification or int(identification[0].ReferencedSegmentNumber) != number:
            continue
        for derivation in frame.get("DerivationImageSequence", []):
            for source in derivation.get("SourceImageSequence", []):
                uid = str(source.ReferencedSOPInstanceUID)
                if uid not in found:
                    frames = source.get("ReferencedFrameNumber")
                    found[uid] = hd.sr.SourceImageForSegmentation(
                        referenced_sop_class_uid=str(source.ReferencedSOPClassUID),
                        referenced_sop_instance_uid=uid,
                        referenced_frame_numbers=None
                        if frames is None
                        else [
                            int(f) for f in (frames if source["ReferencedFrameNumber"].VM > 1 else [frames])
                        ],
                    )
    return list(found.values())


def _segment(seg: Dataset, number: int) -> Dataset:
    for item in seg.SegmentSequence:
        if int(item.SegmentNumber) == number:
            return item
    raise ValueError(f"the SEG has no segment {number} (segment numbers are Finding.index)")


def _study_group(
    score: float,
    sop_uid: str,
    algorithm_id: hd.sr.AlgorithmIdentification | None,
    triage: Code | None,
) -> hd.sr.MeasurementsAndQualitativeEvaluations:
    if not 0.0 <= score <= 1.0:
        raise ValueError(f"study_score must lie in 0..1, not {score}")
    return hd.sr.MeasurementsAndQualitativeEvaluations(
        tracking_identifier=hd.sr.TrackingIdentifier(
            uid=derived_uid("study-score", sop_uid), identifier="Study score"
        ),
        algorithm_id=algorithm_id,
        measurements=[hd.sr.Measurement(name=codes.STUDY_SCORE, value=float(score), unit=codes.NO_UNITS)],
        qualitative_evaluations=[hd.sr.QualitativeEvaluation(codes.AI_TRIAGE, triage)] if triage else None,
    )
