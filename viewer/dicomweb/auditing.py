"""The DICOMweb server's audit events: studies accessed (110103) and queries (110112).

A viewer reads a study as hundreds of frame requests; the trail records the
access once per study per session. Sessions remember the studies they have
recorded (`request.session`, so it holds across processes); token and Basic
clients have no session, so their "session" is the credential, remembered in
the cache for as long as a session lives. The cache also absorbs the burst of
parallel first requests a viewer sends before its session is saved: within one
process, only the first of them records. Across processes such a burst may
record the same access twice; the trail never misses one.
"""

from __future__ import annotations

from django.conf import settings
from django.core.cache import cache
from django.http import HttpRequest

from audit.codes import Action, EventID
from audit.services import audit_record
from viewer.models import Study

_SESSION_KEY = "dicomweb_audited_studies"
# A session reading more studies than this forgets the oldest (and records it again).
_SESSION_MEMORY = 500


def audit_study_accessed(request: HttpRequest, study: Study) -> None:
    """Records 110103 DICOM Instances Accessed for `study`, once per study per session."""
    scope = getattr(request, "dicomweb_scope", "")
    if scope.startswith("session:") and study.study_uid in request.session.get(_SESSION_KEY, []):
        return
    if not cache.add(f"dicomweb:audited:{scope}:{study.study_uid}", 1, timeout=settings.SESSION_COOKIE_AGE):
        return
    if scope.startswith("session:"):
        remembered = [*request.session.get(_SESSION_KEY, []), study.study_uid][-_SESSION_MEMORY:]
        request.session[_SESSION_KEY] = remembered
    audit_record(
        event=EventID.INSTANCES_ACCESSED,
        action=Action.READ,
        request=request,
        patient_id=study.patient.patient_id,
        accession=study.accession_number,
        study_uid=study.study_uid,
        detail={"via": "dicomweb", "path": request.path[:512]},
    )


def audit_query(request: HttpRequest, *, level: str, study_uid: str = "", series_uid: str = "") -> None:
    """Records 110112 Query for one QIDO-RS request, with its query string."""
    audit_record(
        event=EventID.QUERY,
        action=Action.EXECUTE,
        request=request,
        study_uid=study_uid,
        series_uid=series_uid,
        detail={"via": "qido-rs", "level": level, "query": request.META.get("QUERY_STRING", "")[:2048]},
    )
