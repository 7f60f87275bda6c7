"""The hospital PACS over DICOMweb: search it, pull studies from it, push results to it.

One configured remote (settings PACS_*), reached with dicomweb-client. Pulled
instances go through the same ingest service as every other way in, so they
are validated, deduplicated and audited the same way.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import pydicom
import requests
from dicomweb_client.api import DICOMwebClient
from django.conf import settings
from django.db import transaction
from django.utils import timezone
from requests_toolbelt.multipart.decoder import MultipartDecoder

from audit.codes import Action, EventID, Outcome
from audit.services import audit_record
from config.jobs import job_claim
from viewer.ingest.service import IngestOutcome, ingest_file
from viewer.models import Instance, PacsPull
from viewer.store import is_valid_uid, store_open

# QIDO attributes shown on the search page, by keyword.
SEARCH_FIELDS = [
    "PatientID",
    "PatientName",
    "StudyDate",
    "AccessionNumber",
    "ModalitiesInStudy",
    "StudyDescription",
    "NumberOfStudyRelatedInstances",
]


# WADO-RS retrieve of Part 10 files in whatever transfer syntax the PACS holds.
_PART10_ANY_SYNTAX = 'multipart/related; type="application/dicom"; transfer-syntax=*'


class PacsError(Exception):
    """The PACS could not be reached or refused a request; the message says which."""


class _TimeoutSession(requests.Session):
    """A session whose every request has a timeout, so a dead PACS never hangs us."""

    def __init__(self, timeout: float) -> None:
        super().__init__()
        self._timeout = timeout

    def request(self, *args: Any, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", self._timeout)
        return super().request(*args, **kwargs)


def _session(timeout: float) -> requests.Session:
    session = _TimeoutSession(timeout)
    if settings.PACS_USERNAME:
        session.auth = (settings.PACS_USERNAME, settings.PACS_PASSWORD)
    return session


def pacs_client(*, timeout: float = 30.0) -> DICOMwebClient:
    client = DICOMwebClient(url=settings.PACS_DICOMWEB_URL, session=_session(timeout))
    client.set_http_retry_params(retry=False)
    return client


@dataclass(frozen=True)
class PacsStudy:
    study_uid: str
    attributes: dict[str, str]


@dataclass
class PullSummary:
    total: int = 0
    stored: int = 0
    duplicates: int = 0
    rejected: int = 0
    reasons: list[str] = field(default_factory=list)


def pacs_study_search(*, filters: dict[str, str], limit: int = 50, user: Any = None) -> list[PacsStudy]:
    """QIDO-RS study search on the PACS; `filters` maps DICOM keywords to match values."""
    try:
        found = pacs_client().search_for_studies(search_filters=filters, limit=limit)
    except (requests.RequestException, OSError) as exc:
        raise PacsError(_describe(exc)) from exc
    audit_record(
        event=EventID.QUERY,
        action=Action.EXECUTE,
        user=user,
        detail={"remote": settings.PACS_DICOMWEB_URL, "filters": filters},
    )
    studies = []
    for item in found:
        dataset = pydicom.Dataset.from_json(item)
        attributes = {key: str(dataset.get(key, "")) for key in SEARCH_FIELDS}
        studies.append(PacsStudy(str(dataset.get("StudyInstanceUID", "")), attributes))
    return studies


def pacs_study_pull(
    *,
    study_uid: str,
    user: Any = None,
    progress: Callable[[PullSummary], None] | None = None,
) -> PullSummary:
    """Copies every instance of a PACS study into Overread, one instance at a time."""
    if not is_valid_uid(study_uid):
        raise PacsError(f"not a valid Study Instance UID: {study_uid[:80]!r}")
    client = pacs_client()
    session = _session(timeout=60)
    try:
        listed = client.search_for_instances(study_instance_uid=study_uid)
    except (requests.RequestException, OSError) as exc:
        raise PacsError(_describe(exc)) from exc
    if not listed:
        raise PacsError(f"the PACS has no study {study_uid}")
    summary = PullSummary(total=len(listed))
    for number, item in enumerate(listed, start=1):
        series_uid, sop_uid = _listed_uid(item, "0020000E"), _listed_uid(item, "00080018")
        refused = _refused_uids(series_uid, sop_uid)
        if refused:
            # The UIDs go into the WADO-RS URL: a listed '../..' would reach another path.
            summary.rejected += 1
            label = sop_uid if is_valid_uid(sop_uid) else f"instance {number} of the listing"
            summary.reasons.append(f"{label}: {refused}")
        else:
            _count(summary, _pull_instance(session, study_uid, series_uid, sop_uid, user))
        if progress:
            progress(summary)
    audit_record(
        event=EventID.IMPORT,
        action=Action.CREATE,
        user=user,
        study_uid=study_uid,
        outcome=Outcome.SUCCESS if summary.rejected == 0 else Outcome.MINOR_FAILURE,
        detail={"remote": settings.PACS_DICOMWEB_URL, "stored": summary.stored, "rejected": summary.rejected},
    )
    return summary


def _listed_uid(item: Any, tag: str) -> Any:
    """One UID of a QIDO-RS result as the PACS sent it (None when it sent none)."""
    try:
        return item[tag]["Value"][0]
    except (KeyError, IndexError, TypeError):
        return None


def _refused_uids(series_uid: Any, sop_uid: Any) -> str:
    """Why the listed UIDs cannot name an instance to fetch; empty when they can."""
    for value, name in (
        (series_uid, "Series Instance UID (0020,000E)"),
        (sop_uid, "SOP Instance UID (0008,0018)"),
    ):
        if value is None or value == "":
            return f"{name} is missing from the PACS listing"
        if not is_valid_uid(value):
            return f"{name} {str(value)[:70]!r} is not a valid DICOM UID"
    return ""


def _pull_instance(
    session: requests.Session, study_uid: str, series_uid: str, sop_uid: str, user: Any
) -> IngestOutcome:
    """Fetches one instance as the PACS stores it (no transcoding, no re-encoding) and ingests it."""
    root = settings.PACS_DICOMWEB_URL.rstrip("/")
    url = f"{root}/studies/{study_uid}/series/{series_uid}/instances/{sop_uid}"
    try:
        response = session.get(url, headers={"Accept": _PART10_ANY_SYNTAX})
        response.raise_for_status()
    except (requests.RequestException, OSError) as exc:
        raise PacsError(_describe(exc)) from exc
    parts = MultipartDecoder.from_response(response).parts
    if len(parts) != 1:
        raise PacsError(f"the PACS sent {len(parts)} parts for instance {sop_uid}, expected 1")
    content = parts[0].content
    if content[:2] == b"\x02\x00":
        # Some PACS (Orthanc's DICOMweb plugin 1.7) send the file meta group
        # without the 128-byte preamble and "DICM": restore the Part 10 framing.
        content = bytes(128) + b"DICM" + content
    with tempfile.TemporaryFile() as file:
        file.write(content)
        file.seek(0)
        return ingest_file(source=file, name=sop_uid, origin="pacs", user=user)


def _count(summary: PullSummary, outcome: IngestOutcome) -> None:
    if outcome.status == "stored":
        summary.stored += 1
    elif outcome.status == "duplicate":
        summary.duplicates += 1
    else:
        summary.rejected += 1
        summary.reasons.append(f"{outcome.sop_instance_uid or outcome.name}: {outcome.reason}")


def pacs_instances_push(*, instances: Iterable[Instance], user: Any = None) -> int:
    """Sends stored instances to the PACS with STOW-RS; returns how many it took."""
    client = pacs_client()
    pushed = 0
    for instance in instances:
        with store_open(instance.storage_key) as file:
            dataset = pydicom.dcmread(file)
        try:
            client.store_instances(datasets=[dataset], study_instance_uid=instance.series.study.study_uid)
        except (requests.RequestException, OSError) as exc:
            raise PacsError(_describe(exc)) from exc
        pushed += 1
        audit_record(
            event=EventID.EXPORT,
            action=Action.READ,
            user=user,
            study_uid=instance.series.study.study_uid,
            series_uid=instance.series.series_uid,
            sop_uid=instance.sop_instance_uid,
            detail={"remote": settings.PACS_DICOMWEB_URL},
        )
    return pushed


def pacs_pull_request(*, study_uid: str, user: Any) -> PacsPull:
    """Queues a pull of one study for a worker (after the transaction commits)."""
    from viewer.tasks import pacs_pull_run

    if not settings.PACS_ENABLED:
        raise PacsError("no PACS is configured: an administrator sets PACS_DICOMWEB_URL (docs/operations.md)")
    if not is_valid_uid(study_uid):
        raise PacsError(f"not a valid Study Instance UID: {study_uid[:80]!r}")
    pull = PacsPull.objects.create(study_uid=study_uid, requested_by=user)
    transaction.on_commit(lambda: pacs_pull_run.delay(pull_pk=pull.pk))
    return pull


def pacs_pull_execute(*, pull_pk: int, task_id: str = "") -> None:
    """Runs a queued pull once: claims it, pulls, and writes the outcome on the row.

    A second delivery does nothing; the redelivery of a run whose worker died
    pulls again (config.jobs), and what the first run stored counts as already here.
    """
    claimed = job_claim(
        PacsPull, pk=pull_pk, task_id=task_id, queued=PacsPull.Status.QUEUED, running=PacsPull.Status.RUNNING
    )
    if not claimed:
        return
    pull = PacsPull.objects.select_related("requested_by").get(pk=pull_pk)

    def progress(summary: PullSummary) -> None:
        PacsPull.objects.filter(pk=pull_pk).update(
            total=summary.total,
            stored=summary.stored,
            duplicates=summary.duplicates,
            rejected=summary.rejected,
        )

    try:
        summary = pacs_study_pull(study_uid=pull.study_uid, user=pull.requested_by, progress=progress)
    except PacsError as exc:
        PacsPull.objects.filter(pk=pull_pk).update(
            status=PacsPull.Status.FAILED, error=str(exc), finished_at=timezone.now()
        )
        return
    error = "\n".join(summary.reasons[:20])
    PacsPull.objects.filter(pk=pull_pk).update(
        status=PacsPull.Status.SUCCEEDED, error=error, finished_at=timezone.now()
    )


def _describe(exc: Exception) -> str:
    if isinstance(exc, requests.HTTPError) and exc.response is not None:
        return f"the PACS answered {exc.response.status_code} {exc.response.reason}"
    if isinstance(exc, requests.ConnectionError):
        return f"cannot reach the PACS at {settings.PACS_DICOMWEB_URL}"
    if isinstance(exc, requests.Timeout):
        return "the PACS did not answer in time"
    return f"PACS request failed: {type(exc).__name__}"
