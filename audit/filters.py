"""What an auditor can ask of the trail: one filter shape for the page, the API, exports and the command.

`AuditFilter` is the typed filter; `AuditFilterForm` reads it from query
parameters (page and API share the parameter names); `QUICK_FILTERS` are the
saved filters auditors use most.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, Final

from django import forms
from django.db.models import Q, QuerySet
from django.utils import timezone

from audit.codes import EVENT_IDS, EventID
from audit.models import AuditEvent
from config.inputs import validate_date_range

FAILURES: Final = "failure"  # the outcome filter value for "any failure"


@dataclass(frozen=True)
class AuditFilter:
    since: datetime | None = None  # inclusive
    until: datetime | None = None  # exclusive
    username: str = ""
    patient_id: str = ""
    study_uid: str = ""
    event_id: str = ""
    outcome: str = ""  # "", "0", "4", "8", "12" or FAILURES

    @property
    def range_problem(self) -> str:
        """Why `until` cannot go with `since` ("" when it can): what the form and the API say."""
        if self.since is not None and self.until is not None and self.until <= self.since:
            return "is before From: no event can lie between them."
        return ""

    def apply(self, events: QuerySet[AuditEvent]) -> QuerySet[AuditEvent]:
        if self.since is not None:
            events = events.filter(occurred_at__gte=self.since)
        if self.until is not None:
            events = events.filter(occurred_at__lt=self.until)
        exact = {
            "username": self.username,
            "patient_id": self.patient_id,
            "study_uid": self.study_uid,
            "event_id": self.event_id,
        }
        events = events.filter(**{field: value for field, value in exact.items() if value})
        if self.outcome == FAILURES:
            events = events.filter(~Q(outcome=0))
        elif self.outcome:
            events = events.filter(outcome=int(self.outcome))
        return events

    def as_params(self) -> dict[str, str]:
        """Query parameters that read back into this filter (links, export buttons, stored exports)."""
        params: dict[str, str] = {}
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if isinstance(value, datetime):
                params[field.name] = value.isoformat()
            elif value:
                params[field.name] = str(value)
        return params

    @property
    def is_empty(self) -> bool:
        return not self.as_params()


_DATE = forms.DateInput(attrs={"type": "date"})
_OUTCOME_CHOICES = [
    ("", "Any outcome"),
    ("0", "Success"),
    (FAILURES, "Any failure"),
    ("4", "Minor failure"),
    ("8", "Serious failure"),
    ("12", "Major failure"),
]


class AuditFilterForm(forms.Form):
    # A date alone means the start of that day for `since` and its end for `until`.
    since = forms.DateTimeField(required=False, label="From", widget=_DATE, validators=[validate_date_range])
    until = forms.DateTimeField(required=False, label="To", widget=_DATE, validators=[validate_date_range])
    username = forms.CharField(required=False, max_length=150, label="User")
    patient_id = forms.CharField(required=False, max_length=64, label="Patient ID")
    study_uid = forms.CharField(required=False, max_length=64, label="Study UID")
    event_id = forms.ChoiceField(
        required=False,
        label="Event",
        choices=[("", "Any event"), *((code, f"{meaning} ({code})") for code, meaning in EVENT_IDS.items())],
    )
    outcome = forms.ChoiceField(required=False, choices=_OUTCOME_CHOICES)

    def clean(self) -> dict[str, Any] | None:
        data = super().clean()
        if not self.errors and (problem := self.audit_filter().range_problem):
            self.add_error("until", problem)
        return data

    def audit_filter(self) -> AuditFilter:
        """The filter of a valid form. A date alone for `until` includes that whole day."""
        data = self.cleaned_data
        until = data.get("until")
        if until is not None and _is_bare_date(self.data.get("until", "")):
            until = until + timedelta(days=1)
        return AuditFilter(
            since=_aware(data.get("since")),
            until=_aware(until),
            username=data.get("username", "").strip(),
            patient_id=data.get("patient_id", "").strip(),
            study_uid=data.get("study_uid", "").strip(),
            event_id=data.get("event_id", ""),
            outcome=data.get("outcome", ""),
        )


def _is_bare_date(text: str) -> bool:
    try:
        date.fromisoformat(text.strip())
    except ValueError:
        return False
    return True


def _aware(moment: datetime | None) -> datetime | None:
    if moment is None or timezone.is_aware(moment):
        return moment
    return timezone.make_aware(moment)


def filter_from_params(params: Any) -> AuditFilter:
    """The filter of a query-parameter mapping; raises ValueError naming the bad parameters."""
    form = AuditFilterForm(params)
    if not form.is_valid():
        problems = "; ".join(f"{name}: {' '.join(map(str, errors))}" for name, errors in form.errors.items())
        raise ValueError(problems)
    return form.audit_filter()


@dataclass(frozen=True)
class QuickFilter:
    key: str
    label: str
    params: dict[str, str]
    needs: str = ""  # the parameter the auditor fills in ("" for none)


QUICK_FILTERS: Final = (
    QuickFilter("patient", "One patient's access history", {}, needs="patient_id"),
    QuickFilter("user", "One user's activity", {}, needs="username"),
    QuickFilter(
        "failed-logins",
        "Failed sign-ins",
        {"event_id": EventID.USER_AUTHENTICATION.code, "outcome": FAILURES},
    ),
    QuickFilter("exports", "Exports", {"event_id": EventID.EXPORT.code}),
    QuickFilter("alerts", "Security alerts", {"event_id": EventID.SECURITY_ALERT.code}),
)
