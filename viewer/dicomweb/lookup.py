"""Path parameters checked, and the study/series/instance they name found for the user.

Malformed identifiers are refused (400) before any database or file access.
A study the user may not see answers 404, exactly like one that does not exist:
a 403 would confirm to anyone signed in that a given Study UID is held here.
"""

from __future__ import annotations

import re

from django.http import HttpRequest

from audit.services import audit_hidden_refused
from viewer import selectors
from viewer.dicomweb.http import BadRequest, NotFound
from viewer.models import Instance, Series, Study
from viewer.store import is_valid_uid

MAX_FRAMES_PER_REQUEST = 4096
_FRAME_LIST = re.compile(r"^[0-9]{1,6}(,[0-9]{1,6})*$")
_TAG = re.compile(r"^[0-9A-Fa-f]{8}$")
# The instance fields the frame and retrieve paths need: metadata stays in the
# database until something asks for it (a deferred field loads on first use).
INSTANCE_FIELDS = (
    "sop_instance_uid",
    "sop_class_uid",
    "transfer_syntax_uid",
    "number_of_frames",
    "frame_offsets",
    "storage_key",
    "size_bytes",
    "instance_number",
    "series__series_uid",
    "series__study__study_uid",
    "series__study__accession_number",
    "series__study__patient__patient_id",
)


def checked_uid(value: str, what: str) -> str:
    """`value` when it is a well-formed DICOM UID, else a 400 naming `what`."""
    if not is_valid_uid(value):
        raise BadRequest(f"{what} is not a valid DICOM UID (digits and dots, at most 64 characters)")
    return value


def study_for_request(request: HttpRequest, study_uid: str) -> Study:
    """The study, when the user may see it; else 404."""
    checked_uid(study_uid, "the Study Instance UID")
    study = (
        selectors.study_queryset_for_user(user=request.user)
        .select_related("patient")
        .filter(study_uid=study_uid)
        .first()
    )
    if study is None:
        audit_hidden_refused(request=request, exists=Study.objects.filter(study_uid=study_uid).exists())
        raise NotFound(f"no study {study_uid}")
    return study


def series_for_request(request: HttpRequest, study_uid: str, series_uid: str) -> Series:
    """The series of that study, when the user may see the study; else 404."""
    checked_uid(study_uid, "the Study Instance UID")
    checked_uid(series_uid, "the Series Instance UID")
    series = (
        selectors.series_queryset_for_user(user=request.user)
        .select_related("study__patient")
        .filter(series_uid=series_uid, study__study_uid=study_uid)
        .first()
    )
    if series is None:
        held = Series.objects.filter(series_uid=series_uid, study__study_uid=study_uid).exists()
        audit_hidden_refused(request=request, exists=held)
        raise NotFound(f"no series {series_uid} in study {study_uid}")
    return series


def instance_for_request(request: HttpRequest, study_uid: str, series_uid: str, sop_uid: str) -> Instance:
    """The instance (without its metadata loaded), when the user may see its study; else 404."""
    checked_uid(study_uid, "the Study Instance UID")
    checked_uid(series_uid, "the Series Instance UID")
    checked_uid(sop_uid, "the SOP Instance UID")
    instance = (
        selectors.instance_queryset_for_user(user=request.user)
        .select_related("series__study__patient")
        .only(*INSTANCE_FIELDS)
        .filter(sop_instance_uid=sop_uid, series__series_uid=series_uid, series__study__study_uid=study_uid)
        .first()
    )
    if instance is None:
        held = Instance.objects.filter(
            sop_instance_uid=sop_uid, series__series_uid=series_uid, series__study__study_uid=study_uid
        ).exists()
        audit_hidden_refused(request=request, exists=held)
        raise NotFound(f"no instance {sop_uid} in series {series_uid} of study {study_uid}")
    return instance


def frame_numbers(value: str, instance: Instance) -> list[int]:
    """The 1-based frame numbers of a frame list ("1,3,5"), each checked against the instance."""
    if len(value) > 8 * MAX_FRAMES_PER_REQUEST or not _FRAME_LIST.match(value):
        raise BadRequest("the frame list must be frame numbers separated by commas, e.g. 1,2,3")
    numbers = [int(part) for part in value.split(",")]
    if len(numbers) > MAX_FRAMES_PER_REQUEST:
        raise BadRequest(f"at most {MAX_FRAMES_PER_REQUEST} frames per request")
    if 0 in numbers:
        raise BadRequest("frame numbers start at 1")
    if instance.number_of_frames == 0:
        raise NotFound(f"instance {instance.sop_instance_uid} has no pixel data")
    missing = [n for n in numbers if n > instance.number_of_frames]
    if missing:
        raise NotFound(
            f"instance {instance.sop_instance_uid} has {instance.number_of_frames} frame(s), not {missing[0]}"
        )
    return numbers


def checked_tag(value: str) -> str:
    """An attribute tag as 8 upper-case hex digits (the bulkdata path), else 400."""
    if not _TAG.match(value):
        raise BadRequest("a bulk data tag is 8 hexadecimal digits, e.g. 7FE00010")
    return value.upper()
