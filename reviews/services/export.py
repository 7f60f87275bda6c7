"""The labelled feedback as a training-ready folder, and the same prepared in the background.

The folder holds:
- manifest.jsonl: one line per current decision of a submitted reading (withdrawn ones left
  out unless asked for), with its full provenance (MANIFEST_FIELDS);
- masks/decision-<id>.nii.gz: the decision's final mask as NIfTI (uint8 0/1, indexed
  [column, row, slice], RAS+ affine from the series geometry), for each decision with voxels;
- seg/reading-<id>.dcm: the reading's reader SEG as stored at submission; the manifest's
  `segment_number` is the decision's segment in it.

With `reference` (consensus projects) it holds the reference standards instead: one manifest
line per adjudicated case's current reference with its provenance
(reviews.services.consensus.export.REFERENCE_FIELDS) and masks/reference-<id>.nii.gz, its
mask (written for every reference, all zeros when it marks nothing: a negative case).

Every export is audited as 110106 Export: the command's when it writes the folder, the
background export's when its file is fetched.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import secrets
import shutil
import tempfile
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
from django.core.files import File
from django.core.files.storage import default_storage
from django.db import transaction
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime

from audit.codes import Action, EventID
from audit.services import audit_record
from config.inputs import DATE_RANGE_MESSAGE, in_date_range
from config.jobs import job_claim, job_pending
from inference.models import ModelVersion
from reviews.masks import Geometry, Mask, series_geometry
from reviews.models import Decision, FeedbackExport, Reading, ReadingProject, ReferenceStandard
from reviews.reader_dicom import decision_mask, ordered_decisions
from reviews.selectors import decisions_current, project_named
from reviews.services.consensus.export import reference_line, reference_mask, references_current
from viewer.models import Instance
from viewer.store import store_open

logger = logging.getLogger(__name__)

MANIFEST_FIELDS = (
    "decision_id",
    "supersedes",
    "created_at",
    "reading_id",
    "project",
    "project_id",
    "reading_mode",
    "phase",
    "ai_seen_before",
    "reader",
    "reader_role",
    "study_uid",
    "series_uid",
    "slice_uids",
    "model_name",
    "model_version",
    "inference_job",
    "input_hash",
    "ai_finding_index",
    "ai_label",
    "ai_max_probability",
    "ai_bbox",
    "ai_mask",
    "decision",
    "final_label",
    "final_bbox",
    "mask_source",
    "mask_voxels",
    "dice",
    "reason_code",
    "reason_text",
    "confidence",
    "time_spent_s",
    "reading_active_s",
    "triage_agreement",
    "mask_nifti",
    "seg",
    "segment_number",
)


class FilterError(ValueError):
    """A filter that cannot be used; `field` names it."""

    def __init__(self, message: str, *, field: str) -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class FeedbackFilter:
    project: str = ""  # a project's name or id
    model: str = ""  # a model's name, or name:version
    since: dt.datetime | None = None  # decisions made at or after
    until: dt.datetime | None = None  # decisions made before
    decision: str = ""  # accepted, edited, overridden, added, withdrawn
    reference: bool = False  # the reference standards of consensus cases instead of decisions

    def apply(self, decisions: QuerySet[Decision]) -> QuerySet[Decision]:
        if self.project:
            decisions = decisions.filter(project_named(self.project))
        if self.model:
            name, _, version = self.model.partition(":")
            decisions = decisions.filter(model_version__name=name)
            if version:
                decisions = decisions.filter(model_version__version=version)
        if self.since:
            decisions = decisions.filter(created_at__gte=self.since)
        if self.until:
            decisions = decisions.filter(created_at__lt=self.until)
        if self.decision:
            decisions = decisions.filter(kind=self.decision)
        else:
            decisions = decisions.exclude(kind=Decision.Kind.WITHDRAWN)
        return decisions

    def check_names(self) -> None:
        """Raises FilterError when the project or model named matches none: such an export
        would only come out empty."""
        if self.project and not ReadingProject.objects.filter(project_named(self.project, "")).exists():
            raise FilterError(f"no project has the name or id {self.project[:80]!r}", field="project")
        if self.model:
            name, _, version = self.model.partition(":")
            versions = ModelVersion.objects.filter(name=name)
            if not (versions.filter(version=version) if version else versions).exists():
                raise FilterError(
                    f"no model {self.model[:80]!r} is registered (name, or name:version)", field="model"
                )

    def as_params(self) -> dict[str, str]:
        params = {
            "project": self.project,
            "model": self.model,
            "since": self.since.isoformat() if self.since else "",
            "until": self.until.isoformat() if self.until else "",
            "decision": self.decision,
            "reference": "1" if self.reference else "",
        }
        return {key: value for key, value in params.items() if value}

    @classmethod
    def from_params(cls, params: dict[str, str]) -> FeedbackFilter:
        """From as_params() (or the command's options): dates may be YYYY-MM-DD or ISO 8601."""
        decision = params.get("decision", "")
        if decision and decision not in Decision.Kind.values:
            raise FilterError(f"decision must be one of {', '.join(Decision.Kind.values)}", field="decision")
        reference = params.get("reference", "") in (True, "1", "true", "True")
        if reference and (decision or params.get("model")):
            raise FilterError(
                "a reference export is filtered by project, since and until only", field="reference"
            )
        since, until = _moment(params.get("since", ""), "since"), _moment(params.get("until", ""), "until")
        if since is not None and until is not None and until <= since:
            raise FilterError("until must be after since", field="until")
        return cls(
            project=params.get("project", ""),
            model=params.get("model", ""),
            since=since,
            until=until,
            decision=decision,
            reference=reference,
        )


def _moment(value: str, name: str) -> dt.datetime | None:
    if not value:
        return None
    try:  # both return None for what is not shaped like a date, and raise for 2024-02-30
        moment = parse_datetime(value)
        day = parse_date(value) if moment is None else None
    except ValueError as exc:  # a day, an hour or a time zone offset out of its range
        why = "its time zone offset is not between -24:00 and +24:00" if "timedelta" in str(exc) else exc
        raise FilterError(f"{name} is not a date: {why}", field=name) from None
    if day is not None:
        moment = dt.datetime.combine(day, dt.time())
    if moment is None:
        raise FilterError(f"{name} must be a date (YYYY-MM-DD) or an ISO 8601 date and time", field=name)
    if not in_date_range(moment):
        raise FilterError(f"{name}: {DATE_RANGE_MESSAGE}", field=name)
    if timezone.is_naive(moment):
        moment = timezone.make_aware(moment, dt.UTC)
    return moment


def feedback_decisions(*, feedback_filter: FeedbackFilter) -> QuerySet[Decision]:
    """The current decisions of submitted readings that match, oldest first."""
    decisions = Decision.objects.filter(
        superseded_by__isnull=True, reading__phase=Reading.Phase.SUBMITTED
    ).select_related(
        "reading__study", "reading__series", "project", "reader", "model_version", "inference_job"
    )
    return feedback_filter.apply(decisions).order_by("pk")


def feedback_export_write(
    *,
    folder: Path,
    feedback_filter: FeedbackFilter,
    user: Any = None,
    username: str = "",
    request: HttpRequest | None = None,
    progress: Callable[[int], None] | None = None,
) -> int:
    """Writes the export folder (see the module docstring); returns how many decisions (or
    reference standards) it holds. Records 110106 Export when `user`, `username` or `request`
    says who exported it."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "masks").mkdir(exist_ok=True)
    if not feedback_filter.reference:
        (folder / "seg").mkdir(exist_ok=True)
    count = 0
    lines = (
        _reference_lines(folder, _references(feedback_filter))
        if feedback_filter.reference
        else _lines(folder, feedback_decisions(feedback_filter=feedback_filter))
    )
    with (folder / "manifest.jsonl").open("w", encoding="utf-8") as manifest:
        for line in lines:
            manifest.write(json.dumps(line, ensure_ascii=False, sort_keys=False) + "\n")
            count += 1
            if progress is not None:
                progress(count)
    if user is not None or username or request is not None:
        audit_record(
            event=EventID.EXPORT,
            action=Action.READ,
            request=request,
            user=user,
            username=username,
            detail={
                "what": _what(feedback_filter),
                "filters": feedback_filter.as_params(),
                "references" if feedback_filter.reference else "decisions": count,
            },
        )
    return count


def _what(feedback_filter: FeedbackFilter) -> str:
    return "reference standards" if feedback_filter.reference else "reader feedback"


def _references(feedback_filter: FeedbackFilter) -> QuerySet[ReferenceStandard]:
    f = feedback_filter
    return references_current(project=f.project, since=f.since, until=f.until)


def _reference_lines(folder: Path, references: QuerySet[ReferenceStandard]) -> Iterator[dict[str, Any]]:
    for reference in references.iterator(chunk_size=200):
        mask, geometry, reading = reference_mask(reference)
        nifti = f"masks/reference-{reference.pk}.nii.gz"
        _write_nifti(folder / nifti, mask, geometry)
        yield reference_line(reference, reading=reading, nifti=nifti)


class _Readings:
    """What each reading contributes once: its geometry, segment numbers and SEG file."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.geometry: dict[int, Geometry] = {}
        self.segments: dict[int, dict[int, int]] = {}
        self.seg_path: dict[int, str] = {}

    def load(self, reading: Reading) -> None:
        if reading.pk in self.geometry:
            return
        self.geometry[reading.pk] = series_geometry(reading.series, slice_uids=reading.slice_uids)
        ordered = ordered_decisions(list(decisions_current(reading=reading)))
        self.segments[reading.pk] = {d.pk: number for number, d in enumerate(ordered, start=1)}
        self.seg_path[reading.pk] = self._copy_seg(reading)

    def _copy_seg(self, reading: Reading) -> str:
        key = (
            Instance.objects.filter(sop_instance_uid=reading.seg_sop_uid)
            .values_list("storage_key", flat=True)
            .first()
            if reading.seg_sop_uid
            else None
        )
        if key is None:
            return ""
        relative = f"seg/reading-{reading.pk}.dcm"
        with store_open(key) as source, (self.folder / relative).open("wb") as target:
            shutil.copyfileobj(source, target)
        return relative


def _lines(folder: Path, decisions: QuerySet[Decision]) -> Iterator[dict[str, Any]]:
    readings = _Readings(folder)
    for decision in decisions.iterator(chunk_size=500):
        reading = decision.reading
        readings.load(reading)
        geometry = readings.geometry[reading.pk]
        mask = decision_mask(decision, reading)
        nifti = ""
        if mask:
            nifti = f"masks/decision-{decision.pk}.nii.gz"
            _write_nifti(folder / nifti, mask, geometry)
        yield _line(
            decision, reading, nifti=nifti, seg=readings.seg_path[reading.pk], segments=readings.segments
        )


def _line(
    decision: Decision, reading: Reading, *, nifti: str, seg: str, segments: dict[int, dict[int, int]]
) -> dict[str, Any]:
    model = decision.model_version
    job = decision.inference_job
    line = {
        "decision_id": decision.pk,
        "supersedes": decision.supersedes_id,
        "created_at": decision.created_at.isoformat(),
        "reading_id": reading.pk,
        "project": decision.project.name,
        "project_id": decision.project_id,
        "reading_mode": decision.reading_mode,
        "phase": decision.phase,
        "ai_seen_before": reading.ai_seen_before,
        "reader": decision.reader.get_username(),
        "reader_role": decision.reader_role,
        "study_uid": reading.study.study_uid,
        "series_uid": reading.series.series_uid,
        "slice_uids": reading.slice_uids,
        "model_name": model.name if model else None,
        "model_version": model.version if model else None,
        "inference_job": decision.inference_job_id,
        "input_hash": decision.input_hash or None,
        "ai_finding_index": decision.ai_finding_index,
        "ai_label": decision.ai_label or None,
        "ai_max_probability": decision.ai_max_probability,
        "ai_bbox": decision.ai_bbox,
        "ai_mask": (
            {
                "inference_job": job.pk,
                "array": "mask",
                "value": decision.ai_finding_index,
                "slice_uids": "job",
            }
            if job is not None and decision.ai_finding_index
            else None
        ),
        "decision": decision.kind,
        "final_label": decision.final_label or None,
        "final_bbox": decision.final_bbox,
        "mask_source": decision.mask_source or None,
        "mask_voxels": decision.mask_voxels,
        "dice": decision.dice,
        "reason_code": decision.reason_code or None,
        "reason_text": decision.reason_text or None,
        "confidence": decision.confidence,
        "time_spent_s": decision.time_spent_s,
        "reading_active_s": decision.reading_active_s,
        "triage_agreement": reading.triage_agreement or None,
        "mask_nifti": nifti or None,
        "seg": seg or None,
        "segment_number": segments[reading.pk].get(decision.pk) if seg else None,
    }
    assert tuple(line) == MANIFEST_FIELDS
    return line


def _write_nifti(path: Path, mask: Mask, geometry: Geometry) -> None:
    volume = np.zeros((len(geometry.slice_uids), geometry.rows, geometry.columns), dtype=np.uint8)
    for z, plane in mask.items():
        volume[z][plane] = 1
    image = nib.Nifti1Image(np.ascontiguousarray(volume.transpose(2, 1, 0)), geometry.affine_ras())
    image.header.set_xyzt_units("mm")
    image.set_qform(geometry.affine_ras(), code=1)
    image.set_sform(geometry.affine_ras(), code=1)
    nib.save(image, str(path))


# --- In the background ------------------------------------------------------------------------
def feedback_export_request(*, feedback_filter: FeedbackFilter, user: Any) -> FeedbackExport:
    """Queues a background export (reviews.tasks.feedback_export_run, after commit); the same
    export asked for again while the user's first is being written is that one."""
    filters = feedback_filter.as_params()
    Status = FeedbackExport.Status
    pending = job_pending(
        FeedbackExport, user=user, queued=Status.QUEUED, running=Status.RUNNING, filters=filters
    )
    if pending is not None:
        return pending
    with transaction.atomic():
        export = FeedbackExport.objects.create(requested_by=user, filters=filters)
        from reviews.tasks import feedback_export_run  # the task module imports this one

        pk = export.pk
        transaction.on_commit(lambda: feedback_export_run.delay(export_pk=pk))
    return export


def feedback_export_build(*, export_pk: int, task_id: str = "") -> None:
    """Writes a queued export as a zip in the media storage, counting progress on its row."""
    Status = FeedbackExport.Status
    if not job_claim(
        FeedbackExport, pk=export_pk, task_id=task_id, queued=Status.QUEUED, running=Status.RUNNING
    ):
        return
    export = FeedbackExport.objects.get(pk=export_pk)
    try:
        feedback_filter = FeedbackFilter.from_params(export.filters)
        total = (
            _references(feedback_filter).count()
            if feedback_filter.reference
            else feedback_decisions(feedback_filter=feedback_filter).count()
        )
        FeedbackExport.objects.filter(pk=export_pk).update(total=total, written=0)

        def progress(done: int) -> None:
            if done % 25 == 0 or done == total:
                FeedbackExport.objects.filter(pk=export_pk).update(written=done)

        with tempfile.TemporaryDirectory() as tmp, tempfile.TemporaryFile("w+b") as scratch:
            folder = Path(tmp) / "feedback"
            feedback_export_write(folder=folder, feedback_filter=feedback_filter, progress=progress)
            with zipfile.ZipFile(scratch, "w", zipfile.ZIP_DEFLATED) as archive:
                for path in sorted(folder.rglob("*")):
                    if path.is_file():
                        archive.write(path, path.relative_to(folder.parent))
            scratch.seek(0)
            name = f"exports/feedback-{export_pk}-{secrets.token_hex(8)}.zip"
            stored = default_storage.save(name, File(scratch, name=name))
    except FilterError as exc:  # filters stored before a change of the rules: say which
        _finish(export_pk, error=f"its filters are refused: {exc}")
        return
    except Exception as exc:  # written on the row for the admin waiting on it
        logger.exception("feedback export %s failed", export_pk)
        _finish(export_pk, error=f"{type(exc).__name__}: the export could not be written")
        return
    _finish(export_pk, file_name=stored)


def _finish(export_pk: int, *, file_name: str = "", error: str = "") -> None:
    FeedbackExport.objects.filter(pk=export_pk).update(
        status=FeedbackExport.Status.FAILED if error else FeedbackExport.Status.DONE,
        file_name=file_name,
        error=error,
        finished_at=timezone.now(),
    )


def feedback_export_fetched(*, export: FeedbackExport, request: HttpRequest) -> None:
    """Records that a background export's file left the system (110106 Export)."""
    audit_record(
        event=EventID.EXPORT,
        action=Action.READ,
        request=request,
        detail={
            "what": "reference standards" if export.filters.get("reference") else "reader feedback",
            "export": export.pk,
            "filters": export.filters,
            "decisions": export.total,
        },
    )
