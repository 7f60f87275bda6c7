"""A FHIR R4 Bundle (type "collection") of AuditEvent resources, as one JSON document.

The Bundle is written piece by piece (envelope, then each entry) so it streams
in constant memory; tests check the whole output, and each entry, against
the R4 models of `fhir.resources` (its R4B package).

Mapping (DICOM PS3.15 A.5 / IHE ATNA to FHIR, as in the FHIR DICOM mapping):
type = the CID 400 event id, subtype = the CID 401/403 type, action,
recorded, outcome (0/4/8/12) and outcomeDesc; one agent (the user: id,
name, role, network address); source = Overread; entities for the patient
and the study (with accession, series and SOP instance UIDs). A last entity
describes the audit record itself: its `detail` holds every chained field
by name (empty strings and nulls are left out, as FHIR forbids empty
values), `hash` and `hash_version`, so the hash can be re-computed.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from typing import Any, Final

from audit.canonical import CHAINED_FIELDS, EXPORT_FIELDS, timestamp_text
from audit.codes import DCM_SYSTEM, event_meaning, event_type_meaning

_ENTITY_TYPE: Final = "http://terminology.hl7.org/CodeSystem/audit-entity-type"
_OBJECT_ROLE: Final = "http://terminology.hl7.org/CodeSystem/object-role"
_SOURCE_TYPE: Final = "http://terminology.hl7.org/CodeSystem/security-source-type"
_NETWORK_IP: Final = "2"  # AuditEvent.agent.network.type: IP address
_SOURCE: Final = {
    "site": "Overread",
    "observer": {"display": "Overread"},
    "type": [{"system": _SOURCE_TYPE, "code": "4", "display": "Application Server"}],
}
_PERSON: Final = {"system": _ENTITY_TYPE, "code": "1", "display": "Person"}
_SYSTEM_OBJECT: Final = {"system": _ENTITY_TYPE, "code": "2", "display": "System Object"}
_PATIENT_ROLE: Final = {"system": _OBJECT_ROLE, "code": "1", "display": "Patient"}
_REPORT_ROLE: Final = {"system": _OBJECT_ROLE, "code": "3", "display": "Report"}
_SECURITY_RESOURCE_ROLE: Final = {"system": _OBJECT_ROLE, "code": "13", "display": "Security Resource"}
_AUDIT_RECORD_SYSTEM: Final = "urn:overread:audit-event"
_encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


def pieces(rows: Iterable[tuple[Any, ...]]) -> Iterator[str]:
    stamp = timestamp_text(datetime.now(UTC))
    head = f'{{"resourceType":"Bundle","type":"collection","timestamp":"{stamp}"'
    first = True
    for row in rows:
        event = dict(zip(EXPORT_FIELDS, row, strict=True))
        entry = _encode(
            {"fullUrl": f"urn:overread:audit-event:{event['id']}", "resource": audit_event_resource(event)}
        )
        # FHIR forbids empty arrays, so "entry" opens only once there is one.
        yield f'{head},"entry":[{entry}' if first else f",{entry}"
        first = False
    yield head + "}" if first else "]}"


def audit_event_resource(event: dict[str, Any]) -> dict[str, Any]:
    """One FHIR R4 AuditEvent (a dict ready for JSON) from an event's EXPORT_FIELDS values by name."""
    resource: dict[str, Any] = {
        "resourceType": "AuditEvent",
        "id": str(event["id"]),
        "type": {
            "system": DCM_SYSTEM,
            "code": event["event_id"],
            "display": event_meaning(event["event_id"]),
        },
        "action": event["action"],
        "recorded": event["occurred_at"],
        "outcome": str(event["outcome"]),
        "agent": [_agent(event)],
        "source": _SOURCE,
        "entity": [*_subjects(event), _record_entity(event)],
    }
    if event["event_type"]:
        code = event["event_type"]
        resource["subtype"] = [{"system": DCM_SYSTEM, "code": code, "display": event_type_meaning(code)}]
    if event["outcome_reason"]:
        resource["outcomeDesc"] = event["outcome_reason"]
    return resource


def _agent(event: dict[str, Any]) -> dict[str, Any]:
    agent: dict[str, Any] = {"requestor": True}
    who: dict[str, Any] = {}
    if event["user_id"] is not None:
        who["identifier"] = {"system": "urn:overread:user", "value": str(event["user_id"])}
    if event["username"]:
        who["display"] = event["username"]
        agent["name"] = event["username"]
    if who:
        agent["who"] = who
    if event["role"]:
        agent["role"] = [{"text": role} for role in event["role"].split(",")]
    if event["session_hash"]:
        agent["altId"] = event["session_hash"]
    if event["source_ip"]:
        agent["network"] = {"address": event["source_ip"], "type": _NETWORK_IP}
    return agent


def _subjects(event: dict[str, Any]) -> list[dict[str, Any]]:
    entities: list[dict[str, Any]] = []
    if event["patient_id"]:
        entities.append(
            {"what": {"identifier": {"value": event["patient_id"]}}, "type": _PERSON, "role": _PATIENT_ROLE}
        )
    if event["study_uid"]:
        details = [
            {"type": name, "valueString": event[field]}
            for name, field in (
                ("Accession", "accession"),
                ("SeriesInstanceUID", "series_uid"),
                ("SOPInstanceUID", "sop_uid"),
            )
            if event[field]
        ]
        study: dict[str, Any] = {
            "what": {"identifier": {"system": "urn:dicom:uid", "value": f"urn:oid:{event['study_uid']}"}},
            "type": _SYSTEM_OBJECT,
            "role": _REPORT_ROLE,
        }
        if details:
            study["detail"] = details
        entities.append(study)
    return entities


def _record_entity(event: dict[str, Any]) -> dict[str, Any]:
    details = [
        {"type": name, "valueString": str(event[name])}
        for name in (*CHAINED_FIELDS, "hash", "hash_version")
        if event[name] is not None and event[name] != ""
    ]
    return {
        "what": {"identifier": {"system": _AUDIT_RECORD_SYSTEM, "value": str(event["id"])}},
        "type": _SYSTEM_OBJECT,
        "role": _SECURITY_RESOURCE_ROLE,
        "description": "Overread audit record (hash chain, format version 1)",
        "detail": details,
    }
