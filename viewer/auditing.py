"""The viewer app's audit events (DICOM PS3.15 A.5), recorded through `audit_record`.

Ingest records one event per instance offered:
- over the network (STOW-RS, PACS pull): 110104 DICOM Instances Transferred;
- from a person's files (browser upload, `import_dicom`): 110107 Import;
  action C when stored, R when an identical copy was already held (PS3.15
  A.5.3.2), outcome 4 with the reason when refused;
- input that looks hostile rather than damaged (an archive entry leaving its
  folder, a link, a size or compression ratio past the limits, a frame claiming
  more pixels than its header): 110113 Security Alert, outcome 4.
No pixel data and no client file names (they may hold a patient's name) are
recorded: the UIDs, the patient ID, the input's SHA-256 and its size say which
input it was.
"""

from __future__ import annotations

import getpass
from dataclasses import dataclass
from typing import Any

from django.http import HttpRequest

from audit.codes import Action, Code, EventID, Outcome
from audit.services import audit_record

_FROM_FILES = {"upload", "import"}


@dataclass(frozen=True)
class IngestAuditFacts:
    """What one ingest attempt tells the audit trail."""

    origin: str
    sha256: str = ""
    size_bytes: int = 0
    patient_id: str = ""
    study_uid: str = ""
    series_uid: str = ""
    sop_instance_uid: str = ""
    sop_class_uid: str = ""


def _process_actor(origin: str) -> str:
    """Who acts when no user does: `import_dicom` runs as an operating-system account."""
    if origin != "import":
        return ""
    try:
        return f"os:{getpass.getuser()}"
    except (KeyError, OSError):  # no login name in this environment
        return "os:unknown"


def _event_for(origin: str) -> Code:
    return EventID.IMPORT if origin in _FROM_FILES else EventID.INSTANCES_TRANSFERRED


def _detail(facts: IngestAuditFacts, **extra: Any) -> dict[str, Any]:
    detail = {"origin": facts.origin, "sha256": facts.sha256, "bytes": facts.size_bytes}
    if facts.sop_class_uid:
        detail["sop_class_uid"] = facts.sop_class_uid
    return {**detail, **extra}


def _record(
    facts: IngestAuditFacts,
    *,
    event: Code,
    action: str,
    outcome: int,
    reason: str,
    user: Any,
    request: HttpRequest | None,
    **extra: Any,
) -> None:
    audit_record(
        event=event,
        action=action,
        outcome=outcome,
        outcome_reason=reason,
        request=request,
        user=user,
        username="" if user is not None else _process_actor(facts.origin),
        patient_id=facts.patient_id,
        study_uid=facts.study_uid,
        series_uid=facts.series_uid,
        sop_uid=facts.sop_instance_uid,
        detail=_detail(facts, **extra),
    )


def audit_instance_stored(
    *, facts: IngestAuditFacts, user: Any = None, request: HttpRequest | None = None
) -> None:
    """A new instance is in the store and the index (110104 or 110107, action Create)."""
    _record(
        facts,
        event=_event_for(facts.origin),
        action=Action.CREATE,
        outcome=Outcome.SUCCESS,
        reason="",
        user=user,
        request=request,
    )


def audit_instance_already_held(
    *, facts: IngestAuditFacts, user: Any = None, request: HttpRequest | None = None
) -> None:
    """An identical copy was offered again; nothing changed (110104 or 110107, action Read)."""
    _record(
        facts,
        event=_event_for(facts.origin),
        action=Action.READ,
        outcome=Outcome.SUCCESS,
        reason="already stored",
        user=user,
        request=request,
    )


def audit_input_rejected(
    *,
    facts: IngestAuditFacts,
    reason: str,
    failure_code: int,
    security: bool,
    user: Any = None,
    request: HttpRequest | None = None,
) -> None:
    """Input refused (outcome 4 minor failure: the check held); hostile input as a Security Alert."""
    _record(
        facts,
        event=EventID.SECURITY_ALERT if security else _event_for(facts.origin),
        action=Action.EXECUTE if security else Action.CREATE,
        outcome=Outcome.MINOR_FAILURE,
        reason=reason,
        user=user,
        request=request,
        failure_reason=f"0x{failure_code:04X}",
    )
