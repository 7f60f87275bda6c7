"""The shipped demonstration model (fixtures/demo_model) on studies it has never seen.

The studies here use generator seeds outside the training and held-out ranges the model card
names, at the small test geometry (128 x 128, 0.7 mm pixels).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage
from torch import nn

from fixtures.synthetic import SyntheticStudy, make_ct_study
from inference.engine.decode import decode_series
from inference.engine.loading import clear_cache, file_sha256, load_network
from inference.engine.manifest import Manifest, read_manifest
from inference.engine.pipeline import run
from inference.engine.training import DISCLAIMER, HELD_OUT_SEEDS_FROM, TRAIN_SEEDS_FROM
from inference.engine.types import InferenceResult

DEMO_MODEL = Path(__file__).resolve().parents[2] / "fixtures" / "demo_model"
UNSEEN_SEED = 424_242  # below both the training and the held-out seed ranges


@pytest.fixture(scope="module")
def manifest() -> Manifest:
    return read_manifest(DEMO_MODEL)


@pytest.fixture(scope="module")
def network(manifest: Manifest) -> Iterator[nn.Module]:
    clear_cache()
    yield load_network(manifest.source, "cpu")
    clear_cache()


def _run(study: SyntheticStudy, manifest: Manifest, network: nn.Module) -> tuple[InferenceResult, np.ndarray]:
    """The result and the ground-truth labels in the decoded volume's slice order."""
    volume = decode_series(study.datasets, manifest.spec.input)
    where = {ds.SOPInstanceUID: k for k, ds in enumerate(study.datasets)}
    truth = study.mask[[where[uid] for uid in volume.geometry.sop_instance_uids]]
    return run(network, volume, manifest.spec, device="cpu"), truth


def test_the_shipped_weights_are_the_ones_the_manifest_names(manifest):
    card = manifest.data["model_card"]

    assert file_sha256(manifest.source.weights) == manifest.source.sha256
    assert manifest.source.weights.stat().st_size < 5_000_000
    assert card["demonstration"] is True
    assert card["statement"] == DISCLAIMER
    assert card["evaluation"]["mean_dice"] >= 0.6
    assert card["evaluation"]["auc"] >= 0.9
    assert min(TRAIN_SEEDS_FROM, HELD_OUT_SEEDS_FROM) > UNSEEN_SEED + 2


@pytest.fixture(scope="module")
def unseen(manifest: Manifest, network: nn.Module) -> tuple[SyntheticStudy, InferenceResult, np.ndarray]:
    study = make_ct_study(seed=UNSEEN_SEED, slices=20, rows=128, columns=128, lesions=3)
    return (study, *_run(study, manifest, network))


def test_it_finds_the_lesions_of_an_unseen_study(manifest, unseen):
    study, result, truth = unseen

    found = result.mask > 0
    for label in range(1, len(study.lesions) + 1):
        assert found[truth == label].any(), f"lesion {study.lesions[label - 1]} was missed"
    dice = 2 * np.count_nonzero(found & (truth > 0)) / (np.count_nonzero(found) + np.count_nonzero(truth))
    assert dice >= 0.8, f"Dice {dice:.3f}"
    assert len(result.findings) == len(study.lesions)
    assert result.study_score >= manifest.study_threshold


def test_its_heatmaps_point_at_the_lesions(unseen):
    _, result, truth = unseen

    assert result.heatmap.dtype == np.float32
    assert result.heatmap.min() >= 0
    assert result.heatmap.max() == pytest.approx(1.0)
    near = ndimage.binary_dilation(truth > 0, structure=np.ones((3, 19, 19), bool))  # within 9 pixels
    assert result.heatmap[near].sum() / result.heatmap.sum() >= 0.7
    for finding in result.findings:
        (z0, z1), (y0, y1), (x0, x1) = finding.bbox
        local = result.finding_heatmaps[finding.index]
        own = result.mask[z0:z1, y0:y1, x0:x1] == finding.index
        assert local.max() == pytest.approx(1.0)
        assert local[own].mean() > local[~own].mean()


def test_a_study_with_a_lesion_scores_above_a_normal_one(manifest, network):
    lesion = make_ct_study(seed=UNSEEN_SEED + 1, slices=16, rows=128, columns=128, lesions=1)
    normal = make_ct_study(seed=UNSEEN_SEED + 2, slices=16, rows=128, columns=128, lesions=0)

    with_lesion, _ = _run(lesion, manifest, network)
    without, _ = _run(normal, manifest, network)

    assert with_lesion.study_score >= manifest.study_threshold > without.study_score
    assert without.findings == []
