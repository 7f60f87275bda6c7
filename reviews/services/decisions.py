"""Recording a reader's decision on a finding: accept, edit, override, add (or withdraw an
added one), with its provenance, its final mask and the Dice against the AI's mask.

Everything is checked before anything is written, so a refused decision leaves no row, no
file and the same version behind. A decision never changes an earlier one: it is a new row
that supersedes the target's current decision.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from django.core.files.storage import default_storage
from django.db import IntegrityError, transaction
from django.http import HttpRequest

from audit.codes import Action
from config.inputs import id_param
from inference.derived import codes
from inference.models import Finding
from reviews.errors import Conflict, Invalid, StaleVersion
from reviews.masks import (
    Mask,
    MaskError,
    ai_mask,
    dice,
    mask_bbox,
    mask_decode,
    mask_from_box,
    mask_save,
    mask_voxels,
)
from reviews.models import Decision, Reading
from reviews.selectors import decisions_current
from reviews.services.readings import _check_version, _write, reading_audit

Kind = Decision.Kind
Phase = Reading.Phase
LABELS = tuple(sorted(codes.FINDING_TYPES))  # what a reader may call a finding
MAX_TIME_SPENT_S = 24 * 3600.0


@dataclass(frozen=True)
class DecisionInput:
    """What the reader sent (reviews.api validates the types; this module the meaning)."""

    kind: str
    confidence: int | None = None  # not given: recorded as such, never as a middle value
    finding: int | None = None  # the AI finding's index (accept, edit, override)
    target: str = ""  # "added-<n>": revise or withdraw an added finding
    label: str = ""
    mask: Any = None  # {SOP Instance UID: base64}
    bbox: Any = None  # [[z0, z1], [y0, y1], [x0, x1]], half-open, in the reading's slice order
    reason_code: str = ""
    reason_text: str = ""
    time_spent_s: float | None = None


@dataclass
class _Outcome:
    """The row to insert, less the identity fields, and the mask to store with it."""

    fields: dict[str, Any]
    mask: Mask | None


def decision_record(
    *, reading: Reading, version: int, given: DecisionInput, request: HttpRequest | None = None
) -> Decision:
    """Records one decision (see the module docstring). Invalid (400) for bad input, Conflict
    (409) when the reading's phase does not allow it, StaleVersion (409) for an old version."""
    _check_version(reading, version)
    target, phase = _target_and_phase(reading, given)
    current = decisions_current(reading=reading).filter(target=target).first()
    if current is not None and current.phase == Phase.UNAIDED and reading.phase != Phase.UNAIDED:
        raise Conflict(
            f"{target} belongs to the locked unaided read: it can no longer change", field="target"
        )
    if given.kind == Kind.WITHDRAWN and (current is None or current.kind == Kind.WITHDRAWN):
        raise Invalid(f"there is no added finding {target} to withdraw", field="target")
    _check_common(given)
    outcome = _outcome(reading, given, target)
    with transaction.atomic():
        _write(reading, version)  # moves the version on, or refuses a stale one
        mask_key = ""
        if outcome.mask is not None:
            chain = 1 + (Decision.objects.filter(reading=reading, target=target).count())
            mask_key = mask_save(
                outcome.mask,
                key=f"reviews/readings/{reading.pk}/{target}-{chain}.npz",
                slice_uids=reading.slice_uids,
            )
        try:
            with transaction.atomic():
                decision = Decision.objects.create(
                    reading=reading,
                    target=target,
                    kind=given.kind,
                    supersedes=current,
                    project=reading.project,
                    reader=reading.reader,
                    reader_role=reading.reader_role,
                    reading_mode=reading.reading_mode,
                    phase=phase,
                    confidence=given.confidence,
                    reason_code=given.reason_code if given.kind == Kind.OVERRIDDEN else "",
                    reason_text=given.reason_text if given.kind == Kind.OVERRIDDEN else "",
                    time_spent_s=given.time_spent_s,
                    reading_active_s=reading.active_seconds,
                    mask_key=mask_key,
                    **outcome.fields,
                )
        except IntegrityError:
            if mask_key:
                default_storage.delete(mask_key)
            current_version = Reading.objects.values_list("version", flat=True).get(pk=reading.pk)
            raise StaleVersion(sent=version, current=current_version) from None
        except BaseException:
            if mask_key:
                default_storage.delete(mask_key)
            raise
        reading_audit(
            reading,
            Action.CREATE,
            "decision recorded",
            request=request,
            job=reading.revealed_job if decision.ai_finding_index else None,
            detail={"decision": decision.pk, "target": target, "kind": decision.kind},
        )
    return decision


def _target_and_phase(reading: Reading, given: DecisionInput) -> tuple[str, str]:
    if reading.phase == Phase.SUBMITTED:
        raise Conflict("the reading is submitted: its decisions can no longer change")
    if reading.phase == Phase.LOCKED:
        raise Conflict("the unaided read is locked and no AI result is revealed yet: reveal it, or submit")
    if given.kind not in Kind.values:
        raise Invalid(f"kind must be one of {', '.join(Kind.values)}", field="kind")
    phase = Phase.UNAIDED if reading.phase == Phase.UNAIDED else Phase.AI_REVEALED
    if given.kind in (Kind.ADDED, Kind.WITHDRAWN):
        if given.finding is not None:
            raise Invalid(
                'an added finding is named by `target` ("added-<n>"), not `finding`', field="finding"
            )
        return _added_target(reading, given), phase
    if reading.phase == Phase.UNAIDED:
        raise Conflict(
            "the AI is not revealed yet: in the unaided read you can only add findings", field="kind"
        )
    if reading.revealed_job_id is None:
        raise Conflict("no AI result is revealed: there is no AI finding to decide on", field="finding")
    if given.finding is None:
        raise Invalid(f"{given.kind} needs `finding`, the index of the AI finding", field="finding")
    return f"ai-{given.finding}", phase


def _added_target(reading: Reading, given: DecisionInput) -> str:
    if not given.target:
        if given.kind == Kind.WITHDRAWN:
            raise Invalid("withdrawn needs `target`, the added finding to take back", field="target")
        added = Decision.objects.filter(reading=reading, target__startswith="added-").values_list(
            "target", flat=True
        )
        numbers = [int(t.split("-", 1)[1]) for t in set(added)]
        return f"added-{max(numbers, default=0) + 1}"
    prefix, _, number = given.target.partition("-")
    if prefix != "added" or id_param(number) is None:
        raise Invalid('target must be "added-<n>", a finding you added', field="target")
    if not Decision.objects.filter(reading=reading, target=given.target).exists():
        raise Invalid(f"there is no added finding {given.target} in this reading", field="target")
    return given.target


def _check_common(given: DecisionInput) -> None:
    if given.confidence is not None and (
        isinstance(given.confidence, bool)
        or not isinstance(given.confidence, int)
        or not 1 <= given.confidence <= 5
    ):
        raise Invalid("confidence must be a whole number from 1 to 5, or left out", field="confidence")
    if given.time_spent_s is not None and not (
        math.isfinite(given.time_spent_s) and 0 <= given.time_spent_s <= MAX_TIME_SPENT_S
    ):
        raise Invalid(f"time_spent_s must lie in 0..{MAX_TIME_SPENT_S:.0f}", field="time_spent_s")
    if given.label and given.label.lower() not in LABELS:
        raise Invalid(f"unknown label {given.label[:64]!r}; known labels: {', '.join(LABELS)}", field="label")
    if given.kind != Kind.OVERRIDDEN and (given.reason_code or given.reason_text):
        raise Invalid("a reason is given only with an override", field="reason_code")
    if given.kind in (Kind.ACCEPTED, Kind.OVERRIDDEN, Kind.WITHDRAWN) and (
        given.mask or given.bbox or given.label
    ):
        raise Invalid(f"{given.kind} takes no mask, box or label (an edit does)", field="kind")


def _outcome(reading: Reading, given: DecisionInput, target: str) -> _Outcome:
    if given.kind in (Kind.ADDED, Kind.WITHDRAWN):
        return _added_outcome(reading, given)
    assert given.finding is not None  # _target_and_phase asked for it
    finding = Finding.objects.filter(job_id=reading.revealed_job_id, index=given.finding).first()
    if finding is None:
        raise Invalid(f"the revealed AI result has no finding {given.finding}", field="finding")
    job = reading.revealed_job
    assert job is not None
    fields: dict[str, Any] = {
        "inference_job": job,
        "model_version_id": job.model_version_id,
        "input_hash": job.input_hash,
        "ai_finding_index": finding.index,
        "ai_label": finding.label,
        "ai_max_probability": finding.max_probability,
        "ai_bbox": finding.bbox,
    }
    if given.kind == Kind.ACCEPTED:
        fields.update(
            final_label=finding.label,
            final_bbox=finding.bbox,
            mask_source=Decision.MaskSource.AI,
            mask_voxels=finding.voxel_count,
            dice=1.0,
        )
        return _Outcome(fields, None)
    if given.kind == Kind.OVERRIDDEN:
        _check_reason(reading, given)
        fields.update(dice=0.0)
        return _Outcome(fields, None)
    return _edit_outcome(reading, given, finding, fields)


def _edit_outcome(
    reading: Reading, given: DecisionInput, finding: Finding, fields: dict[str, Any]
) -> _Outcome:
    if not (given.mask or given.bbox or given.label):
        raise Invalid("an edit changes the mask, the box or the label: send at least one", field="mask")
    bbox = _check_bbox(reading, given.bbox) if given.bbox else None
    mask = _decode(reading, given.mask) if given.mask else None
    _check_box_holds(bbox, mask)
    if mask is not None:
        job = reading.revealed_job
        assert job is not None
        original = ai_mask(job, index=finding.index, bbox=finding.bbox, slice_uids=reading.slice_uids)
        fields.update(
            mask_source=Decision.MaskSource.READER,
            mask_voxels=mask_voxels(mask),
            dice=round(dice(original, mask), 6),
            final_bbox=bbox or mask_bbox(mask),
        )
    else:
        fields.update(
            mask_source=Decision.MaskSource.AI,
            mask_voxels=finding.voxel_count,
            dice=1.0,
            final_bbox=bbox or finding.bbox,
        )
    fields["final_label"] = given.label.lower() if given.label else finding.label
    return _Outcome(fields, mask)


def _added_outcome(reading: Reading, given: DecisionInput) -> _Outcome:
    if given.kind == Kind.WITHDRAWN:
        return _Outcome({}, None)
    if not given.label:
        raise Invalid(f"an added finding needs a label ({', '.join(LABELS)})", field="label")
    if not (given.mask or given.bbox):
        raise Invalid("an added finding needs a mask or a box", field="mask")
    bbox = _check_bbox(reading, given.bbox) if given.bbox else None
    if given.mask:
        mask, source = _decode(reading, given.mask), Decision.MaskSource.READER
        _check_box_holds(bbox, mask)
    else:
        assert bbox is not None
        mask, source = (
            mask_from_box(bbox, rows=reading.rows, columns=reading.columns),
            Decision.MaskSource.BOX,
        )
    fields: dict[str, Any] = {
        **_missed_by(reading),
        "final_label": given.label.lower(),
        "final_bbox": bbox or mask_bbox(mask),
        "mask_source": source,
        "mask_voxels": mask_voxels(mask),
        "dice": None,
    }
    return _Outcome(fields, mask)


def _missed_by(reading: Reading) -> dict[str, Any]:
    """A finding added with the AI result in view is one that result missed: the decision
    names the job and model (feedback on their false negatives). In the unaided read, none."""
    job = reading.revealed_job if reading.phase == Phase.AI_REVEALED else None
    if job is None:
        return {}
    return {"inference_job": job, "model_version_id": job.model_version_id, "input_hash": job.input_hash}


def _check_reason(reading: Reading, given: DecisionInput) -> None:
    reasons = reading.project.override_reasons
    reason = reading.project.reason(given.reason_code)
    if reason is None:
        known = ", ".join(r["code"] for r in reasons)
        raise Invalid(
            f"unknown reason code {given.reason_code[:32]!r}; this project's: {known}", field="reason_code"
        )
    if reason.get("needs_text") and not given.reason_text.strip():
        raise Invalid(f"the reason {reason['label']!r} needs a few words of free text", field="reason_text")


def _decode(reading: Reading, value: Any) -> Mask:
    try:
        return mask_decode(value, slice_uids=reading.slice_uids, rows=reading.rows, columns=reading.columns)
    except MaskError as exc:
        raise Invalid(str(exc), field="mask") from None


def _check_box_holds(bbox: list[list[int]] | None, mask: Mask | None) -> None:
    """A box sent with a mask must hold all of it: one finding, not two that disagree."""
    if bbox is None or mask is None:
        return
    tight = mask_bbox(mask)
    if not all(b0 <= m0 and m1 <= b1 for (b0, b1), (m0, m1) in zip(bbox, tight, strict=True)):
        raise Invalid(
            f"the bbox {bbox} does not hold the whole mask, whose own box is {tight}: "
            "send a box around the mask, or the mask alone",
            field="bbox",
        )


def _check_bbox(reading: Reading, value: Any) -> list[list[int]]:
    limits = (len(reading.slice_uids), reading.rows, reading.columns)
    message = (
        "bbox is [[z0, z1], [y0, y1], [x0, x1]]: whole numbers, half-open ranges within "
        f"{limits[0]} slices x {limits[1]} rows x {limits[2]} columns"
    )
    if not isinstance(value, list) or len(value) != 3:
        raise Invalid(message, field="bbox")
    box: list[list[int]] = []
    for pair, limit in zip(value, limits, strict=True):
        if (
            not isinstance(pair, list)
            or len(pair) != 2
            or not all(isinstance(v, int) and not isinstance(v, bool) for v in pair)
            or not 0 <= pair[0] < pair[1] <= limit
        ):
            raise Invalid(message, field="bbox")
        box.append([int(pair[0]), int(pair[1])])
    return box
