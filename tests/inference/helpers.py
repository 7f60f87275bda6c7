"""Helpers of the inference tests: a registered demo model and synthetic series in the store."""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any

from pydicom.dataset import Dataset

from fixtures.synthetic import SyntheticStudy, make_ct_study
from inference.derived import to_part10_bytes as part10
from inference.models import ModelVersion
from inference.registry import DEMO_MANIFEST, ModelDescription, model_register
from viewer.ingest.service import ingest_file
from viewer.models import Series


def demo_model(status: str = ModelVersion.Status.ACTIVE, **changes: Any) -> ModelVersion:
    """The shipped demonstration model, registered (a changed name or version registers a copy)."""
    description = ModelDescription.from_manifest(DEMO_MANIFEST)
    if changes:
        from dataclasses import replace

        description = replace(description, **changes)
    return model_register(description=description, status=status)


def ingest(datasets: Sequence[Dataset]) -> Series:
    """Stores the datasets through the real ingest service; returns their series."""
    for index, ds in enumerate(datasets):
        outcome = ingest_file(source=io.BytesIO(part10(ds)), name=f"slice{index}.dcm", origin="import")
        assert outcome.status == "stored", outcome.reason
    return Series.objects.get(series_uid=datasets[0].SeriesInstanceUID)


def small_study(seed: int = 11, lesions: int = 2, slices: int = 16) -> SyntheticStudy:
    """A synthetic chest CT small enough for a test to run the model on in about a second."""
    return make_ct_study(seed=seed, slices=slices, rows=128, columns=128, lesions=lesions)


def dice(a: Any, b: Any) -> float:
    a, b = a.astype(bool), b.astype(bool)
    total = a.sum() + b.sum()
    return float(2 * (a & b).sum() / total) if total else 1.0


def in_study_order(volume: Any, slice_uids: Sequence[str], study: SyntheticStudy) -> Any:
    """A job's array (slice k is SOP instance slice_uids[k]) in the synthetic study's slice order."""
    order = [slice_uids.index(ds.SOPInstanceUID) for ds in study.datasets]
    return volume[order]


def in_job_order(volume: Any, slice_uids: Sequence[str], study: SyntheticStudy) -> Any:
    """A study's array (its ground truth) in a job's slice order (slice k is slice_uids[k])."""
    index = {ds.SOPInstanceUID: k for k, ds in enumerate(study.datasets)}
    return volume[[index[uid] for uid in slice_uids]]
