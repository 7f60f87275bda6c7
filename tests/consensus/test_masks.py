"""Dice and surface distances of masks with anisotropic voxels, against SimpleITK and scipy."""

from __future__ import annotations

import math

import numpy as np
import pytest
import SimpleITK as sitk
from scipy import ndimage

from reviews.consensus import (
    MaskShapeError,
    bounding_box,
    dice,
    hausdorff_mm,
    hd95_mm,
    pairwise_table,
    surface_distances_mm,
)

SPACING = (3.0, 0.7, 0.7)  # (z, y, x) mm: thick CT slices
SHAPE = (24, 80, 90)
SEEDS = [0, 1, 2, 3, 4]


def _ellipsoid(rng: np.random.Generator, shape=SHAPE, spacing=SPACING) -> np.ndarray:
    """A random ball in millimetres (so an ellipsoid in voxels), sometimes cut by the array edge."""
    grid = np.indices(shape).astype(float)
    centre = rng.uniform(0.2, 0.8, size=3) * np.array(shape)
    radius = rng.uniform(5.0, 18.0)
    distance2 = sum(((grid[axis] - centre[axis]) * spacing[axis]) ** 2 for axis in range(3))
    return distance2 <= radius**2


def _box(rng: np.random.Generator, shape=SHAPE) -> np.ndarray:
    mask = np.zeros(shape, dtype=bool)
    start = [int(rng.integers(0, n - 4)) for n in shape]
    stop = [int(rng.integers(s + 2, n + 1)) for s, n in zip(start, shape, strict=True)]
    mask[tuple(slice(a, b) for a, b in zip(start, stop, strict=True))] = True
    return mask


def _pair(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Two overlapping shapes: a ball and the same ball moved and grown, or a box and the same
    box moved by up to a quarter of its size and joined by another box."""
    rng = np.random.default_rng(seed)
    first = _ellipsoid(rng) if seed % 2 == 0 else _box(rng)
    (box,) = ndimage.find_objects(first.astype(np.uint8))
    shift = tuple(int(rng.integers(-(s.stop - s.start) // 4, (s.stop - s.start) // 4 + 1)) for s in box)
    grow = int(rng.integers(0, 3))  # iterations=0 would dilate until nothing changes
    second = ndimage.binary_dilation(first, iterations=grow) if grow else first.copy()
    second = np.roll(second, shift, axis=(0, 1, 2))
    if seed % 2:
        second |= _box(rng)
    return first, second


def _image(mask: np.ndarray, spacing=SPACING) -> sitk.Image:
    image = sitk.GetImageFromArray(mask.astype(np.uint8))
    image.SetSpacing(tuple(reversed(spacing)))
    return image


def _surface(mask: np.ndarray) -> np.ndarray:
    """Voxels inside with a face neighbour outside (outside the array counts as outside)."""
    padded = np.pad(mask, 1)
    interior = padded.copy()
    for axis in range(mask.ndim):
        interior &= np.roll(padded, 1, axis=axis) & np.roll(padded, -1, axis=axis)
    return (padded & ~interior)[tuple(slice(1, -1) for _ in range(mask.ndim))]


def _reference_distances(a: np.ndarray, b: np.ndarray, spacing=SPACING) -> tuple[np.ndarray, np.ndarray]:
    surface_a, surface_b = _surface(a), _surface(b)
    to_b = ndimage.distance_transform_edt(~surface_b, sampling=spacing)
    to_a = ndimage.distance_transform_edt(~surface_a, sampling=spacing)
    return to_b[surface_a], to_a[surface_b]


@pytest.mark.parametrize("seed", SEEDS)
def test_dice_equals_simpleitk_label_overlap(seed):
    a, b = _pair(seed)
    overlap = sitk.LabelOverlapMeasuresImageFilter()
    overlap.Execute(_image(a), _image(b))
    assert dice(a, b) == pytest.approx(overlap.GetDiceCoefficient(), abs=1e-12)


@pytest.mark.parametrize("seed", SEEDS)
def test_surface_distances_equal_scipy_exact_distance_transform(seed):
    a, b = _pair(seed)
    expected_ab, expected_ba = _reference_distances(a, b)
    got_ab, got_ba = surface_distances_mm(a, b, spacing=SPACING)
    # SimpleITK's distance maps are float32: agreement to about 1e-6 relative.
    np.testing.assert_allclose(got_ab, expected_ab, rtol=1e-6, atol=1e-5)
    np.testing.assert_allclose(got_ba, expected_ba, rtol=1e-6, atol=1e-5)


@pytest.mark.parametrize("seed", SEEDS)
def test_hd95_is_the_larger_directed_95th_percentile(seed):
    a, b = _pair(seed)
    expected_ab, expected_ba = _reference_distances(a, b)
    expected = max(np.percentile(expected_ab, 95), np.percentile(expected_ba, 95))
    assert hd95_mm(a, b, spacing=SPACING) == pytest.approx(expected, rel=1e-6, abs=1e-5)
    assert hd95_mm(b, a, spacing=SPACING) == pytest.approx(expected, rel=1e-6, abs=1e-5)


@pytest.mark.parametrize("seed", [0, 2, 4])
def test_full_hausdorff_equals_simpleitk_for_overlapping_balls(seed):
    a, b = _pair(seed)
    hausdorff = sitk.HausdorffDistanceImageFilter()
    hausdorff.Execute(_image(a), _image(b))
    assert hausdorff_mm(a, b, spacing=SPACING) == pytest.approx(hausdorff.GetHausdorffDistance(), rel=1e-6)


@pytest.mark.parametrize(("shift", "expected_mm"), [((2, 0, 0), 6.0), ((0, 0, 3), 2.1), ((0, 1, 0), 0.7)])
def test_distances_are_in_millimetres_along_each_axis(shift, expected_mm):
    a = np.zeros(SHAPE, dtype=bool)
    a[5:12, 20:40, 20:50] = True
    b = np.roll(a, shift, axis=(0, 1, 2))
    assert hausdorff_mm(a, b, spacing=SPACING) == pytest.approx(expected_mm, rel=1e-6)


def test_a_mask_cut_by_the_array_edge_has_its_edge_as_surface():
    a = np.zeros((6, 10, 10), dtype=bool)
    a[:, :4, :] = True  # touches five faces of the array
    b = np.zeros_like(a)
    b[:, :2, :] = True
    expected_ab, expected_ba = _reference_distances(a, b)
    got_ab, got_ba = surface_distances_mm(a, b, spacing=SPACING)
    np.testing.assert_allclose(got_ab, expected_ab, rtol=1e-6, atol=1e-5)
    np.testing.assert_allclose(got_ba, expected_ba, rtol=1e-6, atol=1e-5)


def test_two_dimensional_masks_take_a_two_axis_spacing():
    rng = np.random.default_rng(7)
    a, b = _box(rng, (40, 50)), _box(rng, (40, 50))
    expected_ab, expected_ba = _reference_distances(a, b, spacing=(0.5, 1.5))
    expected = max(np.percentile(expected_ab, 95), np.percentile(expected_ba, 95))
    assert hd95_mm(a, b, spacing=(0.5, 1.5)) == pytest.approx(expected, rel=1e-6, abs=1e-5)


def test_empty_masks_follow_the_documented_conventions():
    empty = np.zeros(SHAPE, dtype=bool)
    some = np.zeros(SHAPE, dtype=bool)
    some[3:6, 10:20, 10:20] = True
    assert dice(empty, empty) == 1.0
    assert hd95_mm(empty, empty, spacing=SPACING) == 0.0
    assert dice(some, empty) == 0.0
    assert hd95_mm(some, empty, spacing=SPACING) == math.inf
    assert hd95_mm(empty, some, spacing=SPACING) == math.inf
    to_empty, from_empty = surface_distances_mm(some, empty, spacing=SPACING)
    assert from_empty.size == 0
    assert to_empty.size == _surface(some).sum()
    assert np.isinf(to_empty).all()


def test_identical_masks_are_at_zero_distance():
    a, _ = _pair(0)
    assert dice(a, a) == 1.0
    assert hd95_mm(a, a, spacing=SPACING) == pytest.approx(0.0, abs=1e-5)


def test_masks_that_cannot_be_compared_are_refused():
    a = np.zeros((4, 5, 6), dtype=bool)
    with pytest.raises(MaskShapeError, match="differ in shape"):
        dice(a, np.zeros((4, 5, 7)))
    with pytest.raises(MaskShapeError, match="does not fit"):
        hd95_mm(a, a, spacing=(0.7, 0.7))
    with pytest.raises(MaskShapeError, match="positive"):
        hd95_mm(a, a, spacing=(3.0, 0.0, 0.7))
    with pytest.raises(ValueError, match="percentile"):
        hausdorff_mm(a, a, spacing=SPACING, percentile=101)


def test_bounding_box_grows_by_the_margin_within_the_array():
    mask = np.zeros((5, 10, 10), dtype=bool)
    mask[0, 3:5, 8] = True
    assert bounding_box(mask) == (slice(0, 1), slice(3, 5), slice(8, 9))
    assert bounding_box(mask, margin=2) == (slice(0, 3), slice(1, 7), slice(6, 10))
    with pytest.raises(ValueError, match="empty"):
        bounding_box(np.zeros((2, 2)))


def test_pairwise_table_holds_every_pair_of_readers():
    rng = np.random.default_rng(11)
    masks = {"ana": _ellipsoid(rng), "ben": _ellipsoid(rng), "cy": np.zeros(SHAPE, dtype=bool)}
    table = pairwise_table(masks, spacing=SPACING)
    assert table.readers == ("ana", "ben", "cy")
    np.testing.assert_array_equal(table.dice, table.dice.T)
    np.testing.assert_array_equal(table.hd95_mm, table.hd95_mm.T)
    np.testing.assert_array_equal(np.diag(table.dice), [1.0, 1.0, 1.0])
    np.testing.assert_array_equal(np.diag(table.hd95_mm), [0.0, 0.0, 0.0])
    pairs = table.pairs()
    assert [(p[0], p[1]) for p in pairs] == [("ana", "ben"), ("ana", "cy"), ("ben", "cy")]
    assert pairs[0][2] == dice(masks["ana"], masks["ben"])
    assert pairs[0][3] == hd95_mm(masks["ana"], masks["ben"], spacing=SPACING)
    assert pairs[1][2:] == (0.0, math.inf)
