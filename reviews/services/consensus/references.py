"""The adjudicator's verdict on a case: its reference standard, with provenance.

A reference takes its mask from one read as it was ("reading:<id>"), from a fused mask
("majority", "staple"), or from the adjudicator's own drawing ("edited", sent as the usual
{SOP Instance UID: base64} mask); its answers and a rationale always come from the
adjudicator. References are append-only: recording another supersedes the current one
(`version`, as the client read it, guards against two adjudicators at once), and the case
is then adjudicated.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
from django.core.files.storage import default_storage
from django.db import IntegrityError, transaction
from django.http import HttpRequest
from scipy import ndimage

from audit.codes import Action, EventID
from audit.services import audit_record
from reviews.errors import Conflict, Invalid, StaleVersion
from reviews.masks import Geometry, MaskError, mask_decode, mask_load, mask_save
from reviews.models import ConsensusCase, ReferenceStandard
from reviews.services.consensus.answers import answers_agree, answers_check
from reviews.services.consensus.cases import (
    Read,
    box_of,
    case_geometry,
    case_readings,
    label_of,
    read_of,
    volume_as_mask,
)

FUSED = (ReferenceStandard.Fusion.MAJORITY, ReferenceStandard.Fusion.STAPLE)


class StaleReference(StaleVersion):
    """Another reference was recorded since the client read the case (HTTP 409)."""

    def __init__(self, *, sent: int, current: int) -> None:
        Conflict.__init__(
            self,
            f"the case's reference changed since you read it (you sent version {sent}, it is now at "
            f"version {current}); reload the case and try again",
            field="version",
        )
        self.current = current


def reference_current(*, case: ConsensusCase) -> ReferenceStandard | None:
    return case.references.filter(superseded_by__isnull=True).select_related("adjudicator").first()


def reference_record(
    *,
    case: ConsensusCase,
    adjudicator: Any,
    source: str,
    answers: Any,
    rationale: str,
    expected_version: int,
    mask: Any = None,
    fusion: str = "",
    request: HttpRequest | None = None,
) -> ReferenceStandard:
    """Records the case's reference standard (see the module docstring). `expected_version` is
    the current reference's version the adjudicator saw (0: none yet). Invalid (400, with the
    field) for bad input; Conflict (409) before the case has all its reads; StaleReference
    (409) for an old version. The caller has checked reviews.adjudicate."""
    current = reference_current(case=case)
    current_version = current.version if current is not None else 0
    if expected_version != current_version:
        raise StaleReference(sent=expected_version, current=current_version)
    if case.status == ConsensusCase.Status.COLLECTING or case.computed_at is None:
        raise Conflict("the case does not have all its reads compared yet", field="case")
    if not isinstance(rationale, str) or not rationale.strip():
        raise Invalid("say why: the rationale is required", field="rationale")
    answers = answers_check(project=case.project, answers=answers, complete=True)
    readings = case_readings(case)
    try:
        geometry = case_geometry(readings)
    except ValueError as exc:
        raise Conflict(str(exc), field="case") from None
    reads = [read_of(reading, geometry) for reading in readings]
    volume, used, fusion = _chosen(case, source, mask, fusion, reads, geometry)
    return _insert(
        case=case,
        current=current,
        adjudicator=adjudicator,
        fields={
            "source": source,
            "fusion": fusion,
            "readings": used,
            "answers": answers,
            "findings": _findings(volume, reads_of(used, reads)),
            "mask_voxels": int(volume.sum()),
            "reader_agreement": _reader_agreement(case, reads, volume, answers),
            "rationale": rationale.strip(),
        },
        volume=volume,
        geometry=geometry,
        request=request,
    )


def reads_of(pks: Sequence[int], reads: Sequence[Read]) -> list[Read]:
    return [read for read in reads if read.reading.pk in pks]


def _chosen(
    case: ConsensusCase, source: str, mask: Any, fusion: str, reads: Sequence[Read], geometry: Geometry
) -> tuple[npt.NDArray[np.bool_], list[int], str]:
    """The reference's mask, the reads it rests on, and the fusion it used."""
    all_reads = [read.reading.pk for read in reads]
    if mask and source != "edited":
        raise Invalid('a mask is sent only with source "edited"', field="mask")
    if fusion and source != "edited":  # the source itself says which mask it is
        raise Invalid(
            'fusion names the fused mask an edit started from: send it only with source "edited"',
            field="fusion",
        )
    if source.startswith("reading:"):
        pk = source.partition(":")[2]
        chosen = next((read for read in reads if str(read.reading.pk) == pk), None)
        if chosen is None:
            raise Invalid(f"{source[:40]!r} is not a submitted read of this case", field="source")
        return chosen.volume.copy(), [chosen.reading.pk], ""
    if source in FUSED:
        key = case.majority_key if source == ReferenceStandard.Fusion.MAJORITY else case.staple_key
        return _volume(mask_load(key) if key else {}, geometry), list(case.computed_from), source
    if source == "edited":
        if not mask:
            raise Invalid('source "edited" needs the mask you drew', field="mask")
        if fusion not in ("", *FUSED):
            raise Invalid("fusion is majority, staple or empty", field="fusion")
        try:
            drawn = mask_decode(
                mask, slice_uids=geometry.slice_uids, rows=geometry.rows, columns=geometry.columns
            )
        except MaskError as exc:
            raise Invalid(str(exc), field="mask") from None
        return _volume(drawn, geometry), all_reads, fusion
    raise Invalid('source is "reading:<id>", "majority", "staple" or "edited"', field="source")


def _volume(mask: dict[int, npt.NDArray[np.bool_]], geometry: Geometry) -> npt.NDArray[np.bool_]:
    volume = np.zeros((len(geometry.slice_uids), geometry.rows, geometry.columns), dtype=bool)
    for z, plane in mask.items():
        volume[z] = plane
    return volume


def _findings(volume: npt.NDArray[np.bool_], reads: Sequence[Read]) -> list[dict[str, Any]]:
    """The mask's findings (face-connected components), each labelled as the reads labelled
    its voxels most."""
    labels, count = ndimage.label(volume)
    found = []
    for number in range(1, count + 1):
        region = labels == number
        found.append({"label": label_of(region, reads), "bbox": box_of(region), "voxels": int(region.sum())})
    return found


def _reader_agreement(
    case: ConsensusCase, reads: Sequence[Read], volume: npt.NDArray[np.bool_], answers: dict[str, str]
) -> list[dict[str, Any]]:
    """Each read against the reference: Dice of the masks and how many answers match."""
    from reviews.consensus import dice  # scikit-learn and SimpleITK: imported when needed

    return [
        {
            "reading": read.reading.pk,
            "reader": read.reading.reader.get_username(),
            "dice": round(dice(read.volume, volume), 6),
            "answers_matched": answers_agree(read.reading.answers, answers, project=case.project),
            "questions": len(case.project.questions),
        }
        for read in reads
    ]


def _insert(
    *,
    case: ConsensusCase,
    current: ReferenceStandard | None,
    adjudicator: Any,
    fields: dict[str, Any],
    volume: npt.NDArray[np.bool_],
    geometry: Geometry,
    request: HttpRequest | None,
) -> ReferenceStandard:
    version = (current.version if current is not None else 0) + 1
    mask = volume_as_mask(volume)
    key = ""
    if mask:  # a key of its own: a concurrent adjudication that loses must not touch the winner's file
        name = f"reviews/consensus/case-{case.pk}/reference-{version}-{secrets.token_hex(6)}.npz"
        key = mask_save(mask, key=name, slice_uids=geometry.slice_uids)
    try:
        with transaction.atomic():
            reference = ReferenceStandard.objects.create(
                case=case,
                version=version,
                supersedes=current,
                adjudicator=adjudicator,
                mask_key=key,
                **fields,
            )
            ConsensusCase.objects.filter(pk=case.pk).update(status=ConsensusCase.Status.ADJUDICATED)
            _audit(case, reference, adjudicator, request)
    except IntegrityError:
        if key:
            default_storage.delete(key)
        latest = reference_current(case=case)
        raise StaleReference(sent=version - 1, current=latest.version if latest else 0) from None
    except BaseException:
        if key:
            default_storage.delete(key)
        raise
    return reference


def _audit(
    case: ConsensusCase, reference: ReferenceStandard, adjudicator: Any, request: HttpRequest | None
) -> None:
    study = case.entry.study
    audit_record(
        event=EventID.PROCEDURE_RECORD,
        action=Action.CREATE,
        request=request,
        user=adjudicator if request is None else None,
        patient_id=study.patient.patient_id,
        accession=study.accession_number,
        study_uid=study.study_uid,
        detail={
            "what": "reference standard recorded",
            "project": case.project_id,
            "case": case.pk,
            "reference": reference.pk,
            "version": reference.version,
            "source": reference.source,
            "readings": reference.readings,
        },
    )
