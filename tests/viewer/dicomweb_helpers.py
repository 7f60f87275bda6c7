"""Test data for the DICOMweb tests: studies put into the index, STOW-RS bodies, frames decoded.

`index_file` puts one Part 10 file into the store and the index through the
ingest service (`viewer.ingest.service.ingest_file`), as every way in does.
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
from pydicom.data.data_manager import DataTypes, external_data_sources
from pydicom.dataset import Dataset
from pydicom.encaps import encapsulate
from pydicom.pixels import pixel_array
from pydicom.uid import UID, ExplicitVRLittleEndian, generate_uid

from tests.viewer.conftest import part10
from viewer.ingest.service import ingest_file
from viewer.models import Instance
from viewer.store import is_valid_uid


def index_file(source: Path | bytes, *, name: str = "test.dcm") -> Instance:
    """Stores and indexes one Part 10 file through the ingest service; returns its Instance row."""
    data = source.read_bytes() if isinstance(source, Path) else source
    outcome = ingest_file(source=io.BytesIO(data), name=name, origin="import")
    assert outcome.status in ("stored", "duplicate"), f"ingest refused {name}: {outcome.reason}"
    return Instance.objects.select_related("series__study__patient").get(pk=outcome.instance_pk)


def stow_body(parts: Sequence[bytes], boundary: str = "overread-test-boundary") -> tuple[bytes, str]:
    """A multipart/related STOW-RS request body of Part 10 files, and its Content-Type."""
    body = io.BytesIO()
    for part in parts:
        body.write(f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode())
        body.write(part)
        body.write(b"\r\n")
    body.write(f"--{boundary}--\r\n".encode())
    return body.getvalue(), f'multipart/related; type="application/dicom"; boundary={boundary}'


def split_multipart(body: bytes, content_type: str) -> list[tuple[dict[str, str], bytes]]:
    """The parts of a multipart/related response: (headers, content) each."""
    boundary = next(
        param.split("=", 1)[1].strip('"')
        for param in (p.strip() for p in content_type.split(";"))
        if param.lower().startswith("boundary=")
    )
    delimiter = f"--{boundary}".encode()
    assert body.startswith(delimiter), "a multipart body starts with its boundary"
    parts = []
    for chunk in body.split(b"\r\n" + delimiter)[:-1]:
        chunk = chunk.removeprefix(delimiter)
        head, _, content = chunk.removeprefix(b"\r\n").partition(b"\r\n\r\n")
        headers = dict(line.split(": ", 1) for line in head.decode().split("\r\n") if line)
        parts.append((headers, content))
    assert body.rstrip(b"\r\n").endswith(delimiter + b"--"), "a multipart body ends with the close delimiter"
    return parts


def make_ct_series(
    count: int = 3, *, size: int = 16, study_uid: str | None = None, **header: Any
) -> list[bytes]:
    """`count` small uncompressed CT slices of one series, as Part 10 bytes."""
    study_uid = study_uid or generate_uid()
    series_uid = generate_uid()
    files = []
    for index in range(count):
        ds = Dataset()
        ds.SOPClassUID = pydicom.uid.CTImageStorage
        ds.SOPInstanceUID = generate_uid()
        ds.StudyInstanceUID, ds.SeriesInstanceUID = study_uid, series_uid
        ds.PatientID, ds.PatientName, ds.Modality = "P-1", "Doe^Jane", "CT"
        ds.StudyDate, ds.StudyTime, ds.AccessionNumber = "20240315", "101500", "ACC-1"
        ds.StudyDescription, ds.SeriesNumber, ds.InstanceNumber = "Chest CT", 1, index + 1
        ds.ImagePositionPatient, ds.ImageOrientationPatient = [0, 0, index * 2.5], [1, 0, 0, 0, 1, 0]
        ds.PixelSpacing, ds.SliceThickness = [0.7, 0.7], 2.5
        ds.Rows = ds.Columns = size
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 1
        ds.RescaleIntercept, ds.RescaleSlope, ds.WindowCenter, ds.WindowWidth = -1024, 1, 40, 400
        for keyword, value in header.items():
            setattr(ds, keyword, value)
        pixels = ((np.arange(size * size, dtype="<i2") * (index + 1)) % 2000).reshape(size, size)
        ds.PixelData = pixels.tobytes()
        files.append(part10(ds))
    return files


def wheel_test_files() -> list[Path]:
    """The .dcm files shipped in the pydicom wheel."""
    return sorted((Path(pydicom.data.__file__).parent / "test_files").glob("*.dcm"))


def all_test_files() -> list[Path]:
    """The pydicom wheel's and pydicom-data's .dcm files.

    Globbed directly: pydicom's own `get_testdata_files` also tries to download
    the files it lacks, which offline costs 15 s per call.
    """
    external = [
        Path(path)
        for source in external_data_sources().values()
        for path in source.get_paths("*.dcm", DataTypes.DATASET)
    ]
    return sorted({*wheel_test_files(), *external}, key=lambda path: (path.name, str(path)))


def repaired_for_ingest(data: bytes) -> tuple[bytes, list[str]]:
    """The file with header faults ingest rightly refuses mended, pixel data untouched; and what was mended.

    A few pydicom test files lack valid Type 1 UIDs, or name another SOP
    Instance UID in their meta header, yet carry codecs found nowhere else
    (JPEG-LS near-lossless, for one); mended, they still test those codecs.
    """
    ds = pydicom.dcmread(io.BytesIO(data))
    repairs = []
    for keyword in ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID"):
        if not is_valid_uid(str(ds.get(keyword, ""))):
            setattr(ds, keyword, generate_uid())
            repairs.append(f"new {keyword}")
    if ds.file_meta.get("MediaStorageSOPInstanceUID") != ds.SOPInstanceUID:
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        repairs.append("MediaStorageSOPInstanceUID = SOPInstanceUID")
    if not repairs:
        return data, []
    buffer = io.BytesIO()
    ds.save_as(buffer)
    return buffer.getvalue(), repairs


# --- Frames as a client receives them, decoded the way pydicom decodes the original ----------------
_PIXEL_MODULE = (
    "Rows",
    "Columns",
    "SamplesPerPixel",
    "BitsAllocated",
    "BitsStored",
    "HighBit",
    "PixelRepresentation",
    "PhotometricInterpretation",
    "PlanarConfiguration",
    "RedPaletteColorLookupTableDescriptor",
)


def decode_uncompressed(data: bytes, original: Dataset) -> np.ndarray:
    """Uncompressed frame bytes, decoded as pydicom decodes a native one-frame data set.

    Frames that were stored compressed come colour-by-pixel and RGB when they
    were YBR (viewer.decode); native frames come exactly as stored.
    """
    ds = _one_frame(original)
    if original.file_meta.TransferSyntaxUID.is_encapsulated:
        if str(original.PhotometricInterpretation).startswith("YBR"):
            ds.PhotometricInterpretation = "RGB"
        if "PlanarConfiguration" in ds:
            ds.PlanarConfiguration = 0
    return _decoded(ds, original, data, ExplicitVRLittleEndian)


def decode_as_stored(data: bytes, transfer_syntax_uid: str, original: Dataset) -> np.ndarray:
    """A frame sent as stored (transfer-syntax=*), decoded by pydicom in the syntax it came in."""
    ds = _one_frame(original)
    if UID(transfer_syntax_uid).is_encapsulated:
        return _decoded(ds, original, encapsulate([data]), transfer_syntax_uid)
    return _decoded(ds, original, data, transfer_syntax_uid)


def _one_frame(original: Dataset) -> Dataset:
    ds = Dataset()
    for keyword in _PIXEL_MODULE:
        if keyword in original:
            setattr(ds, keyword, original[keyword].value)
    ds.NumberOfFrames = 1
    return ds


def _decoded(ds: Dataset, original: Dataset, data: bytes, transfer_syntax_uid: str) -> np.ndarray:
    ds.file_meta = pydicom.dataset.FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = UID(transfer_syntax_uid)
    keyword = next(k for k in ("PixelData", "FloatPixelData", "DoubleFloatPixelData") if k in original)
    vr = "OB" if keyword == "PixelData" else original[keyword].VR
    ds[keyword] = pydicom.DataElement(keyword, vr, bytes(data))  # dicomweb-client gives bytearrays
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return pixel_array(ds)


def frames_of(original: Dataset) -> np.ndarray:
    """pydicom's own decode of a whole file, one entry per frame."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        array = original.pixel_array
    return array if int(original.get("NumberOfFrames") or 1) > 1 else array[np.newaxis]
