"""Checking the hash chain on a schedule, and raising the alarm when it is broken."""

from __future__ import annotations

import logging

from audit.codes import EventID, EventType, Outcome
from audit.services.recording import audit_record
from audit.verification import ChainReport, audit_chain_verify

logger = logging.getLogger(__name__)


def audit_chain_check(*, chunk_size: int = 20_000) -> ChainReport:
    """Verifies the whole chain; records a Security Alert (110113, major failure) when it is broken.

    The head (last id and hash) is logged when intact: shipped to a separate
    log store, those lines are the outside anchor that shows a truncated tail.
    """
    report = audit_chain_verify(chunk_size=chunk_size)
    if report.intact:
        logger.info(
            "audit chain intact: %d events, head id=%s hash=%s",
            report.count,
            report.head_id,
            report.head_hash,
        )
        return report
    logger.error("audit chain broken at event %s: %s", report.first_bad_id, report.problem)
    audit_record(
        event=EventID.SECURITY_ALERT,
        event_type=EventType.OBJECT_SECURITY_ATTRIBUTES_CHANGED,
        action="E",
        outcome=Outcome.MAJOR_FAILURE,
        outcome_reason=f"audit trail integrity check failed at event {report.first_bad_id}",
        username="system:verify_audit",
        detail={"first_bad_id": report.first_bad_id, "problem": report.problem, "checked": report.count},
    )
    return report
