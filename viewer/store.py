"""The DICOM store: original files, written once, addressed by their UIDs.

Files live in Django's default storage (local disk under MEDIA_ROOT, or
S3-compatible object storage), under keys built only from validated UIDs,
never from client-supplied names.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
from typing import IO

from django.core.files import File
from django.core.files.storage import default_storage

# PS3.5 9.1: digits and dots, no leading zeros in a component, at most 64 characters.
UID_PATTERN = re.compile(r"^(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))*$")


class StoreError(Exception):
    """The store cannot take or give a file (bad key, disk full, backend down)."""


def is_valid_uid(value: object) -> bool:
    return isinstance(value, str) and len(value) <= 64 and UID_PATTERN.match(value) is not None


def instance_key(*, study_uid: str, series_uid: str, sop_instance_uid: str) -> str:
    """The storage key of an instance's original file."""
    for uid in (study_uid, series_uid, sop_instance_uid):
        if not is_valid_uid(uid):
            raise StoreError(f"not a valid DICOM UID: {uid[:80]!r}")
    return f"dicom/{study_uid}/{series_uid}/{sop_instance_uid}.dcm"


def store_put(*, key: str, content: IO[bytes]) -> str:
    """Writes a new file under exactly `key`; refuses to overwrite one that exists."""
    if default_storage.exists(key):
        raise StoreError(f"{key} already exists in the store")
    content.seek(0)
    try:
        saved = default_storage.save(key, File(content))
    except OSError as exc:
        # What the failed write left (a full disk leaves part of the file) is this attempt's:
        # the key was free a moment ago. Left there, it would refuse the same file for good.
        with contextlib.suppress(OSError):
            default_storage.delete(key)
        raise StoreError(f"cannot write {key}: {exc.strerror or exc}") from exc
    if saved != key:  # the backend renamed it: someone raced us to the key
        default_storage.delete(saved)
        raise StoreError(f"{key} already exists in the store")
    return key


def store_open(key: str) -> IO[bytes]:
    return default_storage.open(key, "rb")


def store_delete(key: str) -> None:
    default_storage.delete(key)


def sha256_of(content: IO[bytes], chunk_size: int = 1 << 20) -> str:
    content.seek(0)
    digest = hashlib.sha256()
    while chunk := content.read(chunk_size):
        digest.update(chunk)
    content.seek(0)
    return digest.hexdigest()
