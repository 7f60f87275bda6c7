"""The DICOM index: Patient > Study > Series > Instance.

Each Instance row points at its original file in the DICOM store (stored once,
addressed by its SOP Instance UID, checked by its SHA-256). The rows hold what
queries and the viewer need without opening files: the QIDO attributes, the
geometry, and where each frame's bytes lie in the file.
"""

from __future__ import annotations

from django.db import models


class Patient(models.Model):
    patient_id = models.CharField(max_length=64, db_index=True)
    issuer = models.CharField(max_length=64, blank=True, default="")
    name = models.CharField(max_length=324, blank=True, default="")
    birth_date = models.CharField(max_length=8, blank=True, default="")
    sex = models.CharField(max_length=16, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["patient_id", "issuer"], name="patient_unique_id_per_issuer"),
        ]

    def __str__(self) -> str:
        return self.patient_id


class Study(models.Model):
    study_uid = models.CharField(max_length=64, unique=True)
    patient = models.ForeignKey(Patient, on_delete=models.PROTECT, related_name="studies")
    study_date = models.DateField(null=True, blank=True, db_index=True)
    study_time = models.CharField(max_length=16, blank=True, default="")
    accession_number = models.CharField(max_length=16, blank=True, default="", db_index=True)
    study_id = models.CharField(max_length=16, blank=True, default="")
    description = models.CharField(max_length=64, blank=True, default="")
    referring_physician = models.CharField(max_length=324, blank=True, default="")
    # Backslash-joined distinct modalities of the study's series (QIDO ModalitiesInStudy).
    modalities = models.CharField(max_length=128, blank=True, default="")
    # The same of the series acquired, not those Overread wrote (an AI job's SEG, Parametric
    # Map and SR, a reader's SEG and SR): what a worklist shows, blind to the AI or not.
    acquired_modalities = models.CharField(max_length=128, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name_plural = "studies"

    def __str__(self) -> str:
        return self.study_uid


class Series(models.Model):
    class Producer(models.TextChoices):
        AI_JOB = "ai", "an AI job's output"
        READING = "reading", "a reader's objects"

    series_uid = models.CharField(max_length=64, unique=True)
    study = models.ForeignKey(Study, on_delete=models.CASCADE, related_name="series")
    modality = models.CharField(max_length=16, blank=True, default="", db_index=True)
    series_number = models.IntegerField(null=True, blank=True)
    description = models.CharField(max_length=64, blank=True, default="")
    body_part = models.CharField(max_length=64, blank=True, default="")
    manufacturer = models.CharField(max_length=64, blank=True, default="")
    frame_of_reference_uid = models.CharField(max_length=64, blank=True, default="")
    # A series Overread wrote itself: which app's object (its primary key in producer_id).
    # Who may see it is that app's question (viewer.selectors.series_scope_register).
    producer_kind = models.CharField(max_length=8, choices=Producer.choices, blank=True, default="")
    producer_id = models.BigIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name_plural = "series"

    def __str__(self) -> str:
        return self.series_uid


class Instance(models.Model):
    sop_instance_uid = models.CharField(max_length=64, unique=True)
    sop_class_uid = models.CharField(max_length=64)
    series = models.ForeignKey(Series, on_delete=models.CASCADE, related_name="instances")
    instance_number = models.IntegerField(null=True, blank=True)
    transfer_syntax_uid = models.CharField(max_length=64)
    rows = models.PositiveIntegerField(null=True, blank=True)
    columns = models.PositiveIntegerField(null=True, blank=True)
    number_of_frames = models.PositiveIntegerField(default=0)  # 0: no pixel data
    pixel_spacing = models.JSONField(null=True, blank=True)  # [row mm, column mm]
    slice_thickness = models.FloatField(null=True, blank=True)
    image_position = models.JSONField(null=True, blank=True)  # ImagePositionPatient, mm
    image_orientation = models.JSONField(null=True, blank=True)  # ImageOrientationPatient
    # Where each frame's bytes lie in the stored file: [[offset, length], ...], so
    # serving a frame is a seek and a read, no parsing.
    frame_offsets = models.JSONField(default=list, blank=True)
    # DICOM JSON of the data set without bulk data, for WADO-RS metadata.
    metadata = models.JSONField(default=dict)
    storage_key = models.CharField(max_length=255, unique=True)
    size_bytes = models.BigIntegerField()
    sha256 = models.CharField(max_length=64)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        indexes = [models.Index(fields=["series", "instance_number"], name="instance_series_order")]

    def __str__(self) -> str:
        return self.sop_instance_uid


class PacsPull(models.Model):
    """One request to copy a study from the PACS into Overread, run by a worker."""

    class Status(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        SUCCEEDED = "succeeded"
        FAILED = "failed"

    study_uid = models.CharField(max_length=64)
    requested_by = models.ForeignKey("auth.User", null=True, on_delete=models.SET_NULL, related_name="+")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    total = models.PositiveIntegerField(default=0)
    stored = models.PositiveIntegerField(default=0)
    duplicates = models.PositiveIntegerField(default=0)
    rejected = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True, default="")
    claimed_by = models.CharField(max_length=64, blank=True, default="")  # the Celery task id running it
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["-created_at"], name="pacspull_recent")]

    def __str__(self) -> str:
        return f"pull {self.study_uid} ({self.status})"

    @property
    def done(self) -> int:
        return self.stored + self.duplicates + self.rejected

    @property
    def finished(self) -> bool:
        return self.status in {self.Status.SUCCEEDED, self.Status.FAILED}
