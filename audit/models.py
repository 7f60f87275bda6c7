"""The audit trail: one append-only, hash-chained row per event; and audit exports.

AuditEvent rows are written only by `audit.services.audit_record` and never
changed: on PostgreSQL, triggers refuse UPDATE, DELETE and TRUNCATE (migration
0002). Users are referenced by id and name, not by foreign key, so the record
outlives the account and deleting a user can never cascade into the trail.
"""

from __future__ import annotations

import json
from typing import Any

from django.conf import settings
from django.db import models
from django.utils import timezone

from audit.codes import Action, Outcome, event_meaning, event_type_meaning


class AuditEvent(models.Model):
    # Assigned by audit_record under the chain lock: consecutive, in chain order.
    id = models.BigIntegerField(primary_key=True)
    occurred_at = models.DateTimeField(db_index=True)
    event_id = models.CharField(max_length=16)  # CID 400
    event_type = models.CharField(max_length=16, blank=True, default="")  # CID 401/403
    action = models.CharField(max_length=1, choices=Action.CHOICES)
    outcome = models.PositiveSmallIntegerField(choices=Outcome.CHOICES)
    outcome_reason = models.CharField(max_length=255, blank=True, default="")
    user_id = models.BigIntegerField(null=True, blank=True)
    username = models.CharField(max_length=150, blank=True, default="")
    role = models.CharField(max_length=64, blank=True, default="")
    source_ip = models.CharField(max_length=45, blank=True, default="")
    user_agent = models.CharField(max_length=256, blank=True, default="")
    session_hash = models.CharField(max_length=64, blank=True, default="")  # SHA-256 of the session key
    request_id = models.CharField(max_length=64, blank=True, default="")
    patient_id = models.CharField(max_length=64, blank=True, default="")
    accession = models.CharField(max_length=64, blank=True, default="")
    study_uid = models.CharField(max_length=64, blank=True, default="")
    series_uid = models.CharField(max_length=64, blank=True, default="")
    sop_uid = models.CharField(max_length=64, blank=True, default="")
    model_version = models.CharField(max_length=128, blank=True, default="")
    inference_job_id = models.BigIntegerField(null=True, blank=True)
    # Canonical JSON text (audit.canonical.detail_text), hashed exactly as stored.
    detail = models.TextField(default="{}")
    hash_version = models.PositiveSmallIntegerField(default=1)
    prev_hash = models.CharField(max_length=64)
    hash = models.CharField(max_length=64, unique=True)

    class Meta:
        ordering = ["-id"]
        default_permissions = ("view",)
        permissions = [("export_auditevent", "Can export audit events")]
        # The review page filters on these and pages by id (keyset), newest first.
        indexes = [
            models.Index(fields=["username", "id"], name="audit_user_id_idx"),
            models.Index(fields=["patient_id", "id"], name="audit_patient_id_idx"),
            models.Index(fields=["study_uid", "id"], name="audit_study_id_idx"),
            models.Index(fields=["event_id", "id"], name="audit_event_id_idx"),
        ]
        constraints = [
            models.CheckConstraint(condition=models.Q(outcome__in=[0, 4, 8, 12]), name="audit_outcome_valid"),
            models.CheckConstraint(
                condition=models.Q(action__in=["C", "R", "U", "D", "E"]), name="audit_action_valid"
            ),
        ]

    def __str__(self) -> str:
        return f"#{self.id} {self.event_meaning} {self.username}"

    @property
    def event_meaning(self) -> str:
        return event_meaning(self.event_id)

    @property
    def event_type_meaning(self) -> str:
        return event_type_meaning(self.event_type)

    @property
    def detail_data(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(self.detail)
        return data


class AuditExport(models.Model):
    """An export prepared in the background (large ranges), with its progress."""

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"

    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    export_format = models.CharField(max_length=8)
    filters = models.JSONField(default=dict)  # AuditFilter.as_params()
    up_to_id = models.BigIntegerField()  # the newest event included: the export is as of its request
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.QUEUED)
    total = models.BigIntegerField(null=True, blank=True)
    written = models.BigIntegerField(default=0)
    file_name = models.CharField(max_length=255, blank=True, default="")  # key in default storage
    error = models.TextField(blank=True, default="")
    claimed_by = models.CharField(max_length=64, blank=True, default="")  # the Celery task id running it
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        default_permissions = ()
        constraints = [
            models.CheckConstraint(
                condition=models.Q(status__in=["queued", "running", "done", "failed"]),
                name="audit_export_status_valid",
            ),
        ]

    def __str__(self) -> str:
        return f"audit export {self.pk} ({self.export_format}, {self.status})"

    @property
    def finished(self) -> bool:
        return self.status in {self.Status.DONE, self.Status.FAILED}

    def finish(self, *, file_name: str = "", error: str = "") -> None:
        """The one transition out of RUNNING: done with a file, or failed with a message."""
        self.status = self.Status.FAILED if error else self.Status.DONE
        self.file_name = file_name
        self.error = error
        self.finished_at = timezone.now()
        self.save(update_fields=["status", "file_name", "error", "finished_at"])
