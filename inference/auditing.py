"""The inference app's audit events beyond the job's own (inference.services.job_audit)."""

from __future__ import annotations

from django.http import HttpRequest

from audit.codes import Action, EventID
from audit.services import audit_record
from inference.models import InferenceJob

_SESSION_KEY = "inference_audited_jobs"
_SESSION_MEMORY = 500


def audit_outputs_accessed(request: HttpRequest, job: InferenceJob) -> None:
    """Records 110103 DICOM Instances Accessed for a job's outputs, once per job per session
    (the viewer reads them as several requests; a client without a session records each)."""
    session = getattr(request, "session", None)
    if session is not None and session.session_key and job.pk in session.get(_SESSION_KEY, []):
        return
    study = job.series.study
    audit_record(
        event=EventID.INSTANCES_ACCESSED,
        action=Action.READ,
        request=request,
        patient_id=study.patient.patient_id,
        accession=study.accession_number,
        study_uid=study.study_uid,
        series_uid=job.series.series_uid,
        model_version=str(job.model_version),
        inference_job_id=job.pk,
        detail={"via": "ai-outputs", "path": request.path[:512]},
    )
    if session is not None and session.session_key:
        session[_SESSION_KEY] = [*session.get(_SESSION_KEY, []), job.pk][-_SESSION_MEMORY:]
