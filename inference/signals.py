"""What the inference app tells others, without knowing who listens.

Apps that act on AI results (reviews: the worklist's triage order) connect to these
signals in their AppConfig.
"""

from __future__ import annotations

from django.dispatch import Signal

# Sent after the transaction that finished a job (succeeded, failed or cancelled) commits,
# with keyword arguments job_pk, study_pk and status.
job_finished = Signal()
