"""The ingest service stores each decodable file once, indexes it, and refuses the rest with a reason.

Every .dcm test file of the pydicom wheel and pydicom-data is offered: the ones
listed in REFUSED must be refused with that reason, every other one must be
stored, indexed with frame offsets that point at exactly pydicom's frames, and
reported as a duplicate when offered again.
"""

from __future__ import annotations

import hashlib
import io
import tracemalloc
from pathlib import Path
from typing import Any

import pydicom
import pytest
from pydicom.dataset import Dataset
from pydicom.encaps import generate_frames
from pydicom.pixels.utils import get_expected_length
from pydicom.uid import generate_uid

from audit.models import AuditEvent
from tests.viewer.conftest import ct_dataset, dicom_test_files, part10, stored_files
from viewer.ingest.errors import FailureReason
from viewer.ingest.service import IngestOutcome, ingest_file
from viewer.models import Instance, Study

pytestmark = pytest.mark.django_db

# The pydicom test files Overread refuses, and why (a substring of the reason).
_NOT_PART10 = "no 'DICM' prefix after the 128-byte preamble"
_NO_STUDY_UID = "Study Instance UID (0020,000D) is missing"
_META_MISMATCH = "MediaStorageSOPInstanceUID (0002,0003)"
REFUSED = {
    # Not Part 10 (ACR-NEMA style or bare data sets)
    "OT-PAL-8-face.dcm": _NOT_PART10,
    "ExplVR_BigEndNoMeta.dcm": _NOT_PART10,
    "ExplVR_LitEndNoMeta.dcm": _NOT_PART10,
    "no_meta.dcm": _NOT_PART10,
    "rtstruct.dcm": _NOT_PART10,
    # Damaged on purpose
    "MR_truncated.dcm": "the file is truncated: element (7FE0,0010) ends 62 bytes after the end of the file",
    "rtplan_truncated.dcm": "the file is truncated: element (300A,00B0) has 711 of its 976 bytes",
    "emri_small_jpeg_2k_lossless_too_short.dcm": "End of file reached before delimiter (FFFE,E0DD) found",
    "meta_missing_tsyntax.dcm": "no Transfer Syntax UID (0002,0010)",
    "JPEG-lossy.dcm": "frame 1 cannot be decoded",
    "JPEG2000-embedded-sequence-delimiter.dcm": "claims 1024x3722445056 pixels",
    "MR_small_padded.dcm": "Pixel Data holds 8320 bytes, but 64x64 pixels x 1 frames x 1 samples x 16 bits",
    # Inconsistent identification
    "bad_sequence.dcm": "is not a valid DICOM UID",
    "badVR.dcm": _META_MISMATCH,
    "rtdose.dcm": _META_MISMATCH,
    "rtdose_1frame.dcm": _META_MISMATCH,
    "rtdose_expb.dcm": _META_MISMATCH,
    "rtdose_expb_1frame.dcm": _META_MISMATCH,
    "rtplan.dcm": _META_MISMATCH,
    # Fragments without their Type 1 UIDs (test_ingest_validation fills them in and stores them)
    "JPEGLSNearLossless_08.dcm": _NO_STUDY_UID,
    "JPEGLSNearLossless_16.dcm": _NO_STUDY_UID,
    "SC_rgb_jls_lossy_line.dcm": _NO_STUDY_UID,
    "SC_rgb_jls_lossy_sample.dcm": _NO_STUDY_UID,
    "UN_sequence.dcm": _NO_STUDY_UID,
    "empty_charset_LEI.dcm": _NO_STUDY_UID,
    "nested_priv_SQ.dcm": _NO_STUDY_UID,
    "no_meta_group_length.dcm": _NO_STUDY_UID,
    "priv_SQ.dcm": _NO_STUDY_UID,
    # Not something a reading workstation reads
    "waveform_ecg.dcm": "12-lead ECG Waveform Storage (1.2.840.10008.5.1.4.1.1.9.1.1) is not supported",
}
TEST_FILES = dicom_test_files()


def ingest(path: Path | bytes, name: str = "offered.dcm", **kwargs: Any) -> IngestOutcome:
    source = path if isinstance(path, Path) else io.BytesIO(path)
    return ingest_file(source=source, name=name, origin=kwargs.pop("origin", "import"), **kwargs)


def pydicom_frames(path: Path, instance: Instance) -> list[bytes]:
    ds = pydicom.dcmread(path)
    if ds.file_meta.TransferSyntaxUID.is_encapsulated:
        return list(generate_frames(ds.PixelData, number_of_frames=instance.number_of_frames))
    size = get_expected_length(ds, "bytes") // instance.number_of_frames  # pixel data may end in a pad byte
    return [ds.PixelData[index * size : (index + 1) * size] for index in range(instance.number_of_frames)]


def stored_frames(store: Path, instance: Instance) -> list[bytes]:
    data = (store / instance.storage_key).read_bytes()
    return [
        b"".join(data[offset : offset + length] for offset, length in frame)
        for frame in instance.frame_offsets
    ]


def test_the_file_list_covers_the_wheel_and_pydicom_data():
    names = {path.name for path in TEST_FILES}
    assert {"CT_small.dcm", "MR_truncated.dcm", "emri_small.dcm", "693_J2KR.dcm"} <= names
    assert set(REFUSED) <= names


@pytest.mark.parametrize("path", [p for p in TEST_FILES if p.name in REFUSED], ids=lambda p: p.name)
def test_it_refuses_a_damaged_or_unsupported_test_file_with_its_reason(path, nothing_added):
    outcome = ingest(path, name=path.name)

    assert outcome.status == "rejected"
    assert REFUSED[path.name] in outcome.reason
    assert outcome.failure_code is not None
    assert outcome.name == path.name
    nothing_added()


@pytest.mark.parametrize("path", [p for p in TEST_FILES if p.name not in REFUSED], ids=lambda p: p.name)
def test_it_stores_every_other_test_file_once_with_frames_where_the_index_says(path, empty_store):
    outcome = ingest(path, name=path.name)

    assert outcome.status == "stored", outcome.reason
    instance = Instance.objects.select_related("series__study").get(pk=outcome.instance_pk)
    ds = pydicom.dcmread(path)
    assert instance.sop_instance_uid == outcome.sop_instance_uid == ds.SOPInstanceUID
    assert instance.series.study.study_uid == ds.StudyInstanceUID
    assert instance.transfer_syntax_uid == ds.file_meta.TransferSyntaxUID
    assert instance.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert (empty_store / instance.storage_key).read_bytes() == path.read_bytes()
    assert instance.metadata["00020010"] == {"vr": "UI", "Value": [str(ds.file_meta.TransferSyntaxUID)]}
    if "PixelData" in ds:
        assert instance.metadata["7FE00010"]["BulkDataURI"] == "bulkdata/7FE00010"
        assert instance.number_of_frames == int(ds.get("NumberOfFrames") or 1)
        if not ds.file_meta.TransferSyntaxUID.is_deflated:
            assert stored_frames(empty_store, instance) == pydicom_frames(path, instance)
    else:
        assert instance.number_of_frames == 0
        assert instance.frame_offsets == []

    again = ingest(path, name=path.name)

    assert again.status == "duplicate"
    assert again.instance_pk == instance.pk
    assert Instance.objects.count() == 1


def test_it_indexes_patient_study_series_and_geometry(empty_store):
    ds = ct_dataset(rows=4, columns=6)
    outcome = ingest(part10(ds))

    instance = Instance.objects.select_related("series__study__patient").get(pk=outcome.instance_pk)
    assert (instance.rows, instance.columns, instance.number_of_frames) == (4, 6, 1)
    assert instance.pixel_spacing == [0.5, 0.5]
    assert instance.slice_thickness == 1.25
    assert instance.image_position == [1.5, -2.0, 30.0]
    assert instance.image_orientation == [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
    assert instance.instance_number == 1
    study = instance.series.study
    assert (study.patient.patient_id, study.patient.name) == ("PAT-7", "Test^Patient")
    assert (str(study.study_date), study.accession_number, study.modalities) == ("2025-01-02", "ACC-7", "CT")
    assert (instance.series.modality, instance.series.series_number) == ("CT", 2)
    assert (
        instance.storage_key == f"dicom/{ds.StudyInstanceUID}/{ds.SeriesInstanceUID}/{ds.SOPInstanceUID}.dcm"
    )


def test_large_binary_values_become_relative_bulk_data_uris_and_small_ones_stay_inline(empty_store):
    ds = ct_dataset()
    ds.add_new(0x00091010, "OB", bytes(2000))  # a large private binary value
    ds.add_new(0x00091011, "OB", b"\x01\x02")
    outcome = ingest(part10(ds))

    metadata = Instance.objects.get(pk=outcome.instance_pk).metadata
    assert metadata["00091010"] == {"vr": "OB", "BulkDataURI": "bulkdata/00091010"}
    assert metadata["00091011"] == {"vr": "OB", "InlineBinary": "AQI="}
    assert metadata["7FE00010"] == {"vr": "OW", "BulkDataURI": "bulkdata/7FE00010"}
    assert metadata["00100020"] == {"vr": "LO", "Value": ["PAT-7"]}


def test_the_same_uid_with_other_bytes_is_a_conflict_and_the_original_stays(empty_store):
    original = ct_dataset()
    first = ingest(part10(original))
    stored_bytes = (empty_store / Instance.objects.get().storage_key).read_bytes()
    changed = pydicom.dcmread(io.BytesIO(part10(original)))
    changed.PatientName = "Someone^Else"

    second = ingest(part10(changed))

    assert second.status == "rejected"
    assert second.failure_code == FailureReason.PROCESSING_FAILURE
    assert second.reason.startswith(f"conflict: SOP Instance UID {original.SOPInstanceUID} is already stored")
    instance = Instance.objects.get()
    assert instance.pk == first.instance_pk
    assert (empty_store / instance.storage_key).read_bytes() == stored_bytes
    assert instance.sha256 == hashlib.sha256(stored_bytes).hexdigest()


def test_a_study_belongs_to_one_patient(empty_store):
    first = ct_dataset()
    ingest(part10(first))
    files, rows = stored_files(empty_store), Instance.objects.count()
    other_patient = ct_dataset(StudyInstanceUID=first.StudyInstanceUID, PatientID="PAT-8")

    outcome = ingest(part10(other_patient))

    assert outcome.status == "rejected"
    assert outcome.failure_code == FailureReason.PROCESSING_FAILURE
    assert outcome.reason.startswith(f"study {first.StudyInstanceUID} belongs to another patient")
    assert stored_files(empty_store) == files
    assert Instance.objects.count() == rows


def test_the_first_instance_sets_the_study_and_modalities_collect_across_series(empty_store):
    study_uid = generate_uid()
    ingest(part10(ct_dataset(StudyInstanceUID=study_uid, StudyDescription="First")))
    ingest(part10(ct_dataset(StudyInstanceUID=study_uid, StudyDescription="Second", Modality="PT")))
    ingest(part10(ct_dataset(StudyInstanceUID=study_uid, Modality="CT")))

    study = Study.objects.get(study_uid=study_uid)
    assert study.description == "First"
    assert study.modalities == "CT\\PT"
    assert study.series.count() == 3


def test_an_instance_of_another_study_than_expected_is_refused(nothing_added):
    outcome = ingest(part10(ct_dataset()), origin="stow", expected_study_uid="1.2.3.4")

    assert outcome.status == "rejected"
    assert outcome.failure_code == FailureReason.DOES_NOT_MATCH
    assert "not to 1.2.3.4 named in the request" in outcome.reason
    nothing_added()


def test_an_identical_file_left_in_the_store_without_rows_is_indexed(empty_store):
    # An ingest interrupted after writing the file and before its rows leaves this.
    data = part10(ct_dataset())
    ds = pydicom.dcmread(io.BytesIO(data))
    orphan = empty_store / "dicom" / ds.StudyInstanceUID / ds.SeriesInstanceUID / f"{ds.SOPInstanceUID}.dcm"
    orphan.parent.mkdir(parents=True)
    orphan.write_bytes(data)

    outcome = ingest(data)

    assert outcome.status == "stored"
    assert Instance.objects.get().storage_key == str(orphan.relative_to(empty_store))


def test_a_different_file_left_under_the_instances_key_is_not_overwritten(empty_store):
    data = part10(ct_dataset())
    ds = pydicom.dcmread(io.BytesIO(data))
    orphan = empty_store / "dicom" / ds.StudyInstanceUID / ds.SeriesInstanceUID / f"{ds.SOPInstanceUID}.dcm"
    orphan.parent.mkdir(parents=True)
    orphan.write_bytes(b"something else")

    outcome = ingest(data)

    assert outcome.status == "rejected"
    assert "already holds a different file" in outcome.reason
    assert orphan.read_bytes() == b"something else"
    assert Instance.objects.count() == 0


def test_it_audits_stored_duplicate_and_refused_input_without_file_names(empty_store, rita):
    before = AuditEvent.objects.order_by("-id").values_list("id", flat=True).first() or 0
    data = part10(ct_dataset())
    ingest(data, name="Smith^John head.dcm", origin="upload", user=rita)
    ingest(data, name="Smith^John head.dcm", origin="stow", user=rita)
    ingest(b"not dicom", name="Smith^John notes.txt", origin="upload", user=rita)
    ingest(part10(ct_dataset(Rows=65535, Columns=65535)), name="Smith^John big.dcm", origin="pacs")

    ingest_events = AuditEvent.objects.filter(id__gt=before).order_by("id")
    events = list(ingest_events.values("event_id", "action", "outcome", "username", "sop_uid"))
    assert [(e["event_id"], e["action"], e["outcome"]) for e in events] == [
        ("110107", "C", 0),  # Import (a person's file), stored
        ("110104", "R", 0),  # DICOM Instances Transferred (STOW-RS), already held
        ("110107", "C", 4),  # Import refused: not DICOM
        ("110113", "E", 4),  # Security Alert: a header claiming 65535 x 65535 pixels
    ]
    assert events[0]["username"] == "rita"
    assert events[0]["sop_uid"] == pydicom.dcmread(io.BytesIO(data)).SOPInstanceUID
    for event in ingest_events:
        assert "Smith" not in f"{event.detail} {event.outcome_reason}"


def test_origin_must_be_one_of_the_ways_in(empty_store):
    with pytest.raises(ValueError, match="origin must be one of"):
        ingest_file(source=io.BytesIO(b""), name="x", origin="email")


@pytest.mark.django_db(transaction=True)
def test_concurrent_ingests_of_one_instance_store_it_once(empty_store):
    from concurrent.futures import ThreadPoolExecutor

    from django.db import connection

    data = part10(ct_dataset())

    def offer(_: int) -> str:
        try:
            return ingest(data).status
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=4) as pool:
        statuses = sorted(pool.map(offer, range(4)))

    assert statuses == ["duplicate", "duplicate", "duplicate", "stored"]
    assert Instance.objects.count() == 1
    assert len(stored_files(empty_store)) == 1


def test_long_text_becomes_bulk_data_and_huge_metadata_is_refused(empty_store):
    long_text = ct_dataset(TextValue="x" * (70 * 1024))
    outcome = ingest(part10(long_text))
    assert Instance.objects.get(pk=outcome.instance_pk).metadata["0040A160"] == {
        "vr": "UT",
        "BulkDataURI": "bulkdata/0040A160",
    }
    files, rows = stored_files(empty_store), Instance.objects.count()
    huge = ct_dataset()
    item = Dataset()
    item.TextValue = "y" * 60_000
    huge.ReferencedImageSequence = [item] * 300

    refused = ingest(part10(huge))

    assert refused.status == "rejected"
    assert refused.failure_code == FailureReason.OUT_OF_RESOURCES
    assert "more than 16777216" in refused.reason
    assert (stored_files(empty_store), Instance.objects.count()) == (files, rows)


def test_pixel_data_is_never_read_into_memory_whole(empty_store, tmp_path):
    frames, size = 64, 512  # 32 MiB of pixel data, 512 KiB a frame
    ds = ct_dataset(rows=size, columns=size, NumberOfFrames=frames)
    ds.PixelData = bytes(frames * size * size * 2)
    path = tmp_path / "multiframe.dcm"
    path.write_bytes(part10(ds))
    del ds

    tracemalloc.start()
    try:
        outcome = ingest(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert outcome.status == "stored"
    assert peak < 8 * 1024 * 1024, f"ingest held {peak} bytes at once"
