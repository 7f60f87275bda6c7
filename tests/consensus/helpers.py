"""Helpers of the consensus project tests: stored studies with anisotropic voxels, their
lesion masks in a reading's slice order, and a whole blinded read over the API."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import ndimage

from fixtures.synthetic import SyntheticStudy, make_ct_study
from reviews.masks import series_geometry
from reviews.models import Reading
from reviews.services import reading_update
from tests.inference.helpers import ingest
from tests.reviews.helpers import api, encode_mask
from viewer.models import Series, Study

SPACING = (5.0, 1.5, 1.5)  # mm: thick slices, so HD95 in mm differs from HD95 in voxels


@dataclass
class Case:
    synthetic: SyntheticStudy
    study: Study
    slice_uids: list[str]
    lesions: np.ndarray  # uint8 (z, y, x) in slice_uids order: k on lesion k's voxels

    def lesion(self, k: int) -> np.ndarray:
        return self.lesions == k


def stored_case(*, seed: int, lesions: int = 2) -> Case:
    synthetic = make_ct_study(seed=seed, slices=16, rows=64, columns=64, spacing=SPACING, lesions=lesions)
    ingest(synthetic.datasets)
    series = Series.objects.get(series_uid=synthetic.series_uid)
    geometry = series_geometry(series)
    order = {ds.SOPInstanceUID: k for k, ds in enumerate(synthetic.datasets)}
    volume = synthetic.mask[[order[uid] for uid in geometry.slice_uids]].astype(np.uint8)
    return Case(synthetic=synthetic, study=series.study, slice_uids=geometry.slice_uids, lesions=volume)


def grown(mask: np.ndarray) -> np.ndarray:
    """The mask grown by one pixel in each slice (a reader who drew the edge a little wider)."""
    structure = np.zeros((3, 3, 3), dtype=bool)
    structure[1] = ndimage.generate_binary_structure(2, 1)
    return ndimage.binary_dilation(mask, structure=structure)


def read(
    user: Any,
    case: Case,
    findings: list[np.ndarray],
    answers: dict[str, str],
    *,
    label: str = "nodule",
    submit: bool = True,
) -> dict[str, Any]:
    """A whole read over the API: open, add each finding, lock, answer, submit. Returns the
    reading as the API gave it last."""
    client = api(user)
    opened = client.post("/api/v1/readings/", {"study_uid": case.study.study_uid}, format="json")
    assert opened.status_code in (200, 201), opened.content
    reading = opened.json()
    assert reading["slice_uids"] == case.slice_uids
    url = f"/api/v1/readings/{reading['id']}/"
    version = reading["version"]
    for mask in findings:
        added = client.post(
            url + "decisions/",
            {
                "version": version,
                "kind": "added",
                "label": label,
                "confidence": 4,
                "mask": encode_mask(mask, case.slice_uids),
            },
            format="json",
        )
        assert added.status_code == 201, added.content
        version = added.json()["version"]
    locked = client.post(url + "lock/", {"version": version}, format="json")
    assert locked.status_code == 200, locked.content
    version = locked.json()["version"]
    saved = reading_update(reading=Reading.objects.get(pk=reading["id"]), version=version, answers=answers)
    if not submit:
        return client.get(url).json()
    submitted = client.post(url + "submit/", {"version": saved.version}, format="json")
    assert submitted.status_code == 200, submitted.content
    return submitted.json()
