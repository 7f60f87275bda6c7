"""The audit vocabulary: DICOM PS3.16 code tables and the enumerations of PS3.15 A.5.

Every code Overread writes is listed here, so the review page, the exports and
the documentation name the same codes with the same meanings. Codes are from
the DICOM Controlled Terminology (coding scheme designator "DCM").

- CID 400 "Audit Event ID": what kind of event it is (AuditEvent.event_id).
- CID 401 "Audit Event Type Code" and CID 403 "Security Alert Type Code": the
  finer kind (AuditEvent.event_type); Security Alerts take theirs from CID 403.
"""

from __future__ import annotations

from typing import Final, NamedTuple

DCM_SYSTEM: Final = "http://dicom.nema.org/resources/ontology/DCM"  # the FHIR system URI for "DCM"


class Code(NamedTuple):
    code: str
    meaning: str


class EventID:
    """CID 400 Audit Event ID."""

    APPLICATION_ACTIVITY = Code("110100", "Application Activity")
    AUDIT_LOG_USED = Code("110101", "Audit Log Used")
    BEGIN_TRANSFERRING = Code("110102", "Begin Transferring DICOM Instances")
    INSTANCES_ACCESSED = Code("110103", "DICOM Instances Accessed")
    INSTANCES_TRANSFERRED = Code("110104", "DICOM Instances Transferred")
    STUDY_DELETED = Code("110105", "DICOM Study Deleted")
    EXPORT = Code("110106", "Export")
    IMPORT = Code("110107", "Import")
    NETWORK_ENTRY = Code("110108", "Network Entry")
    ORDER_RECORD = Code("110109", "Order Record")
    PATIENT_RECORD = Code("110110", "Patient Record")
    PROCEDURE_RECORD = Code("110111", "Procedure Record")
    QUERY = Code("110112", "Query")
    SECURITY_ALERT = Code("110113", "Security Alert")
    USER_AUTHENTICATION = Code("110114", "User Authentication")


class EventType:
    """CID 401 Audit Event Type Code and CID 403 Security Alert Type Code."""

    APPLICATION_START = Code("110120", "Application Start")
    APPLICATION_STOP = Code("110121", "Application Stop")
    LOGIN = Code("110122", "Login")
    LOGOUT = Code("110123", "Logout")
    ATTACH = Code("110124", "Attach")
    DETACH = Code("110125", "Detach")
    NODE_AUTHENTICATION = Code("110126", "Node Authentication")
    EMERGENCY_OVERRIDE_STARTED = Code("110127", "Emergency Override Started")
    NETWORK_CONFIGURATION = Code("110128", "Network Configuration")
    SECURITY_CONFIGURATION = Code("110129", "Security Configuration")
    HARDWARE_CONFIGURATION = Code("110130", "Hardware Configuration")
    SOFTWARE_CONFIGURATION = Code("110131", "Software Configuration")
    USE_OF_RESTRICTED_FUNCTION = Code("110132", "Use of Restricted Function")
    AUDIT_RECORDING_STOPPED = Code("110133", "Audit Recording Stopped")
    AUDIT_RECORDING_STARTED = Code("110134", "Audit Recording Started")
    OBJECT_SECURITY_ATTRIBUTES_CHANGED = Code("110135", "Object Security Attributes Changed")
    SECURITY_ROLES_CHANGED = Code("110136", "Security Roles Changed")
    USER_SECURITY_ATTRIBUTES_CHANGED = Code("110137", "User Security Attributes Changed")
    EMERGENCY_OVERRIDE_STOPPED = Code("110138", "Emergency Override Stopped")
    REMOTE_SERVICE_STARTED = Code("110139", "Remote Service Operation Started")
    REMOTE_SERVICE_STOPPED = Code("110140", "Remote Service Operation Stopped")
    LOCAL_SERVICE_STARTED = Code("110141", "Local Service Operation Started")
    LOCAL_SERVICE_STOPPED = Code("110142", "Local Service Operation Stopped")


def _table(holder: type) -> dict[str, str]:
    return {value.code: value.meaning for name, value in vars(holder).items() if isinstance(value, Code)}


EVENT_IDS: Final = _table(EventID)
EVENT_TYPES: Final = _table(EventType)


class Action:
    """EventActionCode (PS3.15 A.5.1, FHIR AuditEvent.action)."""

    CREATE = "C"
    READ = "R"
    UPDATE = "U"
    DELETE = "D"
    EXECUTE = "E"

    CHOICES = [
        (CREATE, "Create"),
        (READ, "Read"),
        (UPDATE, "Update"),
        (DELETE, "Delete"),
        (EXECUTE, "Execute"),
    ]


class Outcome:
    """EventOutcomeIndicator (PS3.15 A.5.1, FHIR AuditEvent.outcome)."""

    SUCCESS = 0
    MINOR_FAILURE = 4  # e.g. a refused request: the protection worked
    SERIOUS_FAILURE = 8  # e.g. an account locked against password guessing
    MAJOR_FAILURE = 12  # e.g. the audit trail itself was altered

    CHOICES = [
        (SUCCESS, "Success"),
        (MINOR_FAILURE, "Minor failure"),
        (SERIOUS_FAILURE, "Serious failure"),
        (MAJOR_FAILURE, "Major failure"),
    ]


def event_meaning(code: str) -> str:
    """The meaning of a CID 400 code, or the code itself when it is not one of ours."""
    return EVENT_IDS.get(code, code)


def event_type_meaning(code: str) -> str:
    """The meaning of a CID 401/403 code; empty for no code."""
    return EVENT_TYPES.get(code, code)
