"""Readings, decisions and worklist rows as the API shows them (plain dicts, JSON-ready)."""

from __future__ import annotations

from typing import Any

from django.urls import reverse

from inference.models import InferenceJob
from reviews.models import Decision, Reading
from reviews.selectors import WorklistRow, decisions_current, newest_result, unaided_elsewhere
from reviews.services.decisions import LABELS
from reviews.services.readings import withheld_because


def _iso(value: Any) -> str | None:
    return value.isoformat() if value else None


def decision_data(decision: Decision) -> dict[str, Any]:
    return {
        "id": decision.pk,
        "target": decision.target,
        "kind": decision.kind,
        "phase": decision.phase,
        "supersedes": decision.supersedes_id,
        "finding": decision.ai_finding_index,
        "ai_label": decision.ai_label or None,
        "ai_max_probability": decision.ai_max_probability,
        "ai_bbox": decision.ai_bbox,
        "final_label": decision.final_label or None,
        "final_bbox": decision.final_bbox,
        "mask_source": decision.mask_source or None,
        "mask_voxels": decision.mask_voxels,
        "mask_url": (
            reverse("api-reading-decision-mask", args=[decision.reading_id, decision.pk])
            if decision.mask_key
            else None
        ),
        "dice": decision.dice,
        "reason_code": decision.reason_code or None,
        "reason_text": decision.reason_text or None,
        "confidence": decision.confidence,
        "time_spent_s": decision.time_spent_s,
        "reading_active_s": decision.reading_active_s,
        "reader": decision.reader.get_username(),
        "reader_role": decision.reader_role,
        "created_at": _iso(decision.created_at),
    }


def ai_data(job: InferenceJob) -> dict[str, Any]:
    model = job.model_version
    return {
        "job": job.pk,
        "model": {"name": model.name, "version": model.version, "demonstration": model.demonstration},
        "input_hash": job.input_hash,
        "study_score": job.study_score,
        "triage": job.triage,
        "slices": job.slice_uids,
        "rows": job.rows,
        "columns": job.columns,
        "mask_url": reverse("api-inference-job-array", args=[job.pk, "mask"]),
        "heatmap_url": reverse("api-inference-job-array", args=[job.pk, "heatmap"]),
        "findings": [
            {
                "index": f.index,
                "label": f.label,
                "bbox": f.bbox,
                "centroid_voxel": f.centroid_voxel,
                "volume_mm3": round(f.volume_mm3, 1),
                "max_probability": round(f.max_probability, 4),
                "mean_probability": round(f.mean_probability, 4),
            }
            for f in job.findings.all()
        ],
    }


def _waits_for_ai(reading: Reading) -> bool:
    return reading.revealed_job_id is None and reading.phase in (
        Reading.Phase.LOCKED,
        Reading.Phase.AI_REVEALED,
    )


def reading_data(reading: Reading, *, show_ai: bool) -> dict[str, Any]:
    project = reading.project
    job = reading.revealed_job if show_ai else None
    waiting = show_ai and _waits_for_ai(reading)
    # The reader's open unaided read of the study in another project holds the AI back.
    elsewhere = (
        unaided_elsewhere(reader=reading.reader, study_pk=reading.study_id, excluding=reading.pk)
        if waiting
        else None
    )
    return {
        "id": reading.pk,
        "version": reading.version,
        "phase": reading.phase,
        "project": {
            "id": project.pk,
            "name": project.name,
            "reading_mode": project.reading_mode,
            "override_reasons": project.override_reasons,
            "show_ai": show_ai,
            "kind": project.kind,
            "questions": project.questions,
        },
        "reading_mode": reading.reading_mode,
        "ai_seen_before": reading.ai_seen_before,
        "reader": reading.reader.get_username(),
        "reader_role": reading.reader_role,
        "study_uid": reading.study.study_uid,
        "series_uid": reading.series.series_uid,
        "slice_uids": reading.slice_uids,
        "rows": reading.rows,
        "columns": reading.columns,
        "labels": list(LABELS),
        "unaided_impression": reading.unaided_impression,
        "final_impression": reading.final_impression,
        "triage_agreement": reading.triage_agreement or None,
        "answers": reading.answers,
        "unaided_seconds": round(reading.unaided_seconds, 1),
        "aided_seconds": round(reading.aided_seconds, 1),
        "ai": ai_data(job) if job is not None else None,
        # Waiting for the AI (locked, or ai-first before the job finished): whether reveal
        # would find a result now, so a client polls this rather than the reveal.
        "ai_ready": waiting
        and elsewhere is None
        and newest_result(user=reading.reader, series=reading.series) is not None,
        "ai_withheld": withheld_because(elsewhere) if elsewhere is not None else None,
        "decisions": [decision_data(d) for d in decisions_current(reading=reading).select_related("reader")],
        "seg_sop_uid": reading.seg_sop_uid or None,
        "sr_sop_uid": reading.sr_sop_uid or None,
        "created_at": _iso(reading.created_at),
        "locked_at": _iso(reading.locked_at),
        "revealed_at": _iso(reading.revealed_at),
        "submitted_at": _iso(reading.submitted_at),
        "urls": {
            "self": reverse("api-reading", args=[reading.pk]),
            "viewer": reverse("study-viewer", args=[reading.study.study_uid]),
        },
    }


def worklist_row_data(row: WorklistRow) -> dict[str, Any]:
    entry, study = row.entry, row.entry.study
    job = row.job
    return {
        "project": {"id": entry.project_id, "name": entry.project.name},
        "study_uid": study.study_uid,
        "patient_id": study.patient.patient_id,
        "patient_name": study.patient.name,
        "study_date": _iso(study.study_date),
        "accession": study.accession_number,
        "modalities": [m for m in study.acquired_modalities.split("\\") if m],
        "description": study.description,
        "waiting_since": _iso(entry.waiting_since),
        "ai": (
            {"job": job.pk, "status": job.status, "progress": job.progress, "triage": job.triage or None}
            if job is not None
            else None
        ),
        "ai_priority": (entry.ai_triage or None) if not row.ai_hidden else None,
        "reading_status": entry.reading_status,
        "assignees": row.assignees,
        "my_reading": (
            {"id": row.my_reading.pk, "phase": row.my_reading.phase, "version": row.my_reading.version}
            if row.my_reading is not None
            else None
        ),
        "viewer_url": row.viewer_url,
    }
