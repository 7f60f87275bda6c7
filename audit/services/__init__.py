"""Writes of the audit app (keyword-only, typed, named <entity>_<action>).

Other apps import from here: `from audit.services import audit_record`.
"""

from audit.services.chain import audit_chain_check
from audit.services.exports import (
    audit_export_fetched,
    audit_export_prune,
    audit_export_request,
    audit_export_stream,
    audit_export_write,
)
from audit.services.recording import (
    audit_hidden_refused,
    audit_log_used,
    audit_permission_denied,
    audit_record,
)

__all__ = [
    "audit_chain_check",
    "audit_export_fetched",
    "audit_export_prune",
    "audit_export_request",
    "audit_export_stream",
    "audit_export_write",
    "audit_hidden_refused",
    "audit_log_used",
    "audit_permission_denied",
    "audit_record",
]
