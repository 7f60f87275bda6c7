"""Helpers of the reviews tests: studies in the store, AI results made directly (no model
run), masks as the viewer sends them, and an API client per user."""

from __future__ import annotations

import base64
import io
from dataclasses import dataclass
from typing import Any

import numpy as np
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.utils import timezone
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient
from scipy import ndimage

from fixtures.synthetic import SyntheticStudy, make_ct_study
from inference.arrays import pack
from inference.engine.decode import decode_series
from inference.engine.postprocess import find_findings
from inference.engine.types import InferenceResult, InputSpec, ModelSpec
from inference.models import Finding, InferenceJob, JobOutput, ModelVersion
from inference.outputs import outputs_write
from reviews.masks import series_geometry
from tests.inference.helpers import ingest
from viewer.models import Series, Study


@dataclass
class AiResult:
    synthetic: SyntheticStudy
    series: Series
    study: Study
    job: InferenceJob
    mask: np.ndarray  # uint8 (z, y, x) in the job's slice order: k on finding k's voxels

    @property
    def slice_uids(self) -> list[str]:
        return list(self.job.slice_uids)


def stored_study(
    *, seed: int, lesions: int = 2, slices: int = 16, size: int = 64, **kwargs: Any
) -> SyntheticStudy:
    synthetic = make_ct_study(
        seed=seed, slices=slices, rows=size, columns=size, spacing=(4.0, 4.0, 4.0), lesions=lesions, **kwargs
    )
    ingest(synthetic.datasets)
    return synthetic


def model_version(name: str = "demo-unet", version: str = "1.0.0", **changes: Any) -> ModelVersion:
    fields: dict[str, Any] = {
        "name": name,
        "version": version,
        "status": ModelVersion.Status.ACTIVE,
        "format": ModelVersion.Format.STATE_DICT,
        "weights_key": f"models/{name}-{version}.pt",
        "weights_sha256": "0" * 64,
        "labels": ["lesion"],
        "threshold": 0.5,
        "study_threshold": 0.5,
        "triage_urgent": 0.9,
        "triage_priority": 0.6,
        "hu_window": [-1000, 1000],
        **changes,
    }
    model, _ = ModelVersion.objects.get_or_create(name=name, version=version, defaults=fields)
    return model


def ai_result(
    synthetic: SyntheticStudy,
    *,
    score: float = 0.95,
    triage: str = "urgent",
    model: ModelVersion | None = None,
) -> AiResult:
    """A succeeded job whose mask is the study's ground truth, one finding per lesion."""
    series = Series.objects.get(series_uid=synthetic.series_uid)
    geometry = series_geometry(series)
    order = {ds.SOPInstanceUID: k for k, ds in enumerate(synthetic.datasets)}
    mask = synthetic.mask[[order[uid] for uid in geometry.slice_uids]].astype(np.uint8)
    job = InferenceJob.objects.create(
        model_version=model or model_version(),
        series=series,
        status=InferenceJob.Status.SUCCEEDED,
        input_hash="a" * 64,
        progress=100,
        stage="done",
        study_score=score,
        triage=triage,
        slice_uids=geometry.slice_uids,
        rows=geometry.rows,
        columns=geometry.columns,
        finished_at=timezone.now(),
    )
    content, offsets = pack(mask.astype(np.uint8))  # as a job stores it (inference.arrays)
    key = default_storage.save(f"inference/jobs/{job.pk}/mask.u8.gz", ContentFile(content))
    JobOutput.objects.create(
        job=job, kind=JobOutput.Kind.MASK, storage_key=key, size_bytes=len(content), slice_offsets=offsets
    )
    for index in range(1, int(mask.max()) + 1):
        voxels = mask == index
        zs, ys, xs = np.nonzero(voxels)
        centre = ndimage.center_of_mass(voxels)
        Finding.objects.create(
            job=job,
            index=index,
            label="lesion",
            bbox=[
                [int(zs.min()), int(zs.max()) + 1],
                [int(ys.min()), int(ys.max()) + 1],
                [int(xs.min()), int(xs.max()) + 1],
            ],
            centroid_voxel=[float(c) for c in centre],
            centroid_mm=list(geometry.to_patient(centre)),
            volume_mm3=float(voxels.sum()) * geometry.voxel_mm3,
            voxel_count=int(voxels.sum()),
            max_probability=0.9 + index / 100,
            mean_probability=0.8,
        )
    return AiResult(synthetic=synthetic, series=series, study=series.study, job=job, mask=mask)


def encode_mask(volume: np.ndarray, slice_uids: list[str]) -> dict[str, str]:
    """A (z, y, x) volume as the viewer sends it: base64 uint8 per slice that holds voxels."""
    return {
        slice_uids[z]: base64.b64encode(
            np.ascontiguousarray(volume[z] != 0, dtype=np.uint8).tobytes()
        ).decode()
        for z in range(volume.shape[0])
        if volume[z].any()
    }


def api(user: Any) -> APIClient:
    """A client signed in with the user's API token: each request loads the user afresh, with
    the permissions and memberships of that moment, as an integration's requests do."""
    client = APIClient()
    token, _ = Token.objects.get_or_create(user=user)
    client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    return client


def session(user: Any) -> APIClient:
    """A client signed in with a session (so AuditMiddleware and CSRF run as for the viewer)."""
    client = APIClient(enforce_csrf_checks=False)
    client.force_login(user)
    return client


def npz(key: str) -> dict[str, Any]:
    with default_storage.open(key, "rb") as handle:
        data = np.load(io.BytesIO(handle.read()))
        return {name: data[name] for name in data.files}


def with_derived_objects(result: AiResult) -> None:
    """Writes the job's SEG, Parametric Map and SR into the study, as a real job does."""
    datasets = list(result.synthetic.datasets)
    volume = decode_series(datasets, InputSpec(pixel_spacing_mm=(0.3, 5.0), slice_spacing_mm=(0.5, 6.0)))
    order = {uid: k for k, uid in enumerate(result.slice_uids)}
    mask = result.mask[[order[uid] for uid in volume.geometry.sop_instance_uids]]
    probability = (mask > 0).astype(np.float32)
    mask, findings = find_findings(probability, ModelSpec(name="demo-unet", version="1.0.0"), volume.geometry)
    outputs_write(
        job=result.job,
        volume=volume,
        source=datasets,
        result=InferenceResult(
            probability=probability,
            mask=mask,
            findings=findings,
            study_score=0.95,
            slice_scores=probability.max(axis=(1, 2)),
            heatmap=probability,
            finding_heatmaps={},
        ),
    )
