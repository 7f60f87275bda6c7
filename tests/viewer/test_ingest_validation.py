"""Bad input never crashes, never half-stores, always explains: one check at a time."""

from __future__ import annotations

import io
from typing import Any

import numpy as np
import pydicom
import pytest
from pydicom.encaps import encapsulate
from pydicom.uid import DeflatedExplicitVRLittleEndian, generate_uid

from tests.viewer.conftest import ct_dataset, dicom_file, part10, with_pixel_header
from viewer.ingest.errors import FailureReason
from viewer.ingest.service import IngestOutcome, ingest_file, ingest_upload

pytestmark = pytest.mark.django_db


def offer(data: bytes, *, upload: bool = False) -> IngestOutcome:
    if upload:
        [outcome] = ingest_upload(source=io.BytesIO(data), name="offered", origin="upload")
        return outcome
    return ingest_file(source=io.BytesIO(data), name="offered", origin="import")


def assert_refused(outcome: IngestOutcome, reason: str, code: int) -> None:
    assert outcome.status == "rejected"
    assert reason in outcome.reason, outcome.reason
    assert outcome.failure_code == code


def fixed_meta(name: str, **attributes: Any) -> bytes:
    """A pydicom test file with its file meta made consistent (and `attributes` set)."""
    ds = pydicom.dcmread(dicom_file(name))
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    for keyword, value in attributes.items():
        setattr(ds, keyword, value)
    buffer = io.BytesIO()
    ds.save_as(buffer)
    return buffer.getvalue()


def test_it_refuses_an_empty_file(nothing_added):
    assert_refused(offer(b""), "the file is empty", FailureReason.CANNOT_UNDERSTAND)
    assert_refused(offer(b"", upload=True), "the file is empty", FailureReason.CANNOT_UNDERSTAND)
    nothing_added()


def test_it_refuses_a_text_file(nothing_added):
    text = b"Patient notes\n" * 20
    assert_refused(offer(text), "not a DICOM Part 10 file", FailureReason.CANNOT_UNDERSTAND)
    assert_refused(offer(text, upload=True), "neither a DICOM Part 10 file", FailureReason.CANNOT_UNDERSTAND)
    nothing_added()


def test_it_refuses_a_header_claiming_65535_by_65535_pixels(nothing_added):
    data = with_pixel_header(part10(ct_dataset()), rows=65535, columns=65535)

    assert_refused(offer(data), "Rows 65535 exceeds the limit of 32768", FailureReason.OUT_OF_RESOURCES)
    nothing_added()


def test_it_bounds_the_decoded_size_before_decoding(nothing_added):
    data = part10(ct_dataset(Rows=30000, Columns=30000, NumberOfFrames=4))

    outcome = offer(data)

    assert_refused(
        outcome,
        "decode to 7200000000 bytes, more than the limit of 2147483648",
        FailureReason.OUT_OF_RESOURCES,
    )
    nothing_added()


def test_it_refuses_native_pixel_data_of_the_wrong_length(nothing_added):
    ds = ct_dataset(rows=8, columns=8)
    ds.PixelData = ds.PixelData[:-16]

    outcome = offer(part10(ds))

    assert_refused(
        outcome,
        "Pixel Data holds 112 bytes, but 8x8 pixels x 1 frames x 1 samples x 16 bits need 128",
        FailureReason.DOES_NOT_MATCH,
    )
    nothing_added()


def test_it_refuses_an_unsupported_transfer_syntax(nothing_added):
    ds = ct_dataset()
    ds.PixelData = encapsulate([b"\x00\x00\x01\xb3" + bytes(60)])
    data = part10(ds, "1.2.840.10008.1.2.4.100")

    outcome = offer(data)

    assert_refused(
        outcome,
        "transfer syntax 1.2.840.10008.1.2.4.100 (MPEG2 Main Profile / Main Level) is not supported",
        FailureReason.TRANSFER_SYNTAX_NOT_SUPPORTED,
    )
    nothing_added()


def test_it_refuses_a_missing_or_malformed_type_1_uid(nothing_added):
    missing = ct_dataset()
    del missing.SeriesInstanceUID
    malformed = ct_dataset(StudyInstanceUID="1.2.03.4")

    assert_refused(
        offer(part10(missing)), "Series Instance UID (0020,000E) is missing", FailureReason.DOES_NOT_MATCH
    )
    assert_refused(
        offer(part10(malformed)), "'1.2.03.4' is not a valid DICOM UID", FailureReason.DOES_NOT_MATCH
    )
    nothing_added()


def test_it_refuses_file_meta_that_names_another_instance(nothing_added):
    data = part10(ct_dataset())
    ds = pydicom.dcmread(io.BytesIO(data))
    ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    buffer = io.BytesIO()
    ds.save_as(buffer)

    assert_refused(offer(buffer.getvalue()), "does not match SOPInstanceUID", FailureReason.DOES_NOT_MATCH)
    nothing_added()


def test_it_refuses_a_number_of_frames_that_is_not_a_number(nothing_added):
    # badVR.dcm's damage, once its file meta is made consistent.
    assert_refused(
        offer(fixed_meta("badVR.dcm")), "NumberOfFrames '1A' is not an integer", FailureReason.DOES_NOT_MATCH
    )
    nothing_added()


def test_it_refuses_a_complete_rt_plan_as_not_an_image(nothing_added):
    outcome = offer(fixed_meta("rtplan.dcm"))

    assert_refused(
        outcome,
        "RT Plan Storage (1.2.840.10008.5.1.4.1.1.481.5) is not supported",
        FailureReason.SOP_CLASS_NOT_SUPPORTED,
    )
    nothing_added()


def test_it_refuses_zero_frames(nothing_added):
    outcome = offer(part10(ct_dataset(NumberOfFrames=0)))

    assert_refused(
        outcome, "Rows, Columns and Number of Frames must be at least 1", FailureReason.DOES_NOT_MATCH
    )
    nothing_added()


def test_it_refuses_an_image_without_pixel_data(nothing_added):
    ds = ct_dataset()
    del ds.PixelData

    assert_refused(offer(part10(ds)), "CT Image Storage requires Pixel Data", FailureReason.DOES_NOT_MATCH)
    nothing_added()


def test_it_refuses_encapsulated_frames_that_do_not_match_number_of_frames(nothing_added):
    # emri_small_RLE.dcm has 10 fragments and a Basic Offset Table listing 10 frames.
    data = fixed_meta("emri_small_RLE.dcm", NumberOfFrames=12)

    outcome = offer(data)

    assert_refused(
        outcome,
        "the offset table lists 10 frames, not the 12 of Number of Frames",
        FailureReason.DOES_NOT_MATCH,
    )
    assert (
        outcome.sop_instance_uid == pydicom.dcmread(io.BytesIO(data)).SOPInstanceUID
    )  # for STOW's FailedSOPSequence
    nothing_added()


def test_it_refuses_fragments_without_an_offset_table_that_do_not_make_the_frames(nothing_added):
    ds = ct_dataset(NumberOfFrames=3)
    ds.PixelData = encapsulate([b"one", b"two"], has_bot=False)
    data = part10(ds, pydicom.uid.RLELossless)

    assert_refused(
        offer(data), "the encapsulated Pixel Data has 2 fragments for 3 frames", FailureReason.DOES_NOT_MATCH
    )
    nothing_added()


def test_it_refuses_a_file_over_the_size_limit(settings, nothing_added):
    settings.DICOM_MAX_FILE_BYTES = 2048

    outcome = offer(part10(ct_dataset(rows=64, columns=64)))

    assert_refused(outcome, "larger than the limit of 2048 bytes", FailureReason.OUT_OF_RESOURCES)
    nothing_added()


def test_it_refuses_a_deflated_data_set_that_inflates_past_the_limit(settings, nothing_added):
    ds = ct_dataset(rows=512, columns=512)
    ds.PixelData = np.zeros((512, 512), dtype="<u2").tobytes()
    data = part10(ds, DeflatedExplicitVRLittleEndian)
    settings.DICOM_MAX_FILE_BYTES = 64 * 1024
    assert len(data) < settings.DICOM_MAX_FILE_BYTES

    outcome = offer(data)

    assert_refused(
        outcome, "the deflated data set inflates to more than 65536 bytes", FailureReason.OUT_OF_RESOURCES
    )
    nothing_added()


def test_a_deflated_file_within_the_limits_is_stored_without_frame_offsets(empty_store):
    outcome = offer(part10(ct_dataset(), DeflatedExplicitVRLittleEndian))

    assert outcome.status == "stored"
    from viewer.models import Instance

    instance = Instance.objects.get(pk=outcome.instance_pk)
    assert (instance.number_of_frames, instance.frame_offsets) == (1, [])


@pytest.mark.parametrize(
    "name", ["JPEGLSNearLossless_08.dcm", "SC_rgb_jls_lossy_line.dcm", "UN_sequence.dcm", "rtdose.dcm"]
)
def test_test_files_refused_only_for_identification_are_stored_once_identified(name, empty_store):
    ds = pydicom.dcmread(dicom_file(name))
    ds.StudyInstanceUID = ds.get("StudyInstanceUID") or generate_uid()
    ds.SeriesInstanceUID = ds.get("SeriesInstanceUID") or generate_uid()
    if "SOPInstanceUID" not in ds:
        ds.SOPInstanceUID, ds.SOPClassUID = generate_uid(), pydicom.uid.SecondaryCaptureImageStorage
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    buffer = io.BytesIO()
    ds.save_as(buffer)

    outcome = offer(buffer.getvalue())

    if name == "UN_sequence.dcm":  # a bare fragment: once identified it still has no pixel data
        assert_refused(outcome, "requires Pixel Data", FailureReason.DOES_NOT_MATCH)
    else:
        assert outcome.status == "stored", outcome.reason


def test_the_service_keeps_working_after_hostile_input(empty_store):
    offer(with_pixel_header(part10(ct_dataset()), rows=65535, columns=65535))
    offer(b"\x00" * 10)

    assert offer(part10(ct_dataset())).status == "stored"
