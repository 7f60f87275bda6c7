"""Fixtures for the viewer tests: pydicom's test files, small DICOM built here, hostile inputs.

Hostile inputs are built in the test, never stored in the repository: a ZIP
bomb (a high-ratio entry), entries escaping the archive, a symbolic link, an
encrypted entry, and headers claiming more pixels than any limit allows.
"""

from __future__ import annotations

import io
import os
import stat
import zipfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
import pytest
from django.core.cache import cache
from django.test import Client
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import UID, ExplicitVRLittleEndian, generate_uid

from viewer.models import Instance, Patient, Series, Study


# --- The store and what is in it --------------------------------------------------------
@pytest.fixture
def empty_store(settings: Any, tmp_path: Path) -> Path:
    """A fresh, empty DICOM store (MEDIA_ROOT) for one test."""
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.MEDIA_ROOT.mkdir()
    return settings.MEDIA_ROOT


def stored_files(root: Path) -> set[str]:
    """Every file under the store, relative to it."""
    return {str(path.relative_to(root)) for path in root.rglob("*") if path.is_file()}


def index_counts() -> tuple[int, int, int, int]:
    return (Patient.objects.count(), Study.objects.count(), Series.objects.count(), Instance.objects.count())


@pytest.fixture
def nothing_added(empty_store: Path, db: Any) -> Callable[[], None]:
    """Call it at the end of a test: no file entered the store and no row the index."""
    files_before, rows_before = stored_files(empty_store), index_counts()

    def check() -> None:
        assert stored_files(empty_store) == files_before, "a refused input left a file in the store"
        assert index_counts() == rows_before, "a refused input left rows in the index"

    return check


# --- pydicom's test files -------------------------------------------------------------------
def dicom_file(name: str) -> Path:
    """One of the pydicom wheel's (or pydicom-data's) test files, by name."""
    path = get_testdata_file(name)
    if path is None:
        pytest.fail(f"pydicom test file {name} is not installed (pip install pydicom-data)")
    return Path(path)


def dicom_test_files() -> list[Path]:
    """Every .dcm test file of the pydicom wheel and of pydicom-data."""
    return sorted({Path(p) for p in pydicom.data.get_testdata_files("*.dcm")}, key=lambda p: p.name)


# --- DICOM built in the test --------------------------------------------------------------------
def ct_dataset(*, rows: int = 8, columns: int = 8, **attributes: Any) -> Dataset:
    """A small, valid single-frame CT image; `attributes` override any element."""
    ds = Dataset()
    ds.SOPClassUID = pydicom.uid.CTImageStorage
    ds.SOPInstanceUID = generate_uid()
    ds.StudyInstanceUID = generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.PatientID, ds.PatientName, ds.Modality = "PAT-7", "Test^Patient", "CT"
    ds.StudyDate, ds.StudyTime, ds.AccessionNumber = "20250102", "093000", "ACC-7"
    ds.SeriesNumber, ds.InstanceNumber = 2, 1
    ds.ImagePositionPatient, ds.ImageOrientationPatient = [1.5, -2.0, 30.0], [1, 0, 0, 0, 1, 0]
    ds.PixelSpacing, ds.SliceThickness = [0.5, 0.5], 1.25
    ds.Rows, ds.Columns = rows, columns
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.PixelData = (np.arange(rows * columns, dtype="<u2") % 4096).tobytes()
    for keyword, value in attributes.items():
        setattr(ds, keyword, value)
    return ds


def part10(ds: Dataset, transfer_syntax_uid: str = ExplicitVRLittleEndian) -> bytes:
    """`ds` written as a Part 10 file: preamble, "DICM", file meta, data set."""
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.file_meta.TransferSyntaxUID = UID(transfer_syntax_uid)
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def with_pixel_header(data: bytes, *, rows: int, columns: int) -> bytes:
    """A Part 10 file whose header claims rows x columns; the pixel data stays as it was."""
    ds = pydicom.dcmread(io.BytesIO(data))
    ds.Rows, ds.Columns = rows, columns
    return part10(ds, ds.file_meta.TransferSyntaxUID)


# --- Archives -------------------------------------------------------------------------------------
def zip_of(entries: Iterable[tuple[str, bytes]], *, compression: int = zipfile.ZIP_DEFLATED) -> bytes:
    """A ZIP archive of (name, content) entries, names taken as given (even hostile ones)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=compression) as archive:
        for name, content in entries:
            archive.writestr(zipfile.ZipInfo(name), content, compress_type=compression)
    return buffer.getvalue()


def zip_bomb(*, expanded_bytes: int = 8 * 1024 * 1024) -> bytes:
    """One entry of zeros: a few KiB that expand about a thousand times."""
    return zip_of([("scan/IM0001.dcm", bytes(expanded_bytes))])


def zip_with_symlink(target: str = "/etc/passwd") -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        link = zipfile.ZipInfo("scan/IM0001.dcm")
        link.create_system = 3  # Unix: the mode bits below are meant
        link.external_attr = (stat.S_IFLNK | 0o777) << 16
        archive.writestr(link, target)
    return buffer.getvalue()


def zip_with_encrypted_entry(content: bytes) -> bytes:
    """An entry flagged as encrypted (the flag is what a reader sees first)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr(zipfile.ZipInfo("scan/IM0001.dcm"), content)
    data = bytearray(buffer.getvalue())
    # General purpose flag bit 0 in the local header (offset 6) and the central directory (offset 8).
    data[6] |= 0x01
    central = data.rfind(b"PK\x01\x02")
    data[central + 8] |= 0x01
    return bytes(data)


def write(tmp_path: Path, name: str, content: bytes) -> Path:
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    return path


@pytest.fixture
def no_upload_temp_files(settings: Any, tmp_path: Path) -> Callable[[], None]:
    """Points temporary ingest files at a folder of their own; call it to check none were left."""
    folder = tmp_path / "upload-tmp"
    folder.mkdir()
    settings.FILE_UPLOAD_TEMP_DIR = str(folder)

    def check() -> None:
        assert os.listdir(folder) == [], "ingest left temporary files behind"

    return check


@pytest.fixture(autouse=True)
def _fresh_cache() -> None:
    """The DICOMweb audit remembers in the cache which studies a client has read."""
    cache.clear()


@pytest.fixture
def reader(rita: Any) -> Client:
    """A test client signed in as Rita, a radiologist."""
    client = Client()
    client.force_login(rita)
    return client
