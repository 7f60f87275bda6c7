"""Label fusion: majority vote (exact, and as SimpleITK's LabelVoting) and STAPLE."""

from __future__ import annotations

import math

import numpy as np
import pytest
import SimpleITK as sitk
from scipy import ndimage

from reviews.consensus import MaskShapeError, bounding_box, dice, majority_vote, staple

SHAPE = (20, 64, 64)
SPACING = (3.0, 0.7, 0.7)


def _truth() -> np.ndarray:
    grid = np.indices(SHAPE).astype(float)
    centre = (10, 30, 34)
    distance2 = sum(((grid[a] - centre[a]) * SPACING[a]) ** 2 for a in range(3))
    return distance2 <= 15.0**2


def test_majority_vote_of_three_readers():
    masks = {
        "ana": np.array([1, 1, 0, 0, 1, 0]),
        "ben": np.array([1, 0, 1, 0, 1, 0]),
        "cy": np.array([0, 0, 1, 0, 1, 1]),
    }
    np.testing.assert_array_equal(majority_vote(masks), [True, False, True, False, True, False])


def test_a_tie_is_outside_unless_asked_otherwise():
    masks = {"ana": np.array([1, 1, 0, 0]), "ben": np.array([1, 0, 1, 0])}
    np.testing.assert_array_equal(majority_vote(masks), [True, False, False, False])
    np.testing.assert_array_equal(majority_vote(masks, ties="inside"), [True, True, True, False])


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("readers", [3, 4, 5])
def test_majority_vote_equals_simpleitk_label_voting(seed, readers):
    rng = np.random.default_rng(seed)
    masks = {k: rng.random((6, 16, 16)) < 0.5 for k in range(readers)}
    images = [sitk.GetImageFromArray(m.astype(np.uint8)) for m in masks.values()]
    for ties, undecided in (("outside", 0), ("inside", 1)):
        expected = sitk.GetArrayFromImage(sitk.LabelVoting(images, undecided)) == 1
        np.testing.assert_array_equal(majority_vote(masks, ties=ties), expected)


def _careful(truth: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A careful reader: the truth with 30% of its border voxels dropped and 30% of the voxels
    just outside it added, at random."""
    inner = truth & ~ndimage.binary_erosion(truth)
    outer = ndimage.binary_dilation(truth) & ~truth
    return (truth & ~(inner & (rng.random(SHAPE) < 0.3))) | (outer & (rng.random(SHAPE) < 0.3))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_staple_finds_the_truth_and_the_noisy_reader(seed):
    rng = np.random.default_rng(seed)
    truth = _truth()
    masks = {
        "ana": _careful(truth, rng),
        "ben": _careful(truth, rng),
        "noisy": truth ^ (rng.random(SHAPE) < 0.1),  # a tenth of all voxels flipped
    }
    result = staple(masks)
    assert dice(result.mask, truth) > max(dice(m, truth) for m in masks.values()) + 0.03
    assert min(result.sensitivity, key=result.sensitivity.__getitem__) == "noisy"
    assert min(result.specificity, key=result.specificity.__getitem__) == "noisy"
    for reader, mask in masks.items():  # the estimates are near each reader's real performance
        assert result.sensitivity[reader] == pytest.approx((mask & truth).sum() / truth.sum(), abs=0.05)
        assert result.specificity[reader] == pytest.approx((~mask & ~truth).sum() / (~truth).sum(), abs=0.02)
    np.testing.assert_array_equal(result.mask, result.probability >= 0.5)
    assert 0.0 <= result.probability.min() <= result.probability.max() <= 1.0
    assert result.iterations >= 1


def test_staple_threshold_sets_the_fused_mask():
    truth = _truth()
    masks = {"a": truth, "b": ndimage.binary_dilation(truth, iterations=2), "c": np.roll(truth, 2, axis=1)}
    for threshold in (0.01, 0.5, 0.99):
        result = staple(masks, threshold=threshold)
        np.testing.assert_array_equal(result.mask, result.probability >= threshold)


def test_staple_with_a_margin_runs_on_the_box_around_every_mark():
    rng = np.random.default_rng(5)
    truth = _truth()
    masks = {"ana": _careful(truth, rng), "ben": _careful(truth, rng), "cy": np.roll(truth, 2, axis=0)}
    box = bounding_box(np.any(list(masks.values()), axis=0), margin=3)
    reference = sitk.STAPLEImageFilter()
    reference.SetForegroundValue(1.0)
    expected = reference.Execute([sitk.GetImageFromArray(m[box].astype(np.uint8)) for m in masks.values()])
    result = staple(masks, margin=3)
    np.testing.assert_allclose(result.probability[box], sitk.GetArrayFromImage(expected), rtol=0, atol=1e-12)
    outside = np.ones(SHAPE, dtype=bool)
    outside[box] = False
    assert outside.any()
    assert not result.probability[outside].any()
    assert list(result.sensitivity.values()) == pytest.approx(reference.GetSensitivity(), abs=1e-12)
    assert list(result.specificity.values()) == pytest.approx(reference.GetSpecificity(), abs=1e-12)


def test_staple_of_unanimous_masks_is_that_mask_with_undefined_performance():
    empty = staple({"a": np.zeros(SHAPE), "b": np.zeros(SHAPE)})
    assert not empty.mask.any()
    assert (empty.probability == 0.0).all()
    assert all(math.isnan(v) for v in [*empty.sensitivity.values(), *empty.specificity.values()])
    full = staple({"a": np.ones(SHAPE), "b": np.ones(SHAPE)})
    assert full.mask.all()
    assert math.isnan(full.sensitivity["a"])


def test_fusion_refuses_masks_of_different_shapes_and_no_masks():
    with pytest.raises(MaskShapeError, match="differ in shape"):
        majority_vote({"a": np.zeros((2, 3)), "b": np.zeros((3, 2))})
    with pytest.raises(MaskShapeError, match="at least one"):
        staple({})
