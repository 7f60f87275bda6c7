"""Jobs as the API and the pages show them (plain dicts, JSON-ready)."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest
from django.urls import reverse

from inference.models import InferenceJob


def job_summary(job: InferenceJob, *, request: HttpRequest | None = None) -> dict[str, Any]:
    model = job.model_version
    return {
        "job": job.pk,
        "status": job.status,
        "progress": job.progress,
        "stage": job.stage,
        "error": job.error,
        "trigger": job.trigger,
        "created_at": job.created_at.isoformat() if job.created_at else None,
        "started_at": job.started_at.isoformat() if job.started_at else None,
        "finished_at": job.finished_at.isoformat() if job.finished_at else None,
        "timings": job.timings,
        "device": job.device,
        "input_hash": job.input_hash,
        "instance_count": job.instance_count,
        "study_uid": job.series.study.study_uid,
        "series_uid": job.series.series_uid,
        "study_score": job.study_score,
        "triage": job.triage,
        "model": {
            "name": model.name,
            "version": model.version,
            "status": model.status,
            "demonstration": model.demonstration,
            "threshold": model.threshold,
        },
        "findings": [
            {
                "index": f.index,
                "label": f.label,
                "bbox": f.bbox,
                "centroid_voxel": f.centroid_voxel,
                "centroid_mm": f.centroid_mm,
                "volume_mm3": round(f.volume_mm3, 1),
                "max_probability": round(f.max_probability, 4),
                "mean_probability": round(f.mean_probability, 4),
            }
            for f in job.findings.all()
        ]
        if job.status == InferenceJob.Status.SUCCEEDED
        else [],
    }


def job_overlay(job: InferenceJob, *, request: HttpRequest | None = None) -> dict[str, Any]:
    """job_summary plus what the viewer needs to lay the outputs over the images."""
    data = job_summary(job, request=request)
    succeeded = job.status == InferenceJob.Status.SUCCEEDED
    data.update(
        slices=job.slice_uids if succeeded else [],
        rows=job.rows,
        columns=job.columns,
        heatmap_url=reverse("api-inference-job-array", args=[job.pk, "heatmap"]) if succeeded else "",
        mask_url=reverse("api-inference-job-array", args=[job.pk, "mask"]) if succeeded else "",
    )
    return data
