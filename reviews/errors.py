"""The reviews workflow's refusals: each says why, and maps to one HTTP status."""

from __future__ import annotations


class ReviewError(Exception):
    """A request the workflow refuses; nothing was changed. `field` names the input at fault."""

    status = 400
    field_errors: dict[str, object] | None = None  # malformed input: DRF's errors per field

    def __init__(self, message: str, *, field: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class Invalid(ReviewError):
    """Bad input (HTTP 400)."""


class Conflict(ReviewError):
    """The reading is not in a state that allows this, or changed since the client read it
    (HTTP 409)."""

    status = 409


class StaleVersion(Conflict):
    def __init__(self, *, sent: int, current: int) -> None:
        super().__init__(
            f"the reading changed since you read it (you sent version {sent}, it is now at version "
            f"{current}); reload it and try again",
            field="version",
        )
        self.current = current
