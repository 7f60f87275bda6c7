"""Consensus projects: assignment of N blinded readers per case, each case's agreement and
fused masks, and the adjudicator's reference standard (docs/consensus.md)."""

from reviews.services.consensus.answers import answers_check
from reviews.services.consensus.assignment import (
    consensus_assign,
    consensus_reassign,
    consensus_reassign_inactive,
)
from reviews.services.consensus.cases import (
    consensus_case_compute,
    consensus_case_for,
    consensus_cases_open,
    consensus_reading_submitted,
)
from reviews.services.consensus.references import StaleReference, reference_current, reference_record

__all__ = [
    "StaleReference",
    "answers_check",
    "consensus_assign",
    "consensus_case_compute",
    "consensus_case_for",
    "consensus_cases_open",
    "consensus_reading_submitted",
    "consensus_reassign",
    "consensus_reassign_inactive",
    "reference_current",
    "reference_record",
]
