"""What the simulated readers of the review benchmark and the soak post as decisions."""

from __future__ import annotations

from typing import Any


def decision_body(*, turn: int, version: int) -> dict[str, Any]:
    """A simulated reader's next decision: accepted and overridden in turn, on one of the
    reading's three AI findings, with the version its last answer gave."""
    overridden = turn % 2 == 0
    body: dict[str, Any] = {
        "version": version,
        "kind": "overridden" if overridden else "accepted",
        "confidence": 1 + turn % 5,
        "finding": 1 + turn % 3,
        "time_spent_s": 4.0,
    }
    if overridden:
        body["reason_code"] = "false_positive_benign"
    return body
