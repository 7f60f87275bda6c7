"""The model registry, inference jobs and what a job produced.

A ModelVersion is one set of weights with its specification and model card; a
job runs one model version over one series. Everything a job produced (the
findings rows, the arrays the viewer overlays, the derived DICOM objects) is
keyed by the job, so running the job again replaces its outputs and never
duplicates them.
"""

from __future__ import annotations

import uuid

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator
from django.db import models
from django.db.models import Q

SEMVER = RegexValidator(
    r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?$",
    "a semantic version such as 1.0.0 or 2.1.0-rc.1",
)


class ModelVersion(models.Model):
    class Status(models.TextChoices):
        ACTIVE = "active"  # runs on matching series; readers see its outputs
        SHADOW = "shadow"  # runs on matching series; outputs kept for monitoring, never shown
        RETIRED = "retired"  # runs on nothing new; past outputs stay

    class Format(models.TextChoices):
        TORCHSCRIPT = "torchscript"
        STATE_DICT = "state_dict"

    class Task(models.TextChoices):
        SEGMENTATION_CLASSIFICATION = (
            "segmentation+classification",
            "Segmentation + study-level classification",
        )

    name = models.CharField(max_length=64, validators=[RegexValidator(r"^[a-z0-9][a-z0-9._-]*$")])
    version = models.CharField(max_length=32, validators=[SEMVER])
    task = models.CharField(max_length=32, choices=Task.choices, default=Task.SEGMENTATION_CLASSIFICATION)
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.SHADOW, db_index=True)
    format = models.CharField(max_length=16, choices=Format.choices)
    weights_key = models.CharField(max_length=255)  # where the weights lie in the media storage
    weights_sha256 = models.CharField(max_length=64, validators=[RegexValidator(r"^[0-9a-f]{64}$")])
    entry_point = models.CharField(max_length=200, blank=True, default="")  # "package.module:callable"
    entry_kwargs = models.JSONField(default=dict, blank=True)
    input_spec = models.JSONField(default=dict)  # inference.engine.types.InputSpec.to_dict()
    labels = models.JSONField(default=list)  # one label per segmentation output channel
    threshold = models.FloatField(validators=[MinValueValidator(0.0), MaxValueValidator(1.0)])
    study_threshold = models.FloatField(validators=[MinValueValidator(0.0), MaxValueValidator(1.0)])
    # Study score at or above which a study is "urgent" / "priority" on the worklist.
    triage_urgent = models.FloatField(validators=[MinValueValidator(0.0), MaxValueValidator(1.0)])
    triage_priority = models.FloatField(validators=[MinValueValidator(0.0), MaxValueValidator(1.0)])
    min_finding_mm3 = models.FloatField(default=0.0)
    batch_size = models.PositiveIntegerField(default=8)
    saliency_layer = models.CharField(max_length=120, blank=True, default="")
    study_saliency_layer = models.CharField(max_length=120, blank=True, default="")
    hu_window = models.JSONField(default=list)  # [low, high]: HU clipped to this and scaled to -1..1
    model_card = models.JSONField(default=dict)
    demonstration = models.BooleanField(default=False)  # trained on synthetic data, not a clinical device
    registered_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["name", "version"], name="modelversion_unique_name_version"),
            models.CheckConstraint(
                condition=Q(triage_priority__lte=models.F("triage_urgent")),
                name="modelversion_triage_ordered",
            ),
        ]
        ordering = ["name", "-created_at"]

    def __str__(self) -> str:
        return f"{self.name} {self.version}"

    @property
    def label(self) -> str:
        return f"{self.name} {self.version}" + (" (demonstration model)" if self.demonstration else "")


class InferenceJob(models.Model):
    class Status(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        SUCCEEDED = "succeeded"
        FAILED = "failed"
        CANCELLED = "cancelled"

    class Trigger(models.TextChoices):
        AUTO = "auto"  # a newly completed series matched the model
        MANUAL = "manual"  # run_inference, or a reader asked
        RERUN = "rerun"  # again, after an earlier job

    class Triage(models.TextChoices):
        URGENT = "urgent"
        PRIORITY = "priority"
        ROUTINE = "routine"

    FINISHED = (Status.SUCCEEDED, Status.FAILED, Status.CANCELLED)

    model_version = models.ForeignKey(ModelVersion, on_delete=models.PROTECT, related_name="jobs")
    series = models.ForeignKey("viewer.Series", on_delete=models.CASCADE, related_name="inference_jobs")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED, db_index=True)
    trigger = models.CharField(max_length=8, choices=Trigger.choices, default=Trigger.AUTO)
    progress = models.PositiveSmallIntegerField(default=0)  # percent
    stage = models.CharField(max_length=32, blank=True, default="")
    error = models.TextField(blank=True, default="")
    timings = models.JSONField(default=dict, blank=True)  # stage -> seconds
    # SHA-256 over the sorted SHA-256s of the input instances: which bytes the model read.
    input_hash = models.CharField(max_length=64)
    instance_count = models.PositiveIntegerField(default=0)
    study_score = models.FloatField(null=True, blank=True)
    triage = models.CharField(max_length=8, choices=Triage.choices, blank=True, default="")
    device = models.CharField(max_length=32, blank=True, default="")
    # The viewer overlay's geometry: slice k of the arrays is SOP instance slice_uids[k].
    slice_uids = models.JSONField(default=list, blank=True)
    rows = models.PositiveIntegerField(default=0)
    columns = models.PositiveIntegerField(default=0)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    rerun_of = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="reruns"
    )
    claimed_by = models.CharField(max_length=64, blank=True, default="")  # the Celery task id running it
    # The root of the job's output UIDs (2.25 UUID-derived): a redelivered run writes the same UIDs.
    uid_root = models.UUIDField(default=uuid.uuid4, editable=False, unique=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            # One automatic job per model and input: a series reported complete twice runs once.
            models.UniqueConstraint(
                fields=["model_version", "series", "input_hash"],
                condition=Q(trigger="auto"),
                name="inferencejob_one_auto_run_per_input",
            ),
            models.CheckConstraint(condition=Q(progress__lte=100), name="inferencejob_progress_percent"),
        ]
        indexes = [models.Index(fields=["series", "-created_at"], name="inferencejob_series_recent")]
        permissions = [("view_shadow_output", "Can see the outputs of shadow models")]

    def __str__(self) -> str:
        return f"job {self.pk} {self.model_version} ({self.status})"

    @property
    def finished(self) -> bool:
        return self.status in self.FINISHED

    @property
    def run_seconds(self) -> float | None:
        """Wall time of the last attempt, claim to finish; None before it finished."""
        if self.started_at is None or self.finished_at is None:
            return None
        return (self.finished_at - self.started_at).total_seconds()

    def stage_timings(self) -> list[tuple[str, float]]:
        """(stage, seconds) in the order the stages run; stages not known here come last, by name.
        (`timings` itself may come back in another order: PostgreSQL's jsonb sorts its keys.)"""
        rank = {stage: k for k, stage in enumerate(STAGE_WORDS)}
        return sorted(self.timings.items(), key=lambda item: (rank.get(item[0], len(rank)), item[0]))

    @property
    def timings_text(self) -> str:
        """The stages' seconds in words, in the order they ran: 'read and decode 0.9 s, ...'."""
        return ", ".join(
            f"{STAGE_WORDS.get(stage, stage)} {seconds:.1f} s" for stage, seconds in self.stage_timings()
        )


# A job's stages (InferenceJob.timings), in the order they run, and what its page calls them.
STAGE_WORDS = {
    "read_decode": "read and decode",
    "load": "load the model",
    "preprocess": "preprocess",
    "forward": "forward",
    "postprocess": "findings",
    "saliency": "saliency",
    "outputs": "DICOM outputs",
}


class Finding(models.Model):
    """One connected component of a job's mask: what the reader accepts, edits or overrides."""

    job = models.ForeignKey(InferenceJob, on_delete=models.CASCADE, related_name="findings")
    index = models.PositiveIntegerField()  # 1-based; the value of its voxels in the job's mask
    label = models.CharField(max_length=64)
    bbox = models.JSONField()  # [[z0, z1], [y0, y1], [x0, x1]], half-open voxel ranges
    centroid_voxel = models.JSONField()  # [z, y, x]
    centroid_mm = models.JSONField()  # patient coordinates [x, y, z]
    volume_mm3 = models.FloatField()
    voxel_count = models.PositiveIntegerField()
    max_probability = models.FloatField()
    mean_probability = models.FloatField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["job", "index"], name="finding_unique_index_per_job")]
        ordering = ["job", "index"]

    def __str__(self) -> str:
        return f"{self.label} #{self.index} of job {self.job_id}"


class JobOutput(models.Model):
    """One artefact of a job: an array file for the viewer or a derived DICOM object."""

    class Kind(models.TextChoices):
        HEATMAP = "heatmap"  # uint8 (z, rows, columns), 0..255 for saliency 0..1 (inference.arrays)
        MASK = "mask"  # uint8 (z, rows, columns), k for finding k (inference.arrays)
        FINDING_HEATMAPS = "finding_heatmaps"  # npz: one uint8 array per finding over its bbox
        SEG = "seg"
        PARAMETRIC_MAP = "pmap"
        SR = "sr"

    DICOM_KINDS = (Kind.SEG, Kind.PARAMETRIC_MAP, Kind.SR)

    job = models.ForeignKey(InferenceJob, on_delete=models.CASCADE, related_name="outputs")
    kind = models.CharField(max_length=16, choices=Kind.choices)
    storage_key = models.CharField(max_length=255)
    sop_instance_uid = models.CharField(max_length=64, blank=True, default="")  # DICOM kinds
    # Whether the object is in the DICOM store's index (and so over DICOMweb): shadow
    # models' objects are kept beside the job only.
    indexed = models.BooleanField(default=False)
    size_bytes = models.BigIntegerField(default=0)
    # Arrays: where each slice's deflate data starts in the stored gzip file (inference.arrays);
    # empty for a raw array.
    slice_offsets = models.JSONField(default=list, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["job", "kind"], name="joboutput_one_per_kind")]

    def __str__(self) -> str:
        return f"{self.kind} of job {self.job_id}"


class PendingSeries(models.Model):
    """A series that received instances lately: it is read once nothing has arrived until due_at."""

    series = models.OneToOneField("viewer.Series", on_delete=models.CASCADE, related_name="+")
    due_at = models.DateTimeField()

    class Meta:
        verbose_name_plural = "pending series"

    def __str__(self) -> str:
        return f"series {self.series_id} due {self.due_at:%H:%M:%S}"
