"""Writes and workflows of the reviews app (keyword-only, typed, named <entity>_<action>).

Other code imports from here: `from reviews.services import reading_lock`.
"""

from reviews.services.consensus import (
    StaleReference,
    answers_check,
    consensus_assign,
    consensus_case_compute,
    consensus_reassign,
    consensus_reassign_inactive,
    reference_record,
)
from reviews.services.decisions import DecisionInput, decision_record
from reviews.services.export import (
    FeedbackFilter,
    FilterError,
    feedback_decisions,
    feedback_export_build,
    feedback_export_fetched,
    feedback_export_request,
    feedback_export_write,
)
from reviews.services.projects import (
    assignment_create,
    assignment_round_robin,
    not_a_reader,
    project_status_refresh,
    project_studies_add,
    project_triage_refresh,
    reading_entry,
    study_arrived,
)
from reviews.services.readings import (
    MAX_HEARTBEAT_SECONDS,
    reading_heartbeat,
    reading_lock,
    reading_reveal,
    reading_start,
    reading_update,
)
from reviews.services.submission import StoreRefused, reading_submit

__all__ = [
    "MAX_HEARTBEAT_SECONDS",
    "DecisionInput",
    "FeedbackFilter",
    "FilterError",
    "StaleReference",
    "StoreRefused",
    "answers_check",
    "assignment_create",
    "assignment_round_robin",
    "consensus_assign",
    "consensus_case_compute",
    "consensus_reassign",
    "consensus_reassign_inactive",
    "decision_record",
    "feedback_decisions",
    "feedback_export_build",
    "feedback_export_fetched",
    "feedback_export_request",
    "feedback_export_write",
    "not_a_reader",
    "project_status_refresh",
    "project_studies_add",
    "project_triage_refresh",
    "reading_entry",
    "reading_heartbeat",
    "reading_lock",
    "reading_reveal",
    "reading_start",
    "reading_submit",
    "reading_update",
    "reference_record",
    "study_arrived",
]
