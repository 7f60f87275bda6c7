"""ZIP archives of DICOM files, checked whole before a single byte is extracted.

The central directory is read first: the entry count, every name (no absolute
paths, no "..", no drive letters), no links, no encryption, each entry's
declared size and compression ratio, and the declared total. Only then are
entries extracted, one at a time, each into its own temporary file under a
running byte cap (declared sizes can lie). Entry names are for display only:
nothing is ever written to a path built from one.
"""

from __future__ import annotations

import re
import stat
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from django.conf import settings

from viewer.ingest.errors import FailureReason, Rejected
from viewer.ingest.spool import copy_capped, temporary_file

ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")  # a local file header; an empty archive's end record
_ENCRYPTED = 0x1
_DRIVE = re.compile(r"^[A-Za-z]:")
# Files that archives made on desktops carry and that are not DICOM instances.
_JUNK_NAMES = {".DS_Store", "Thumbs.db", "desktop.ini", "DICOMDIR"}


@dataclass(frozen=True)
class ArchiveEntry:
    """One file of the archive: extracted to `path`, or refused with `rejection`."""

    name: str
    path: Path | None = None
    rejection: Rejected | None = None


def is_zip(head: bytes) -> bool:
    return head.startswith(ZIP_MAGIC)


def archive_entries(path: Path) -> Iterator[ArchiveEntry]:
    """The archive's files, each valid until the next is taken; Rejected if the archive is unsafe."""
    try:
        archive = zipfile.ZipFile(path)
    except Exception as exc:  # a damaged directory raises many kinds (NotImplementedError for a version...)
        raise Rejected(f"not a readable ZIP archive: {str(exc) or type(exc).__name__}") from None
    with archive:
        entries = _checked_entries(archive)
        if not entries:
            raise Rejected("the ZIP archive holds no files")
        for info in entries:
            yield from _extracted(archive, info)


def _checked_entries(archive: zipfile.ZipFile) -> list[zipfile.ZipInfo]:
    infos = archive.infolist()
    limit = settings.DICOM_MAX_FILES_PER_UPLOAD
    if len(infos) > limit:
        raise _unsafe(
            f"the ZIP archive has {len(infos)} entries, more than the limit of {limit}", resources=True
        )
    total = 0
    files = []
    for info in infos:
        _check_entry(info)
        if info.is_dir():
            continue
        total += info.file_size
        if total > settings.DICOM_MAX_UPLOAD_BYTES:
            raise _unsafe(
                f"the ZIP archive's entries declare more than {settings.DICOM_MAX_UPLOAD_BYTES} bytes in all",
                resources=True,
            )
        if not _is_junk(info.filename):
            files.append(info)
    return files


def _check_entry(info: zipfile.ZipInfo) -> None:
    name = info.filename
    if not name:
        raise Rejected("an entry of the ZIP archive has an empty name")
    parts = re.split(r"[\\/]", name)
    if name.startswith(("/", "\\")) or _DRIVE.match(name):
        raise _unsafe(f"entry {name[:100]!r} has an absolute path")
    if ".." in parts:
        raise _unsafe(f"entry {name[:100]!r} points outside the archive ('..')")
    if "\x00" in name:
        raise _unsafe("an entry's name contains a NUL character")
    if stat.S_ISLNK(info.external_attr >> 16):
        raise _unsafe(f"entry {name[:100]!r} is a symbolic link")
    if info.flag_bits & _ENCRYPTED:
        raise _unsafe(f"entry {name[:100]!r} is encrypted")
    if info.file_size > settings.DICOM_MAX_FILE_BYTES:
        raise _unsafe(
            f"entry {name[:100]!r} declares {info.file_size} bytes, more than the limit of "
            f"{settings.DICOM_MAX_FILE_BYTES}",
            resources=True,
        )
    ratio = settings.DICOM_ZIP_MAX_RATIO
    if info.file_size > ratio * max(info.compress_size, 1):
        raise _unsafe(
            f"entry {name[:100]!r} expands {info.file_size} bytes from {info.compress_size}, "
            f"more than {ratio} times (a ZIP bomb?)",
            resources=True,
        )


def _unsafe(reason: str, *, resources: bool = False) -> Rejected:
    code = FailureReason.OUT_OF_RESOURCES if resources else FailureReason.CANNOT_UNDERSTAND
    return Rejected(reason, code, security=True)


def _is_junk(name: str) -> bool:
    path = PurePosixPath(name.replace("\\", "/"))
    return path.name in _JUNK_NAMES or path.name.startswith("._") or "__MACOSX" in path.parts


def _extracted(archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> Iterator[ArchiveEntry]:
    with temporary_file() as (handle, path):
        try:
            with archive.open(info) as stream:
                copy_capped(stream, handle, limit=info.file_size)
        except Rejected:
            rejection = _unsafe(
                f"entry expands past the {info.file_size} bytes its header declares", resources=True
            )
            yield ArchiveEntry(info.filename, rejection=rejection)
            return
        except Exception as exc:  # zlib, LZMA, a header's bad UTF-8...: damage raises many kinds
            yield ArchiveEntry(info.filename, rejection=Rejected(f"entry cannot be extracted: {exc}"))
            return
        handle.flush()
        handle.seek(0)
        if is_zip(handle.read(4)):
            rejection = Rejected("a ZIP inside a ZIP is not accepted: unpack the inner archive first")
            yield ArchiveEntry(info.filename, rejection=rejection)
            return
        yield ArchiveEntry(info.filename, path=path)
