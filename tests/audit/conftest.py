"""Fixtures for the audit tests: chains of events to read, verify and export."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from audit.codes import EventID, EventType, Outcome
from audit.models import AuditEvent
from audit.services import audit_record


@pytest.fixture
def make_events(db: Any) -> Callable[..., list[AuditEvent]]:
    """Records `count` varied events (a study access by default) and returns them, oldest first."""

    def make(count: int, **fields: Any) -> list[AuditEvent]:
        values: dict[str, Any] = {
            "event": EventID.INSTANCES_ACCESSED,
            "action": "R",
            "username": "rita",
            "patient_id": "PAT-1",
            "study_uid": "1.2.826.0.1.3680043.8.498.1",
        }
        values.update(fields)
        return [audit_record(**{**values, "detail": {"n": n, "note": "ünïcode ✓"}}) for n in range(count)]

    return make


@pytest.fixture
def login_failure_event(db: Any) -> AuditEvent:
    return audit_record(
        event=EventID.USER_AUTHENTICATION,
        event_type=EventType.LOGIN,
        action="E",
        outcome=Outcome.MINOR_FAILURE,
        username="mallory",
    )
