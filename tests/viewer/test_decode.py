"""viewer.decode: every frame of every decodable test file, read from the store, decodes as pydicom does."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset

from tests.viewer.dicomweb_helpers import (
    all_test_files,
    decode_uncompressed,
    frames_of,
    index_file,
    repaired_for_ingest,
)
from viewer.decode import FrameError, FrameSource, native_bytes

# Files pydicom itself cannot decode, each for a stated reason; every other file
# with pixel data in the pydicom wheel and pydicom-data must decode.
NOT_DECODABLE = {
    "JPEG-lossy.dcm": "deliberately invalid SOS parameters (JPGExtended.dcm is its fixed version)",
    "JPEG2000-embedded-sequence-delimiter.dcm": "4 codestream bytes overwritten with a delimiter, on purpose",
    "MR_truncated.dcm": "deliberately truncated pixel data",
    "badVR.dcm": "deliberately invalid Number of Frames ('1A')",
    "emri_small_jpeg_2k_lossless_too_short.dcm": "deliberately truncated: no pixel data element",
}
# Files pydicom decodes but ingest refuses, each for a stated reason.
REFUSED_BY_INGEST = {
    "MR_small_padded.dcm": "its Pixel Data is 128 bytes longer than 64x64x16 bits (padded on purpose)",
}


def _original(path: Path) -> Dataset | None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            ds = pydicom.dcmread(path)
        except Exception:  # files without a Part 10 header are ingest's negative tests
            return None
    if not any(k in ds for k in ("PixelData", "FloatPixelData", "DoubleFloatPixelData")):
        return None
    if "TransferSyntaxUID" not in ds.file_meta or "SOPInstanceUID" not in ds:
        return None
    return ds


IMAGE_FILES = [
    p
    for p in all_test_files()
    if p.name not in NOT_DECODABLE and p.name not in REFUSED_BY_INGEST and _original(p) is not None
]


def test_the_list_of_files_covers_every_codec():
    syntaxes = {str(_original(p).file_meta.TransferSyntaxUID) for p in IMAGE_FILES}
    assert {
        "1.2.840.10008.1.2",
        "1.2.840.10008.1.2.1",
        "1.2.840.10008.1.2.1.99",
        "1.2.840.10008.1.2.2",
        "1.2.840.10008.1.2.4.50",
        "1.2.840.10008.1.2.4.51",
        "1.2.840.10008.1.2.4.70",
        "1.2.840.10008.1.2.4.80",
        "1.2.840.10008.1.2.4.81",
        "1.2.840.10008.1.2.4.90",
        "1.2.840.10008.1.2.4.91",
        "1.2.840.10008.1.2.5",
    } <= syntaxes
    assert len(IMAGE_FILES) >= 100


def test_the_undecodable_files_really_are():
    for name in NOT_DECODABLE:
        path = next(p for p in all_test_files() if p.name == name)
        with pytest.raises(Exception):  # noqa: B017, PT011 (whatever pydicom raises, it fails)
            _pydicom_decode(path)


def _pydicom_decode(path: Path) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return pydicom.dcmread(path).pixel_array


@pytest.mark.django_db
@pytest.mark.parametrize("path", IMAGE_FILES, ids=lambda p: p.name)
def test_every_frame_decodes_to_pydicoms_pixels(path, empty_store):
    original = _original(path)
    expected = frames_of(original)
    instance = index_file(repaired_for_ingest(path.read_bytes())[0], name=path.name)

    with FrameSource(instance) as source:
        for number in range(1, instance.number_of_frames + 1):
            decoded = source.array(number)
            assert decoded.dtype == expected.dtype
            np.testing.assert_array_equal(decoded, expected[number - 1])
            uncompressed = source.uncompressed(number)
            np.testing.assert_array_equal(decode_uncompressed(uncompressed, original), expected[number - 1])


@pytest.mark.django_db
def test_a_frame_beyond_the_stored_file_is_an_error_not_garbage(empty_store):
    path = next(p for p in IMAGE_FILES if p.name == "CT_small.dcm")
    instance = index_file(path.read_bytes())
    instance.frame_offsets = [[[instance.size_bytes - 10, 1000]]]
    with FrameSource(instance) as source, pytest.raises(FrameError, match="shorter than its index"):
        source.stored(1)


@pytest.mark.django_db
def test_a_missing_stored_file_is_a_frame_error(empty_store):
    path = next(p for p in IMAGE_FILES if p.name == "CT_small.dcm")
    instance = index_file(path.read_bytes())
    (empty_store / instance.storage_key).unlink()
    with FrameSource(instance) as source, pytest.raises(FrameError, match="missing"):
        source.stored(1)


def test_native_bytes_packs_one_bit_frames_and_keeps_bits_allocated():
    assert native_bytes(np.array([[1, 0, 0, 0, 0, 0, 0, 1]], dtype=np.uint8), bits_allocated=1) == b"\x81"
    assert native_bytes(np.array([1, -2], dtype=np.int32), bits_allocated=16) == b"\x01\x00\xfe\xff"
    assert native_bytes(np.array([1], dtype=">u2"), bits_allocated=16) == b"\x01\x00"
