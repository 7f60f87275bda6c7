"""Hostile ZIP archives through the upload endpoint and `import_dicom` (the ways in that take
archives): bombs, names escaping the archive, links, encryption, damage.

An unsafe archive is refused whole before anything is extracted; an entry that cannot be
extracted is refused on its own. Either way nothing enters the store, the upload spool or the
index, no file appears where an entry's name points, and the next request works.
tests/viewer/test_ingest_archive.py checks the service's archive checks one by one; here other
archives go through the HTTP and command-line ways in.
"""

from __future__ import annotations

import struct
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.security.helpers import import_dicom, keeps_serving, upload
from tests.viewer.conftest import (
    ct_dataset,
    part10,
    stored_files,
    zip_bomb,
    zip_of,
    zip_with_encrypted_entry,
    zip_with_symlink,
)
from viewer.ingest.errors import FailureReason
from viewer.models import Instance

pytestmark = pytest.mark.django_db

NAME = "hostile.zip"
WHOLE = ""  # the archive itself is refused, not one of its entries


@dataclass(frozen=True)
class HostileZip:
    """An archive refused with `reason` and `code`: whole, or its one entry `entry`."""

    id: str
    build: Callable[[], bytes]
    reason: str
    code: int
    entry: str = WHOLE


def _dicom() -> bytes:
    return part10(ct_dataset())


def _one(name: str) -> Callable[[], bytes]:
    return lambda: zip_of([(name, _dicom())])


def _patched(data: bytes, *, local: int, central: int, value: bytes) -> bytes:
    """`data` with `value` written at offset `local` of the first local header and offset
    `central` of the first central directory header."""
    patched = bytearray(data)
    for signature, offset in ((b"PK\x03\x04", local), (b"PK\x01\x02", central)):
        start = patched.find(signature) + offset
        patched[start : start + len(value)] = value
    return bytes(patched)


def _stored(name: str = "scan/IM0001.dcm") -> bytes:
    return zip_of([(name, _dicom())], compression=zipfile.ZIP_STORED)


def _aes_method() -> bytes:
    # Compression method 99 is WinZip AES: the central directory reads, the entry cannot be opened.
    return _patched(_stored(), local=8, central=10, value=struct.pack("<H", 99))


def _bad_crc() -> bytes:
    data = bytearray(_stored())
    data[data.find(b"DICM") + 40] ^= 0xFF  # one byte of the entry's content, after its header
    return bytes(data)


def _declaring_3_gib() -> bytes:
    return _patched(_stored(), local=22, central=24, value=struct.pack("<I", 3 * 1024**3))


def _cut_before_its_directory() -> bytes:
    data = _stored()
    return data[: data.find(b"PK\x01\x02")]


def _needing_zip_version_6_4() -> bytes:
    return _patched(_stored(), local=4, central=6, value=struct.pack("<H", 64))


def _with_an_empty_name() -> bytes:
    return zip_of([("", _dicom())])


def _name_not_utf8_in_its_local_header() -> bytes:
    data = bytearray(zip_of([("scan/é.dcm", _dicom())]))  # flagged UTF-8 (general purpose bit 11)
    name = data.find("é".encode())  # the local header's copy, which extraction reads
    data[name : name + 2] = b"\xff\xfe"
    return bytes(data)


def _damaged_lzma() -> bytes:
    data = bytearray(zip_of([("scan/IM0001.dcm", _dicom())], compression=zipfile.ZIP_LZMA))
    start = data.find(b"scan/IM0001.dcm") + len("scan/IM0001.dcm") + 20  # into the compressed data
    data[start : start + 16] = b"\xff" * 16
    return bytes(data)


def _lzma_bomb() -> bytes:
    return zip_of([("scan/IM0001.dcm", bytes(8 * 1024 * 1024))], compression=zipfile.ZIP_LZMA)


def _nested_bomb() -> bytes:
    return zip_of([("inner.zip", zip_bomb())], compression=zipfile.ZIP_STORED)


def _only_desktop_debris() -> bytes:
    return zip_of([(".DS_Store", b"finder"), ("__MACOSX/._IM0001", b"fork"), ("scan/Thumbs.db", b"thumbs")])


def _many_entries() -> bytes:
    return zip_of([(f"scan/IM{n:04}.dcm", b"x") for n in range(11)])


UNSAFE = "points outside the archive ('..')"
ABSOLUTE = "has an absolute path"
HOSTILE_ZIPS = [
    HostileZip(
        "parent_folders",
        _one("scan/../../../../etc/cron.d/overread"),
        UNSAFE,
        FailureReason.CANNOT_UNDERSTAND,
    ),
    HostileZip(
        "backslash_parents", _one("..\\..\\..\\Startup\\run.dcm"), UNSAFE, FailureReason.CANNOT_UNDERSTAND
    ),
    HostileZip(
        "absolute_into_the_store",
        _one("/var/lib/overread/media/x.dcm"),
        ABSOLUTE,
        FailureReason.CANNOT_UNDERSTAND,
    ),
    HostileZip("windows_unc_path", _one("\\\\evil\\share\\x.dcm"), ABSOLUTE, FailureReason.CANNOT_UNDERSTAND),
    HostileZip("drive_relative_path", _one("C:evil.dcm"), ABSOLUTE, FailureReason.CANNOT_UNDERSTAND),
    HostileZip(
        "symlink_to_a_folder",
        lambda: zip_with_symlink("../../../../etc"),
        "entry 'scan/IM0001.dcm' is a symbolic link",
        FailureReason.CANNOT_UNDERSTAND,
    ),
    HostileZip(
        "encrypted_entry",
        lambda: zip_with_encrypted_entry(_dicom()),
        "entry 'scan/IM0001.dcm' is encrypted",
        FailureReason.CANNOT_UNDERSTAND,
    ),
    HostileZip(
        "lzma_bomb",
        _lzma_bomb,
        "expands 8388608 bytes from",
        FailureReason.OUT_OF_RESOURCES,
    ),
    HostileZip(
        "entry_declaring_3_gib",
        _declaring_3_gib,
        "declares 3221225472 bytes, more than the limit of",
        FailureReason.OUT_OF_RESOURCES,
    ),
    HostileZip(
        "more_entries_than_allowed",
        _many_entries,
        "the ZIP archive has 11 entries, more than the limit of 10",
        FailureReason.OUT_OF_RESOURCES,
    ),
    HostileZip(
        "cut_before_its_directory",
        _cut_before_its_directory,
        "not a readable ZIP archive",
        FailureReason.CANNOT_UNDERSTAND,
    ),
    HostileZip(
        "only_desktop_debris",
        _only_desktop_debris,
        "the ZIP archive holds no files",
        FailureReason.CANNOT_UNDERSTAND,
    ),
    HostileZip(
        "needing_zip_version_6_4",
        _needing_zip_version_6_4,
        "not a readable ZIP archive: zip file version 6.4",
        FailureReason.CANNOT_UNDERSTAND,
    ),
    HostileZip(
        "entry_with_an_empty_name",
        _with_an_empty_name,
        "an entry of the ZIP archive has an empty name",
        FailureReason.CANNOT_UNDERSTAND,
    ),
    HostileZip(
        "name_not_utf8_in_its_local_header",
        _name_not_utf8_in_its_local_header,
        "entry cannot be extracted: 'utf-8' codec can't decode byte 0xff",
        FailureReason.CANNOT_UNDERSTAND,
        entry="scan/é.dcm",
    ),
    HostileZip(
        "damaged_lzma_entry",
        _damaged_lzma,
        "entry cannot be extracted: Corrupt input data",
        FailureReason.CANNOT_UNDERSTAND,
        entry="scan/IM0001.dcm",
    ),
    HostileZip(
        "nested_zip_bomb",
        _nested_bomb,
        "a ZIP inside a ZIP is not accepted",
        FailureReason.CANNOT_UNDERSTAND,
        entry="inner.zip",
    ),
    HostileZip(
        "aes_compression_method",
        _aes_method,
        "entry cannot be extracted: That compression method is not supported",
        FailureReason.CANNOT_UNDERSTAND,
        entry="scan/IM0001.dcm",
    ),
    HostileZip(
        "content_not_matching_its_crc",
        _bad_crc,
        "entry cannot be extracted: Bad CRC-32 for file 'scan/IM0001.dcm'",
        FailureReason.CANNOT_UNDERSTAND,
        entry="scan/IM0001.dcm",
    ),
]


@pytest.mark.parametrize("hostile", HOSTILE_ZIPS, ids=lambda hostile: hostile.id)
def test_the_upload_and_the_import_refuse_it_with_the_same_reason(
    hostile, session, token, untouched, tmp_path, settings
):
    settings.DICOM_MAX_FILES_PER_UPLOAD = 10
    data = hostile.build()
    shown = f"{NAME}/{hostile.entry}" if hostile.entry else NAME

    response = upload(session, NAME, data)
    archive = tmp_path / "in" / NAME
    archive.parent.mkdir()
    archive.write_bytes(data)
    imported = import_dicom(archive)

    assert response.status_code == 422  # nothing stored
    [result] = response.json()["results"]
    assert (result["name"], result["status"]) == (shown, "rejected")
    assert hostile.reason in result["reason"]
    assert result["failure_code"] == f"0x{hostile.code:04X}"
    assert imported.status == 1
    assert f"  rejected {tmp_path / 'in' / shown}: " in imported.err
    assert hostile.reason in imported.err
    untouched()
    assert not (tmp_path / "etc").exists()
    assert not Path("/var/lib/overread/media/x.dcm").exists()
    keeps_serving(token)


def test_percent_encoded_dots_in_an_entry_name_are_only_a_label(session, empty_store, tmp_path):
    ds = ct_dataset()
    archive = zip_of([("%2e%2e/%2e%2e/etc/passwd", part10(ds))])

    [result] = upload(session, NAME, archive).json()["results"]

    assert (result["name"], result["status"]) == (f"{NAME}/%2e%2e/%2e%2e/etc/passwd", "stored")
    key = Instance.objects.get(sop_instance_uid=ds.SOPInstanceUID).storage_key
    assert stored_files(empty_store) == {key}  # stored under its UIDs, not under its name
    assert "passwd" not in key
    assert "%2e" not in key
