"""Matching findings across readers: connected components paired by overlap, misses counted."""

from __future__ import annotations

import math

import numpy as np
import pytest

from reviews.consensus import MaskShapeError, dice, findings_of, hd95_mm, iou, match_findings

SPACING = (3.0, 0.7, 0.7)
SHAPE = (12, 40, 60)
# Four places where something may be marked, far apart: (z, y, x) boxes.
LESION_1 = (slice(2, 6), slice(5, 15), slice(5, 15))
LESION_2 = (slice(4, 8), slice(20, 30), slice(30, 40))
LESION_3 = (slice(7, 10), slice(5, 12), slice(45, 55))
ARTEFACT = (slice(0, 2), slice(32, 38), slice(2, 8))
PLACES = {"lesion 1": LESION_1, "lesion 2": LESION_2, "lesion 3": LESION_3, "artefact": ARTEFACT}


def _mask(*boxes: tuple[slice, ...], shift: tuple[int, int, int] = (0, 0, 0)) -> np.ndarray:
    mask = np.zeros(SHAPE, dtype=bool)
    for box in boxes:
        mask[box] = True
    return np.roll(mask, shift, axis=(0, 1, 2))


def _place(finding) -> str:
    """Which of the four places a finding lies over (by its centre)."""
    centre = [(s.start + s.stop) / 2 for s in finding.box]
    for name, place in PLACES.items():
        if all(s.start <= c <= s.stop for s, c in zip(place, centre, strict=True)):
            return name
    raise AssertionError(f"finding at {finding.box} lies nowhere expected")


def _three_readers() -> dict[str, np.ndarray]:
    return {
        "ana": _mask(LESION_1, LESION_2),
        "ben": _mask(LESION_1, LESION_3, shift=(0, 1, 1)),
        "cy": _mask(LESION_1, ARTEFACT) | _mask(LESION_2, shift=(0, 2, 0)),
    }


def test_findings_are_face_connected_components():
    mask = np.zeros((3, 4, 4), dtype=bool)
    mask[1, 1, 1] = mask[1, 2, 2] = True  # touching by an edge only: two findings
    mask[0, 3, 0:3] = True
    found = findings_of(mask, reader="ana")
    assert [f.voxels for f in found] == [3, 1, 1]
    assert [f.number for f in found] == [1, 2, 3]
    assert {f.reader for f in found} == {"ana"}


def test_it_groups_the_same_finding_across_readers_and_counts_misses():
    matching = match_findings(_three_readers())
    places = [{reader: _place(f) for reader, f in group.items()} for group in matching.groups]
    # Every group holds one place, whoever marked it.
    assert all(len(set(group.values())) == 1 for group in places)
    by_place = {next(iter(group.values())): set(group) for group in places}
    assert by_place == {
        "lesion 1": {"ana", "ben", "cy"},
        "lesion 2": {"ana", "cy"},
        "lesion 3": {"ben"},
        "artefact": {"cy"},
    }
    assert len(matching.groups) == 4
    assert matching.misses() == {"ana": 2, "ben": 2, "cy": 1}
    assert [_place(matching.groups[k]["ana"]) for k in range(2)] == ["lesion 1", "lesion 2"]


def test_overlap_below_the_threshold_is_two_findings():
    a = _mask(LESION_1)
    b = _mask(LESION_1, shift=(0, 0, 8))  # 2 of 10 columns shared: IoU 2/18
    found_a, found_b = findings_of(a, reader="a")[0], findings_of(b, reader="b")[0]
    assert iou(found_a, found_b) == pytest.approx(2 / 18)
    assert len(match_findings({"a": a, "b": b}, min_iou=0.2).groups) == 2
    assert len(match_findings({"a": a, "b": b}, min_iou=0.1).groups) == 1


def test_a_tight_outline_inside_a_generous_one_is_the_same_finding():
    generous = np.zeros((12, 12, 12), dtype=bool)
    generous[1:9, 1:9, 1:9] = True  # 512 voxels
    tight = np.zeros_like(generous)
    tight[4:7, 4:7, 4:7] = True  # 27 voxels, all inside: IoU 27/512
    found = findings_of(generous, reader="a")[0], findings_of(tight, reader="b")[0]
    assert iou(*found) == pytest.approx(27 / 512)
    assert match_findings({"a": generous, "b": tight}).misses() == {"a": 0, "b": 0}
    a_third_in = np.zeros_like(generous)
    a_third_in[4:7, 4:7, 8:11] = True  # column 8 inside, 9 and 10 outside
    assert match_findings({"a": generous, "b": a_third_in}).misses() == {"a": 1, "b": 1}
    assert match_findings({"a": generous, "b": a_third_in}, min_contained=0.3).misses() == {"a": 0, "b": 0}
    with pytest.raises(ValueError, match="min_contained"):
        match_findings({"a": generous}, min_contained=0.0)


def test_assignment_maximises_total_overlap_rather_than_taking_the_best_pair_first():
    a = np.zeros((1, 3, 20), dtype=bool)
    b = np.zeros_like(a)
    a[..., 0:10] = a[..., 12:16] = True  # findings X1, X2
    b[..., 3:16] = b[..., 0:2] = True  # Y1 overlaps X1 most (7/16) but also X2 (4/13); Y2 only X1
    matching = match_findings({"a": a, "b": b}, min_iou=0.1)
    assert matching.misses() == {"a": 0, "b": 0}
    pairs = {(g["a"].box[2].start, g["b"].box[2].start) for g in matching.groups}
    assert pairs == {(0, 0), (12, 3)}


def test_group_table_scores_each_finding_and_a_miss_as_empty():
    masks = _three_readers()
    matching = match_findings(masks)
    lesion_2 = next(k for k, g in enumerate(matching.groups) if _place(next(iter(g.values()))) == "lesion 2")
    table = matching.group_table(lesion_2, spacing=SPACING)
    assert table.readers == ("ana", "ben", "cy")
    ana, cy = _mask(LESION_2), _mask(LESION_2, shift=(0, 2, 0))
    assert table.dice[0, 2] == pytest.approx(dice(ana, cy))
    assert table.hd95_mm[0, 2] == pytest.approx(hd95_mm(ana, cy, spacing=SPACING), rel=1e-6)
    assert table.dice[0, 1] == 0.0
    assert table.hd95_mm[1, 2] == math.inf


def test_a_reader_with_no_findings_missed_them_all():
    matching = match_findings({"ana": _mask(LESION_1, LESION_2), "ben": np.zeros(SHAPE)})
    assert matching.missed_by("ben") == [0, 1]
    assert matching.misses() == {"ana": 0, "ben": 2}


def test_it_refuses_masks_of_different_shapes_and_a_threshold_outside_0_1():
    with pytest.raises(MaskShapeError):
        match_findings({"a": np.zeros((2, 3, 4)), "b": np.zeros((2, 3, 5))})
    with pytest.raises(ValueError, match="min_iou"):
        match_findings({"a": np.zeros((2, 3, 4))}, min_iou=0.0)
