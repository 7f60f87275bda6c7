"""find_findings: connected components of a probability map, measured in voxels and millimetres."""

from __future__ import annotations

import numpy as np
import pytest

from inference.engine.decode import voxel_to_patient
from inference.engine.postprocess import find_findings
from inference.engine.types import Geometry, ModelSpec

GEOMETRY = Geometry(
    spacing=(3.0, 0.5, 0.8),
    origin=(-100.0, -50.0, 20.0),
    orientation=(1.0, 0.0, 0.0, 0.0, 1.0, 0.0),
    sop_instance_uids=tuple(f"1.2.3.{k}" for k in range(10)),
)
SPEC = ModelSpec(name="test", version="1", threshold=0.5)


def _two_blobs() -> np.ndarray:
    probability = np.zeros((10, 20, 30), dtype=np.float32)
    probability[2:5, 3:7, 4:10] = 0.8  # 3 x 4 x 6 = 72 voxels
    probability[3, 5, 6] = 0.95
    probability[7:9, 15:17, 20:21] = 0.6  # 2 x 2 x 1 = 4 voxels
    probability[0, 0, 0] = 0.49  # under the threshold
    return probability


def test_it_measures_each_connected_component():
    mask, findings = find_findings(_two_blobs(), SPEC, GEOMETRY)

    assert [f.index for f in findings] == [1, 2]
    first, second = findings
    assert first.bbox == ((2, 5), (3, 7), (4, 10))
    assert first.voxel_count == 72
    assert first.volume_mm3 == pytest.approx(72 * 3.0 * 0.5 * 0.8)
    assert first.centroid_voxel == pytest.approx((3.0, 4.5, 6.5))
    # x = -100 + 6.5 * 0.8, y = -50 + 4.5 * 0.5, z = 20 + 3 * 3.0 (spacing honoured per axis)
    assert first.centroid_mm == pytest.approx((-94.8, -47.75, 29.0))
    assert first.max_probability == pytest.approx(0.95)
    assert first.mean_probability == pytest.approx((71 * 0.8 + 0.95) / 72)
    assert first.label == "lesion"
    assert second.bbox == ((7, 9), (15, 17), (20, 21))
    assert second.voxel_count == 4
    assert mask.dtype == np.uint8
    assert np.count_nonzero(mask == 1) == 72
    assert np.count_nonzero(mask == 2) == 4
    assert mask[0, 0, 0] == 0


def test_it_drops_findings_smaller_than_the_minimum_volume():
    spec = ModelSpec(name="test", version="1", threshold=0.5, min_finding_mm3=5.0)  # 4 voxels = 4.8 mm3

    mask, findings = find_findings(_two_blobs(), spec, GEOMETRY)

    assert [f.voxel_count for f in findings] == [72]
    assert set(np.unique(mask)) == {0, 1}


def test_it_joins_voxels_by_faces_only():
    probability = np.zeros((4, 8, 8), dtype=np.float32)
    probability[1, 2, 2] = probability[1, 3, 3] = 0.9  # touching at an edge only

    _, findings = find_findings(probability, SPEC, GEOMETRY)

    assert len(findings) == 2


def test_it_finds_nothing_in_an_empty_map():
    mask, findings = find_findings(np.full((3, 4, 5), 0.2, np.float32), SPEC, GEOMETRY)

    assert findings == []
    assert not mask.any()


def test_it_labels_a_finding_by_its_most_probable_channel():
    spec = ModelSpec(name="test", version="1", labels=("nodule", "mass"), threshold=0.5)
    channel = np.ones((10, 20, 30), dtype=np.uint8)
    channel[2, 3, 4] = 0

    _, findings = find_findings(_two_blobs(), spec, GEOMETRY, channel)

    assert [f.label for f in findings] == ["mass", "mass"]


def test_it_places_voxels_in_the_patient_through_the_orientation():
    feet_first = Geometry(
        spacing=(2.0, 1.0, 1.0),
        origin=(10.0, 20.0, 30.0),
        orientation=(-1.0, 0.0, 0.0, 0.0, 1.0, 0.0),  # rows run to the patient's right
        sop_instance_uids=("1", "2", "3"),
    )

    # normal = row x column = (0, 0, -1): slice 2 lies 4 mm lower
    assert voxel_to_patient(feet_first, (2, 3, 5)) == pytest.approx((5.0, 23.0, 26.0))
