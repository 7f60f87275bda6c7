"""Reading projects, worklist entries, assignments, readings and the readers' decisions.

A ReadingProject groups readers (members, each with a role) and studies (ProjectStudy, the
worklist rows). A Reading is one reader's read of one study in one project; it moves
unaided -> locked -> ai_revealed -> submitted and carries a version for optimistic
concurrency. A Decision is one reader's verdict on one finding (an AI finding, or one the
reader added) with its full provenance; decisions are append-only: a change is a new row
that supersedes the previous one, and the current decision of a finding is the one nothing
supersedes (on PostgreSQL, triggers refuse UPDATE and DELETE; migration 0002).

A consensus project (kind "consensus") has each study read by several readers blind to each
other; its ConsensusCase holds their agreement and fused masks, and an adjudicator records the
case's ReferenceStandard (append-only like decisions; migration 0003).
"""

from __future__ import annotations

import uuid
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q

# The default override reasons; the codes match inference.derived.codes.OVERRIDE_REASONS.
DEFAULT_OVERRIDE_REASONS: list[dict[str, Any]] = [
    {"code": "false_positive_artefact", "label": "False positive: artefact"},
    {"code": "false_positive_benign", "label": "False positive: benign finding"},
    {"code": "wrong_location", "label": "Wrong location"},
    {"code": "wrong_label", "label": "Wrong label"},
    {"code": "other", "label": "Other", "needs_text": True},
]


def default_override_reasons() -> list[dict[str, Any]]:
    return [dict(reason) for reason in DEFAULT_OVERRIDE_REASONS]


def validate_override_reasons(value: Any) -> None:
    """A list of {"code": slug, "label": text[, "needs_text": bool]} with unique codes."""
    if not isinstance(value, list) or not value:
        raise ValidationError("override reasons must be a non-empty list")
    codes: set[str] = set()
    for reason in value:
        if not isinstance(reason, dict) or set(reason) - {"code", "label", "needs_text"}:
            raise ValidationError(f"each reason is {{code, label[, needs_text]}}, not {reason!r}")
        code, label = reason.get("code"), reason.get("label")
        if not isinstance(code, str) or not code or len(code) > 32 or not code.replace("_", "").isalnum():
            raise ValidationError(f"a reason code is a short slug (letters, digits, _), not {code!r}")
        if not isinstance(label, str) or not label.strip():
            raise ValidationError(f"reason {code!r} needs a label")
        if not isinstance(reason.get("needs_text", False), bool):
            raise ValidationError(f"reason {code!r}: needs_text is true or false")
        if code in codes:
            raise ValidationError(f"reason code {code!r} appears twice")
        if code == "other" and not reason.get("needs_text"):
            raise ValidationError("the 'other' reason must need free text (needs_text: true)")
        codes.add(code)


def default_label_schema() -> dict[str, Any]:
    return {"questions": []}


def validate_label_schema(value: Any) -> None:
    """{"questions": [{"code": slug, "text": text, "choices": [two or more distinct texts]}]}
    with unique codes: the study-level questions every reader of a consensus case answers."""
    if not isinstance(value, dict) or set(value) != {"questions"} or not isinstance(value["questions"], list):
        raise ValidationError('a label schema is {"questions": [...]}')
    codes: set[str] = set()
    for question in value["questions"]:
        if not isinstance(question, dict) or set(question) != {"code", "text", "choices"}:
            raise ValidationError(f"each question is {{code, text, choices}}, not {question!r}")
        code, text, choices = question["code"], question["text"], question["choices"]
        if not isinstance(code, str) or not code or len(code) > 32 or not code.replace("_", "").isalnum():
            raise ValidationError(f"a question code is a short slug (letters, digits, _), not {code!r}")
        if code in codes:
            raise ValidationError(f"question code {code!r} appears twice")
        if not isinstance(text, str) or not text.strip():
            raise ValidationError(f"question {code!r} needs its text")
        if (
            not isinstance(choices, list)
            or len(choices) < 2
            or not all(isinstance(c, str) and c.strip() and len(c) <= 64 for c in choices)
            or len(set(choices)) != len(choices)
        ):
            raise ValidationError(f"question {code!r} needs two or more distinct choices (short texts)")
        codes.add(code)


class MemberRole(models.TextChoices):
    RADIOLOGIST = "radiologist"
    ANNOTATOR = "annotator"
    ADJUDICATOR = "adjudicator"


# Who reads the project's studies (and so takes part in round-robin assignment).
READER_ROLES = (MemberRole.RADIOLOGIST, MemberRole.ANNOTATOR)
MAX_READS_PER_CASE = 50  # more readers than this per case is a typing slip, not a study design


class ReadingProject(models.Model):
    class Mode(models.TextChoices):
        AI_FIRST = "ai-first", "AI first (the reader sees the AI from the start)"
        UNAIDED_FIRST = "unaided-first", "Unaided first (read, lock, then see the AI)"

    class Kind(models.TextChoices):
        SECOND_READING = "second-reading", "Second reading (one reader per study)"
        CONSENSUS = "consensus", "Consensus labelling (N blinded readers per case, then adjudication)"

    name = models.CharField(max_length=100, unique=True)
    reading_mode = models.CharField(max_length=16, choices=Mode.choices, default=Mode.UNAIDED_FIRST)
    override_reasons = models.JSONField(
        default=default_override_reasons, validators=[validate_override_reasons]
    )
    show_ai_to_annotators = models.BooleanField(default=False)
    # Off: the worklist shows the project's readers no AI triage, neither as a badge nor in the
    # order, so that a reader study's unaided reads do not start from the AI's call.
    triage_in_worklist = models.BooleanField(
        "AI triage in the readers' worklist",
        default=True,
        help_text="Off: readers see no AI priority or status in their worklist and their studies "
        "are listed by waiting time alone (for reader studies, where the AI's call on a study "
        "is a cue before the unaided read). Admins still see it.",
    )
    # Members may open every study in the archive, not only the project's own (a department's
    # general reading); the worklist still lists the project's own studies.
    all_studies = models.BooleanField(default=False)
    # New studies join the project as they arrive (and are assigned round-robin).
    auto_enrol = models.BooleanField(default=False)
    turn = models.PositiveIntegerField(default=0, editable=False)  # round-robin counter
    active = models.BooleanField(default=True)
    members = models.ManyToManyField(
        settings.AUTH_USER_MODEL, through="ProjectMember", related_name="reading_projects"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    # Consensus labelling (reviews.services.consensus): each case is read by `reads_per_case`
    # distinct readers, blind to each other, who also answer the label schema's questions;
    # a case whose readers disagree (worst Dice of a matched finding under `min_dice`, a
    # finding not every reader marked, different answers) goes to adjudication.
    kind = models.CharField(max_length=16, choices=Kind.choices, default=Kind.SECOND_READING)
    reads_per_case = models.PositiveSmallIntegerField(
        default=1,
        validators=[MinValueValidator(1), MaxValueValidator(MAX_READS_PER_CASE)],
        help_text=f"Readers per case: 2 or more in a consensus project, at most {MAX_READS_PER_CASE}.",
    )
    label_schema = models.JSONField(
        default=default_label_schema,
        validators=[validate_label_schema],
        blank=True,
        help_text='Study-level questions: {"questions": [{"code", "text", "choices": [...]}]}.',
    )
    due_date = models.DateField(null=True, blank=True)
    min_dice = models.FloatField(
        default=0.7,
        validators=[MinValueValidator(0.0), MaxValueValidator(1.0)],
        help_text="A case whose worst Dice of a matched finding is below this goes to adjudication.",
    )
    adjudicate_all = models.BooleanField(
        default=False, help_text="Every case with all its reads is adjudicated, agreeing or not."
    )

    class Meta:
        ordering = ["name"]
        permissions = [
            ("view_all_studies", "Can see every study, in any project or none"),
            ("export_feedback", "Can export the readers' labelled feedback"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(kind="second-reading", reads_per_case__gte=1)
                | Q(kind="consensus", reads_per_case__gte=2, all_studies=False),
                name="readingproject_consensus_reads",
            ),
            models.CheckConstraint(
                condition=Q(min_dice__gte=0.0, min_dice__lte=1.0), name="readingproject_min_dice"
            ),
        ]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        if not self.label_schema:  # left empty in a form (blank): no questions, not NULL
            self.label_schema = default_label_schema()
        if self.kind == self.Kind.CONSENSUS:
            if self.reads_per_case < 2:
                raise ValidationError(
                    {"reads_per_case": "a consensus project needs 2 or more reads per case"}
                )
            if self.all_studies:
                raise ValidationError({"all_studies": "a consensus project reads its own set of studies"})

    @property
    def is_consensus(self) -> bool:
        return self.kind == self.Kind.CONSENSUS

    @property
    def questions(self) -> list[dict[str, Any]]:
        return list((self.label_schema or {}).get("questions", []))

    @property
    def question_texts(self) -> dict[str, str]:
        """Each question's words by its code: what people are shown instead of the code."""
        return {q["code"]: q.get("text") or q["code"] for q in self.questions}

    def reason(self, code: str) -> dict[str, Any] | None:
        return next((r for r in self.override_reasons if r.get("code") == code), None)


class ProjectMember(models.Model):
    project = models.ForeignKey(ReadingProject, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=16, choices=MemberRole.choices)
    # Round-robin: the reader whose last turn is oldest (0: never) gets the next study.
    last_turn = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["project", "user"], name="projectmember_once_per_project"),
        ]
        indexes = [models.Index(fields=["user", "project"], name="projectmember_user")]

    def __str__(self) -> str:
        return f"{self.user} ({self.role}) in {self.project}"


class ProjectStudy(models.Model):
    """A study in a project: one worklist row. The AI triage and the reading status are kept
    here (reviews.services keep them current) so the worklist sorts and filters on one table."""

    class Triage(models.TextChoices):
        URGENT = "urgent"
        PRIORITY = "priority"
        ROUTINE = "routine"
        NONE = "", "No AI result"

    class Status(models.TextChoices):
        WAITING = "waiting", "Waiting"
        IN_PROGRESS = "in_progress", "In progress"
        READ = "read", "Read"

    # Worklist order: urgent, priority, then everything else by waiting time (a study without
    # an AI result is not pushed down: the AI only raises studies it flags).
    TRIAGE_RANK = {Triage.URGENT: 0, Triage.PRIORITY: 1, Triage.ROUTINE: 2, Triage.NONE: 2}

    project = models.ForeignKey(ReadingProject, on_delete=models.CASCADE, related_name="project_studies")
    study = models.ForeignKey("viewer.Study", on_delete=models.CASCADE, related_name="project_entries")
    added_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    added_at = models.DateTimeField(auto_now_add=True)
    waiting_since = models.DateTimeField()  # when the study arrived in Overread
    ai_triage = models.CharField(max_length=8, choices=Triage.choices, blank=True, default="")
    triage_rank = models.PositiveSmallIntegerField(default=2)
    reading_status = models.CharField(max_length=16, choices=Status.choices, default=Status.WAITING)

    class Meta:
        verbose_name_plural = "project studies"
        constraints = [
            models.UniqueConstraint(fields=["project", "study"], name="projectstudy_once_per_project"),
        ]
        indexes = [
            # The worklist's order, and (trailing) the columns it filters on most: a page is
            # read from the index alone.
            models.Index(
                fields=["project", "triage_rank", "waiting_since", "id", "reading_status", "ai_triage"],
                name="worklist_order",
            ),
            models.Index(
                fields=["triage_rank", "waiting_since", "id", "reading_status", "ai_triage", "project"],
                name="worklist_order_all",
            ),
            models.Index(fields=["study"], name="projectstudy_study"),
        ]

    def __str__(self) -> str:
        return f"study {self.study_id} in {self.project}"


class Assignment(models.Model):
    project = models.ForeignKey(ReadingProject, on_delete=models.CASCADE, related_name="assignments")
    study = models.ForeignKey("viewer.Study", on_delete=models.CASCADE, related_name="assignments")
    reader = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="assignments")
    # None: assigned automatically (round-robin).
    assigned_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["project", "study", "reader"], name="assignment_once_per_reader"),
        ]
        indexes = [models.Index(fields=["study", "project"], name="assignment_study")]

    def __str__(self) -> str:
        return f"{self.study_id} to {self.reader} in {self.project}"


class Reading(models.Model):
    """One reader's read of one study in one project."""

    class Phase(models.TextChoices):
        UNAIDED = "unaided"
        LOCKED = "locked"
        AI_REVEALED = "ai_revealed"
        SUBMITTED = "submitted"

    class Agreement(models.TextChoices):
        AGREE = "agree"
        DISAGREE = "disagree"
        NONE = "", "Not given"

    project = models.ForeignKey(ReadingProject, on_delete=models.PROTECT, related_name="readings")
    study = models.ForeignKey("viewer.Study", on_delete=models.PROTECT, related_name="readings")
    reader = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="readings")
    reader_role = models.CharField(max_length=16, choices=MemberRole.choices)
    reading_mode = models.CharField(max_length=16, choices=ReadingProject.Mode.choices)
    phase = models.CharField(max_length=16, choices=Phase.choices, default=Phase.UNAIDED)
    version = models.PositiveIntegerField(default=1)
    # The images the reader annotates: masks, boxes and slice indices refer to slice k of
    # slice_uids (the AI's order when the AI read this series).
    series = models.ForeignKey("viewer.Series", on_delete=models.PROTECT, related_name="+")
    slice_uids = models.JSONField(default=list)
    rows = models.PositiveIntegerField()
    columns = models.PositiveIntegerField()
    revealed_job = models.ForeignKey(
        "inference.InferenceJob", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    # The reader had already seen this study's AI (revealed in another reading of theirs) when
    # this one started: its unaided read is not blind to the AI, and the data says so.
    ai_seen_before = models.BooleanField(default=False)
    unaided_seconds = models.FloatField(default=0.0)  # active time in phase unaided
    aided_seconds = models.FloatField(default=0.0)  # active time after the lock
    unaided_impression = models.TextField(blank=True, default="")
    final_impression = models.TextField(blank=True, default="")
    triage_agreement = models.CharField(max_length=8, choices=Agreement.choices, blank=True, default="")
    # Consensus projects: the reader's answer to each question of the label schema (code -> choice).
    answers = models.JSONField(default=dict, blank=True)
    uid_root = models.UUIDField(default=uuid.uuid4, editable=False, unique=True)
    seg_sop_uid = models.CharField(max_length=64, blank=True, default="")
    sr_sop_uid = models.CharField(max_length=64, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    locked_at = models.DateTimeField(null=True, blank=True)
    revealed_at = models.DateTimeField(null=True, blank=True)
    submitted_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["project", "study", "reader"], name="reading_once_per_reader"),
            models.CheckConstraint(condition=Q(version__gte=1), name="reading_version_positive"),
        ]
        indexes = [models.Index(fields=["reader", "study"], name="reading_reader_study")]

    def __str__(self) -> str:
        return f"reading {self.pk} of study {self.study_id} by {self.reader} ({self.phase})"

    @property
    def active_seconds(self) -> float:
        return self.unaided_seconds + self.aided_seconds


class AppendOnlyQuerySet(models.QuerySet["Decision"]):
    def update(self, **kwargs: Any) -> int:
        raise ValueError("decisions are append-only: record a new decision that supersedes the old one")

    def delete(self) -> tuple[int, dict[str, int]]:
        raise ValueError("decisions are append-only and are never deleted")


class Decision(models.Model):
    """One reader's verdict on one finding, with provenance. Append-only (module docstring).

    `target` names the finding within the reading: "ai-<index>" for the AI finding of that
    index in the revealed job, "added-<n>" for the n-th finding the reader added. The first
    decision on a target supersedes nothing; each later one supersedes the current one.
    """

    class Kind(models.TextChoices):
        ACCEPTED = "accepted"
        EDITED = "edited"
        OVERRIDDEN = "overridden"
        ADDED = "added"
        WITHDRAWN = "withdrawn"  # an added finding taken back

    class MaskSource(models.TextChoices):
        AI = "ai"  # the AI's mask of the finding, unchanged
        READER = "reader"  # drawn or edited by the reader
        BOX = "box"  # the reader gave a box only: the mask is the filled box
        NONE = "", "No mask"

    reading = models.ForeignKey(Reading, on_delete=models.PROTECT, related_name="decisions")
    target = models.CharField(max_length=16)
    kind = models.CharField(max_length=12, choices=Kind.choices)
    supersedes = models.OneToOneField(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="superseded_by"
    )
    # Who, where, when in the workflow.
    project = models.ForeignKey(ReadingProject, on_delete=models.PROTECT, related_name="+")
    reader = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    reader_role = models.CharField(max_length=16, choices=MemberRole.choices)
    reading_mode = models.CharField(max_length=16, choices=ReadingProject.Mode.choices)
    phase = models.CharField(max_length=16, choices=Reading.Phase.choices)
    # What the AI said (empty for a finding the reader added).
    inference_job = models.ForeignKey(
        "inference.InferenceJob", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    model_version = models.ForeignKey(
        "inference.ModelVersion", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    input_hash = models.CharField(max_length=64, blank=True, default="")
    ai_finding_index = models.PositiveIntegerField(null=True, blank=True)
    ai_label = models.CharField(max_length=64, blank=True, default="")
    ai_max_probability = models.FloatField(null=True, blank=True)
    ai_bbox = models.JSONField(null=True, blank=True)  # [[z0, z1], [y0, y1], [x0, x1]], half-open
    # The AI's mask of the finding: voxels == ai_finding_index in the job's "mask" array output.
    # What the reader decided.
    final_label = models.CharField(max_length=64, blank=True, default="")
    final_bbox = models.JSONField(null=True, blank=True)
    mask_source = models.CharField(max_length=8, choices=MaskSource.choices, blank=True, default="")
    mask_key = models.CharField(max_length=255, blank=True, default="")  # npz in default_storage
    mask_voxels = models.PositiveIntegerField(default=0)
    dice = models.FloatField(null=True, blank=True)  # AI mask vs final mask
    reason_code = models.CharField(max_length=32, blank=True, default="")
    reason_text = models.TextField(blank=True, default="")
    # 1 (unsure) to 5 (certain) when the reader gave one for this decision; null when not given.
    confidence = models.PositiveSmallIntegerField(
        null=True, blank=True, validators=[MinValueValidator(1), MaxValueValidator(5)]
    )
    time_spent_s = models.FloatField(null=True, blank=True)  # as the client reports it, per finding
    reading_active_s = models.FloatField(default=0.0)  # the reading's active time at this decision
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    objects = AppendOnlyQuerySet.as_manager()

    class Meta:
        constraints = [
            # With `supersedes` unique, each target's decisions form one chain: one current row.
            models.UniqueConstraint(
                fields=["reading", "target"],
                condition=Q(supersedes__isnull=True),
                name="decision_one_first_per_target",
            ),
            models.CheckConstraint(
                condition=Q(confidence__isnull=True) | Q(confidence__gte=1, confidence__lte=5),
                name="decision_confidence",
            ),
            models.CheckConstraint(
                condition=Q(kind__in=["accepted", "edited", "overridden", "added", "withdrawn"]),
                name="decision_kind_valid",
            ),
            models.CheckConstraint(
                condition=Q(dice__isnull=True) | Q(dice__gte=0, dice__lte=1), name="decision_dice"
            ),
        ]
        indexes = [models.Index(fields=["reading", "target"], name="decision_reading_target")]

    def __str__(self) -> str:
        return f"{self.kind} {self.target} in reading {self.reading_id}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        if self.pk is not None and not kwargs.get("force_insert"):
            raise ValueError("decisions are append-only: record a new decision that supersedes this one")
        super().save(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> Any:
        raise ValueError("decisions are append-only and are never deleted")


class FeedbackExport(models.Model):
    """A feedback export prepared in the background (a zip of the export folder), with progress."""

    class Status(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        DONE = "done"
        FAILED = "failed"

    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    filters = models.JSONField(default=dict)  # reviews.selectors.FeedbackFilter.as_params()
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.QUEUED)
    total = models.PositiveIntegerField(null=True, blank=True)
    written = models.PositiveIntegerField(default=0)
    file_name = models.CharField(max_length=255, blank=True, default="")  # key in default storage
    error = models.TextField(blank=True, default="")
    claimed_by = models.CharField(max_length=64, blank=True, default="")  # the Celery task id running it
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        default_permissions = ("view",)

    def __str__(self) -> str:
        return f"feedback export {self.pk} ({self.status})"

    @property
    def finished(self) -> bool:
        return self.status in {self.Status.DONE, self.Status.FAILED}


class ConsensusCase(models.Model):
    """A study of a consensus project (one per worklist entry): how many of its reads are in, how
    far they agree, the readers' masks fused, and where it stands. Computed again (replacing
    what was there) whenever a read arrives once the case has all of them
    (reviews.services.consensus)."""

    class Status(models.TextChoices):
        COLLECTING = "collecting", "Collecting reads"
        AGREED = "agreed", "Readers agree"
        ADJUDICATION = "adjudication", "Needs adjudication"
        ADJUDICATED = "adjudicated", "Adjudicated"

    entry = models.OneToOneField(ProjectStudy, on_delete=models.CASCADE, related_name="consensus_case")
    project = models.ForeignKey(ReadingProject, on_delete=models.CASCADE, related_name="consensus_cases")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.COLLECTING)
    reads_done = models.PositiveSmallIntegerField(default=0)  # submitted readings
    # Per finding group: who marked it, pairwise Dice and HD95 (mm), who missed it; per
    # question: the answers and whether they agree (reviews.services.consensus.cases).
    agreement = models.JSONField(default=dict, blank=True)
    # The worst pairwise Dice over the case's findings, a miss counting 0.0 (null: nobody
    # marked anything). The adjudication queue's order: lowest first.
    worst_dice = models.FloatField(null=True, blank=True)
    computed_from = models.JSONField(default=list, blank=True)  # ids of the readings it was computed on
    computed_at = models.DateTimeField(null=True, blank=True)
    majority_key = models.CharField(max_length=255, blank=True, default="")  # npz in default_storage
    staple_key = models.CharField(max_length=255, blank=True, default="")
    staple_readers = models.JSONField(
        default=list, blank=True
    )  # [{reading, reader, sensitivity, specificity}]
    error = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        indexes = [models.Index(fields=["project", "status", "worst_dice"], name="consensuscase_queue")]
        constraints = [
            models.CheckConstraint(
                condition=Q(status__in=["collecting", "agreed", "adjudication", "adjudicated"]),
                name="consensuscase_status_valid",
            ),
        ]

    def __str__(self) -> str:
        return f"case {self.pk} ({self.status}) in {self.project_id}"

    def status_after_compute(self, *, agree: bool) -> str:
        """The status once the reads are compared: an adjudicated case stays adjudicated."""
        if self.status == self.Status.ADJUDICATED:
            return self.status
        return self.Status.AGREED if agree else self.Status.ADJUDICATION


class ReferenceQuerySet(models.QuerySet["ReferenceStandard"]):
    def update(self, **kwargs: Any) -> int:
        raise ValueError("reference standards are append-only: record a new version")

    def delete(self) -> tuple[int, dict[str, int]]:
        raise ValueError("reference standards are append-only and are never deleted")


class ReferenceStandard(models.Model):
    """A case's reference standard as an adjudicator decided it, with provenance. Append-only
    like Decision: a new version supersedes the current one (PostgreSQL refuses UPDATE and
    DELETE; migration 0003). The current one is the one nothing supersedes.

    `source` is "reading:<id>" (that read as it was), "majority" or "staple" (the fused mask),
    or "edited" (a mask the adjudicator drew); `readings` are the reads the adjudicator had
    before them and `fusion` the fused mask used ("" for none)."""

    class Fusion(models.TextChoices):
        MAJORITY = "majority"
        STAPLE = "staple"
        NONE = "", "None"

    case = models.ForeignKey(ConsensusCase, on_delete=models.PROTECT, related_name="references")
    version = models.PositiveIntegerField()
    supersedes = models.OneToOneField(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="superseded_by"
    )
    adjudicator = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    source = models.CharField(max_length=32)
    fusion = models.CharField(max_length=16, choices=Fusion.choices, blank=True, default="")
    readings = models.JSONField(default=list)
    answers = models.JSONField(default=dict, blank=True)
    findings = models.JSONField(default=list, blank=True)  # [{label, bbox, voxels}] of the mask's components
    mask_key = models.CharField(max_length=255, blank=True, default="")
    mask_voxels = models.PositiveIntegerField(default=0)
    # Each read against this reference: [{reading, reader, dice, answers_agree}].
    reader_agreement = models.JSONField(default=list, blank=True)
    rationale = models.TextField()
    created_at = models.DateTimeField(auto_now_add=True)

    objects = ReferenceQuerySet.as_manager()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["case", "version"], name="reference_version_once"),
            models.UniqueConstraint(
                fields=["case"], condition=Q(supersedes__isnull=True), name="reference_one_first_per_case"
            ),
            models.CheckConstraint(condition=Q(version__gte=1), name="reference_version_positive"),
            models.CheckConstraint(condition=~Q(rationale=""), name="reference_rationale_given"),
        ]

    def __str__(self) -> str:
        return f"reference v{self.version} of case {self.case_id} ({self.source})"

    def save(self, *args: Any, **kwargs: Any) -> None:
        if self.pk is not None and not kwargs.get("force_insert"):
            raise ValueError("reference standards are append-only: record a new version")
        super().save(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> Any:
        raise ValueError("reference standards are append-only and are never deleted")
