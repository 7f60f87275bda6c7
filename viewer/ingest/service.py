"""The one ingest service: every way in (upload, STOW-RS, import_dicom, PACS pull) calls it.

An instance is stored once. The same SOP Instance UID with the same bytes is a
duplicate (nothing changes); with other bytes it is a conflict (refused, the
stored one kept). The file goes into the store first, then the rows in one
transaction; if the rows fail, the file is removed again. Two ingests of the
same instance at once cannot both store it: the store refuses a second file
under the same key and the database a second row for the same UID.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import IO, Any, Literal

from django.conf import settings
from django.core.files.storage import default_storage
from django.db import DatabaseError, IntegrityError, transaction
from django.http import HttpRequest

from viewer.auditing import (
    IngestAuditFacts,
    audit_input_rejected,
    audit_instance_already_held,
    audit_instance_stored,
)
from viewer.ingest import index
from viewer.ingest.archive import archive_entries, is_zip
from viewer.ingest.errors import FailureReason, Rejected
from viewer.ingest.parse import is_part10
from viewer.ingest.rows import IndexRows, SeriesProducer, index_rows_write
from viewer.ingest.spool import LocalFile, local_file, too_large
from viewer.ingest.validate import ValidInstance, identify, validate_instance
from viewer.models import Instance
from viewer.signals import instance_stored
from viewer.store import StoreError, instance_key, sha256_of, store_delete, store_open, store_put

logger = logging.getLogger(__name__)
# How long a file of the same instance, being written by a concurrent ingest, is waited for.
HELD_FILE_PAUSES = (0.05, 0.1, 0.2, 0.4, 0.8)

# "derived": objects Overread made itself (AI results, reader SEG/SR), stored like any other.
Origin = Literal["upload", "stow", "import", "pacs", "derived"]
ORIGINS = ("upload", "stow", "import", "pacs", "derived")
Status = Literal["stored", "duplicate", "rejected"]
_NEITHER = "neither a DICOM Part 10 file (no 'DICM' prefix after the 128-byte preamble) nor a ZIP archive"


@dataclass(frozen=True)
class IngestOutcome:
    """What became of one offered file. `name` is the client's, for display only."""

    status: Status
    reason: str
    failure_code: int | None
    name: str
    sop_class_uid: str = ""
    sop_instance_uid: str = ""
    study_uid: str = ""
    series_uid: str = ""
    instance_pk: int | None = None


@dataclass(frozen=True)
class _Attempt:
    name: str
    origin: str
    user: Any
    request: HttpRequest | None
    facts: IngestAuditFacts = field(default_factory=lambda: IngestAuditFacts(origin=""))


def ingest_file(
    *,
    source: Path | IO[bytes],
    name: str,
    origin: str,
    user: Any = None,
    request: HttpRequest | None = None,
    expected_study_uid: str | None = None,
    producer: SeriesProducer | None = None,
) -> IngestOutcome:
    """Validates, stores and indexes one Part 10 file; audits the outcome; never raises for bad input.

    `expected_study_uid` (STOW-RS to /studies/{study}) refuses an instance of another study.
    `producer` marks a new series as written by Overread itself (an AI job's, a reader's
    objects): who may see it is then the producing app's question (viewer.selectors).
    """
    attempt = _attempt(name=name, origin=origin, user=user, request=request)
    try:
        with local_file(source, limit=settings.DICOM_MAX_FILE_BYTES) as local:
            return _ingest_local(local, attempt, expected_study_uid=expected_study_uid, producer=producer)
    except Rejected as rejection:
        return _refuse(rejection, attempt)


def ingest_upload(
    *, source: Path | IO[bytes], name: str, origin: str, user: Any = None, request: HttpRequest | None = None
) -> list[IngestOutcome]:
    """Ingests a Part 10 file or a ZIP of them (told apart by content, not name): an outcome per file."""
    attempt = _attempt(name=name, origin=origin, user=user, request=request)
    try:
        with local_file(source, limit=settings.DICOM_MAX_UPLOAD_BYTES) as local:
            attempt = replace(
                attempt, facts=replace(attempt.facts, sha256=local.sha256, size_bytes=local.size)
            )
            with local.path.open("rb") as handle:
                head = handle.read(132)
            if not head:
                raise Rejected("the file is empty")
            if is_zip(head):
                return _ingest_archive(local.path, attempt)
            if not is_part10(head):
                raise Rejected(_NEITHER)
            if local.size > settings.DICOM_MAX_FILE_BYTES:
                raise too_large(settings.DICOM_MAX_FILE_BYTES)
            return [_ingest_local(local, attempt)]
    except Rejected as rejection:
        return [_refuse(rejection, attempt)]


def _attempt(*, name: str, origin: str, user: Any, request: HttpRequest | None) -> _Attempt:
    if origin not in ORIGINS:
        raise ValueError(f"origin must be one of {ORIGINS}, not {origin!r}")
    return _Attempt(
        name=name, origin=origin, user=user, request=request, facts=IngestAuditFacts(origin=origin)
    )


def _ingest_archive(path: Path, attempt: _Attempt) -> list[IngestOutcome]:
    outcomes = []
    for entry in archive_entries(path):
        entry_attempt = replace(
            attempt, name=f"{attempt.name}/{entry.name}", facts=IngestAuditFacts(origin=attempt.origin)
        )
        if entry.rejection is not None or entry.path is None:
            outcomes.append(_refuse(entry.rejection or Rejected("entry cannot be extracted"), entry_attempt))
            continue
        with local_file(entry.path, limit=settings.DICOM_MAX_FILE_BYTES) as local:
            outcomes.append(_ingest_local(local, entry_attempt))
    return outcomes


def _ingest_local(
    local: LocalFile,
    attempt: _Attempt,
    *,
    expected_study_uid: str | None = None,
    producer: SeriesProducer | None = None,
) -> IngestOutcome:
    attempt = replace(
        attempt, facts=IngestAuditFacts(origin=attempt.origin, sha256=local.sha256, size_bytes=local.size)
    )
    try:
        instance = _validated(local.path)
        attempt = replace(attempt, facts=_facts(instance, local, attempt.origin))
        if expected_study_uid is not None and instance.study_uid != expected_study_uid:
            raise Rejected(
                f"the instance belongs to study {instance.study_uid}, "
                f"not to {expected_study_uid} named in the request",
                FailureReason.DOES_NOT_MATCH,
            )
        rows = IndexRows.of(instance)
        return _store(instance, rows, local, attempt, producer)
    except Rejected as rejection:
        if not attempt.facts.sop_instance_uid:  # refused while validating: name what we can
            attempt = replace(attempt, facts=_identified(local, attempt.origin))
        return _refuse(rejection, attempt)


def _validated(path: Path) -> ValidInstance:
    try:
        return validate_instance(path)
    except Rejected:
        raise
    except Exception as exc:  # a parser or codec bug on strange input must not become a 500
        logger.exception("unexpected error while validating an offered file")
        raise Rejected(f"the file cannot be read: {type(exc).__name__}: {str(exc)[:200]}") from None


def _facts(instance: ValidInstance, local: LocalFile, origin: str) -> IngestAuditFacts:
    return IngestAuditFacts(
        origin=origin,
        sha256=local.sha256,
        size_bytes=local.size,
        patient_id=index.patient_fields(instance.dataset)["patient_id"],
        study_uid=instance.study_uid,
        series_uid=instance.series_uid,
        sop_instance_uid=instance.sop_instance_uid,
        sop_class_uid=instance.sop_class_uid,
    )


def _identified(local: LocalFile, origin: str) -> IngestAuditFacts:
    found = identify(local.path)
    return IngestAuditFacts(
        origin=origin,
        sha256=local.sha256,
        size_bytes=local.size,
        patient_id=found.get("PatientID", ""),
        study_uid=found.get("StudyInstanceUID", ""),
        series_uid=found.get("SeriesInstanceUID", ""),
        sop_instance_uid=found.get("SOPInstanceUID", ""),
        sop_class_uid=found.get("SOPClassUID", ""),
    )


# --- Storing: the file, then the rows, or neither -------------------------------------------
def _store(
    instance: ValidInstance,
    rows: IndexRows,
    local: LocalFile,
    attempt: _Attempt,
    producer: SeriesProducer | None = None,
) -> IngestOutcome:
    held = _already_held(instance, local.sha256, attempt)
    if held is not None:
        return held
    key = instance_key(
        study_uid=instance.study_uid,
        series_uid=instance.series_uid,
        sop_instance_uid=instance.sop_instance_uid,
    )
    wrote = _put(key, local)
    try:
        with transaction.atomic():
            instance_pk = index_rows_write(rows, key=key, local=local, instance=instance, producer=producer)
            audit_instance_stored(facts=attempt.facts, user=attempt.user, request=attempt.request)
            transaction.on_commit(partial(_announce, instance, attempt.origin))
    except IntegrityError:
        _discard(key, wrote=wrote)
        held = _already_held(instance, local.sha256, attempt)  # a concurrent ingest won the race
        if held is not None:
            return held
        raise Rejected(
            "the index refused the instance (a concurrent change); try again",
            FailureReason.PROCESSING_FAILURE,
        ) from None
    except DatabaseError as exc:
        _discard(key, wrote=wrote)
        logger.exception("cannot index an instance")
        raise Rejected(
            f"the instance could not be indexed: {exc}", FailureReason.PROCESSING_FAILURE
        ) from None
    except BaseException:
        _discard(key, wrote=wrote)
        raise
    return _outcome("stored", "stored", attempt, instance_pk=instance_pk)


def _announce(instance: ValidInstance, origin: str) -> None:
    instance_stored.send(
        sender=Instance,
        study_uid=instance.study_uid,
        series_uid=instance.series_uid,
        sop_instance_uid=instance.sop_instance_uid,
        origin=origin,
    )


def _already_held(instance: ValidInstance, sha256: str, attempt: _Attempt) -> IngestOutcome | None:
    """Duplicate when the same bytes are stored under this SOP Instance UID; Rejected when other bytes are."""
    existing = (
        Instance.objects.filter(sop_instance_uid=instance.sop_instance_uid).only("pk", "sha256").first()
    )
    if existing is None:
        return None
    if existing.sha256 != sha256:
        raise Rejected(
            f"conflict: SOP Instance UID {instance.sop_instance_uid} is already stored with different "
            "content; the stored instance was kept",
            FailureReason.PROCESSING_FAILURE,
        )
    audit_instance_already_held(facts=attempt.facts, user=attempt.user, request=attempt.request)
    return _outcome("duplicate", "already stored (an identical copy)", attempt, instance_pk=existing.pk)


def _put(key: str, local: LocalFile) -> bool:
    """Writes the file under `key`; False when an identical file was already there."""
    with local.path.open("rb") as handle:
        try:
            store_put(key=key, content=handle)
            return True
        except StoreError as exc:
            if not default_storage.exists(key):
                logger.error("the DICOM store refused a file: %s", exc)
                raise Rejected(
                    f"the DICOM store cannot take the file: {exc}", FailureReason.OUT_OF_RESOURCES
                ) from None
    # The key is taken: an ingest of this instance running now, or one interrupted
    # between the file and its rows. The same bytes can be indexed as they are; a file
    # still being written (a concurrent ingest of the same instance) gets a moment to finish.
    for pause in (*HELD_FILE_PAUSES, None):
        with store_open(key) as stored:
            if sha256_of(stored) == local.sha256:
                return False
        if pause is not None:
            time.sleep(pause)
    raise Rejected(
        "the store already holds a different file for this instance (an ingest in progress or interrupted); "
        "try again later",
        FailureReason.PROCESSING_FAILURE,
    )


def _discard(key: str, *, wrote: bool) -> None:
    """Removes a file this attempt wrote, unless a row (of a concurrent ingest) now points at it."""
    if wrote and not Instance.objects.filter(storage_key=key).exists():
        store_delete(key)


# --- Outcomes -------------------------------------------------------------------------------
def _outcome(
    status: Status, reason: str, attempt: _Attempt, *, instance_pk: int | None = None
) -> IngestOutcome:
    facts = attempt.facts
    return IngestOutcome(
        status=status,
        reason=reason,
        failure_code=None,
        name=attempt.name,
        sop_class_uid=facts.sop_class_uid,
        sop_instance_uid=facts.sop_instance_uid,
        study_uid=facts.study_uid,
        series_uid=facts.series_uid,
        instance_pk=instance_pk,
    )


def _refuse(rejection: Rejected, attempt: _Attempt) -> IngestOutcome:
    audit_input_rejected(
        facts=attempt.facts,
        reason=rejection.reason,
        failure_code=rejection.failure_code,
        security=rejection.security,
        user=attempt.user,
        request=attempt.request,
    )
    return replace(_outcome("rejected", rejection.reason, attempt), failure_code=rejection.failure_code)
