"""Damaged and hostile DICOM files through every way in that takes files: the upload endpoint,
STOW-RS and `import_dicom` (the PACS pull has its own module).

Each file is refused by all three with the same specific reason and Failure Reason, nothing
enters the store, the upload spool or the index, and the next ordinary request still works.
tests/viewer/test_ingest_validation.py checks the service's single refusals one by one; here
the files are other ones (the pydicom wheel's damaged files, hostile headers and UIDs) and
each goes through the HTTP and command-line ways in.
"""

from __future__ import annotations

import base64
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pydicom
import pytest
from pydicom.encaps import encapsulate
from pydicom.uid import ExplicitVRLittleEndian, JPEGBaseline8Bit, generate_uid

from reviews.models import MemberRole, ProjectMember, Reading, ReadingProject
from reviews.services import project_studies_add
from tests.reviews.helpers import api
from tests.security.helpers import (
    TYPE_2,
    failure_codes,
    keeps_serving,
    plane,
    refusal_everywhere,
    stow,
    tiny_study,
    upload,
)
from tests.viewer.conftest import ct_dataset, dicom_file, part10, stored_files, with_pixel_header
from viewer.ingest.errors import FailureReason
from viewer.models import Instance, Patient
from viewer.store import store_open

pytestmark = [
    pytest.mark.django_db,
    # Writing the hostile files makes pydicom warn about the very values under test.
    pytest.mark.filterwarnings("ignore:Invalid value for VR:UserWarning"),
    pytest.mark.filterwarnings("ignore:The value length:UserWarning"),
]

A700, A900, C000, C122, SOP_CLASS = (
    FailureReason.OUT_OF_RESOURCES,
    FailureReason.DOES_NOT_MATCH,
    FailureReason.CANNOT_UNDERSTAND,
    FailureReason.TRANSFER_SYNTAX_NOT_SUPPORTED,
    FailureReason.SOP_CLASS_NOT_SUPPORTED,
)
NO_PREFIX = "no 'DICM' prefix after the 128-byte preamble"


@dataclass(frozen=True)
class Hostile:
    """A file every way in refuses with `reason` (a part of its message) and `code`."""

    id: str
    build: Callable[[], bytes]
    reason: str
    code: int


# --- The pydicom wheel's damaged files --------------------------------------------------------------
def _test_file(name: str) -> Callable[[], bytes]:
    return lambda: dicom_file(name).read_bytes()


def _dicomdir() -> bytes:
    return (dicom_file("CT_small.dcm").parent / "dicomdirtests" / "DICOMDIR").read_bytes()


DAMAGED = [
    Hostile("rtplan_truncated", _test_file("rtplan_truncated.dcm"), "the file is truncated", C000),
    Hostile("no_meta", _test_file("no_meta.dcm"), NO_PREFIX, C000),
    Hostile("ExplVR_BigEndNoMeta", _test_file("ExplVR_BigEndNoMeta.dcm"), NO_PREFIX, C000),
    Hostile("rtstruct_without_preamble", _test_file("rtstruct.dcm"), NO_PREFIX, C000),
    Hostile(
        "meta_missing_tsyntax",
        _test_file("meta_missing_tsyntax.dcm"),
        "the file meta information has no Transfer Syntax UID (0002,0010)",
        C000,
    ),
    Hostile(
        "no_meta_group_length",
        _test_file("no_meta_group_length.dcm"),
        "Study Instance UID (0020,000D) is missing",
        A900,
    ),
    Hostile("bad_sequence", _test_file("bad_sequence.dcm"), "is not a valid DICOM UID", A900),
    Hostile(
        "badVR", _test_file("badVR.dcm"), "(0002,0003) '1.2.999.999.99.9.9999.9999.20030818153516'", A900
    ),
    Hostile(
        "jpeg2000_too_short",
        _test_file("emri_small_jpeg_2k_lossless_too_short.dcm"),
        "the data set cannot be parsed: End of file reached before delimiter (FFFE,E0DD) found",
        C000,
    ),
    Hostile("empty_charset_fragment", _test_file("empty_charset_LEI.dcm"), "Study Instance UID", A900),
    Hostile("nested_private_sequence", _test_file("nested_priv_SQ.dcm"), "Study Instance UID", A900),
    Hostile(
        "jpeg2000_claims_3722445056_columns",
        _test_file("JPEG2000-embedded-sequence-delimiter.dcm"),
        "the compressed frame claims 1024x3722445056 pixels with 1 samples, the header says 1024x256",
        A900,
    ),
    Hostile("undecodable_jpeg", _test_file("JPEG-lossy.dcm"), "frame 1 cannot be decoded", C000),
    Hostile(
        "ecg_waveform",
        _test_file("waveform_ecg.dcm"),
        "12-lead ECG Waveform Storage (1.2.840.10008.5.1.4.1.1.9.1.1) is not supported",
        SOP_CLASS,
    ),
    Hostile("DICOMDIR", _dicomdir, "a DICOMDIR (Media Storage Directory) is an index", SOP_CLASS),
]


# --- Files built here -------------------------------------------------------------------------------
def _ct(**attributes: Any) -> Callable[[], bytes]:
    return lambda: part10(ct_dataset(**attributes))


def _pixel_data_twice_as_long() -> bytes:
    ds = ct_dataset()
    ds.PixelData = ds.PixelData * 2
    return part10(ds)


def _without(keyword: str) -> Callable[[], bytes]:
    def build() -> bytes:
        ds = ct_dataset()
        delattr(ds, keyword)
        return part10(ds)

    return build


def _relabelled(data: bytes, syntax: str) -> bytes:
    """The Part 10 file with another Transfer Syntax UID (0002,0010), its data set as encoded.

    pydicom will not write a data set that contradicts its transfer syntax, nor one it does not
    know: the file meta is patched instead (the UID, its length and the group length)."""
    at = data.index(b"\x02\x00\x10\x00UI")
    (length,) = struct.unpack_from("<H", data, at + 6)
    value = syntax.encode() + b"\x00" * (len(syntax) % 2)
    data = data[: at + 6] + struct.pack("<H", len(value)) + value + data[at + 8 + length :]
    group = data.index(b"\x02\x00\x00\x00UL")
    (group_length,) = struct.unpack_from("<I", data, group + 8)
    return data[: group + 8] + struct.pack("<I", group_length + len(value) - length) + data[group + 12 :]


def _jpeg_claiming(rows: int, columns: int) -> bytes:
    """A JPEG start of image and baseline frame header claiming rows x columns, nothing else."""
    sof = b"\xff\xc0" + struct.pack(">HBHHB", 11, 8, rows, columns, 1) + b"\x01\x11\x00"
    return b"\xff\xd8" + sof + b"\xff\xd9"


def _jpeg(frame: bytes) -> bytes:
    """An 8-bit image whose one frame is `frame`, encapsulated, as JPEG Baseline."""
    ds = ct_dataset(BitsAllocated=8, BitsStored=8, HighBit=7)
    ds.PixelData = encapsulate([frame])
    return part10(ds, JPEGBaseline8Bit)


def _encapsulated_as(syntax: str) -> Callable[[], bytes]:
    return lambda: _relabelled(_jpeg(_jpeg_claiming(8, 8)), syntax)


def _with_element_claiming_4_gib() -> bytes:
    # A private OB element at the end whose length says 0xFFFFFFF0 bytes follow.
    return part10(ct_dataset()) + b"\x09\x00\x10\x00OB\x00\x00" + struct.pack("<I", 0xFFFFFFF0)


def _with_trailing_bytes() -> bytes:
    return part10(ct_dataset()) + b"\x00\x00\x00"


def _preamble_only() -> bytes:
    return bytes(128) + b"DICM"


def _png() -> bytes:
    return b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + bytes(300)


BUILT = [
    Hostile("zero_length", lambda: b"", "the file is empty", C000),
    Hostile("png_image", _png, NO_PREFIX, C000),
    Hostile("preamble_and_prefix_only", _preamble_only, "the file meta information (group 0002)", C000),
    Hostile(
        "pixel_data_longer_than_header",
        _pixel_data_twice_as_long,
        "Pixel Data holds 256 bytes, but 8x8 pixels x 1 frames x 1 samples x 16 bits need 128",
        A900,
    ),
    Hostile(
        "number_of_frames_2147483647",
        _ct(NumberOfFrames=2147483647),
        "8x8 pixels x 2147483647 frames x 1 samples x 16 bits decode to 274877906816 bytes",
        A700,
    ),
    Hostile(
        "columns_65535",
        lambda: with_pixel_header(part10(ct_dataset()), rows=8, columns=65535),
        "Columns 65535 exceeds the limit of 32768",
        A700,
    ),
    Hostile("rows_0", _ct(Rows=0), "Rows, Columns and Number of Frames must be at least 1", A900),
    Hostile("bits_allocated_12", _ct(BitsAllocated=12), "Bits Allocated 12 is not 1, 8, 16, 32 or 64", A900),
    Hostile("samples_per_pixel_4", _ct(SamplesPerPixel=4), "Samples per Pixel 4 is not 1 or 3", A900),
    Hostile(
        "photometric_missing",
        _without("PhotometricInterpretation"),
        "Photometric Interpretation (0028,0004) is missing",
        A900,
    ),
    Hostile(
        "htj2k_transfer_syntax",
        _encapsulated_as("1.2.840.10008.1.2.4.201"),
        "transfer syntax 1.2.840.10008.1.2.4.201 (High-Throughput JPEG 2000 Image Compression",
        C122,
    ),
    Hostile(
        "h264_video_transfer_syntax",
        _encapsulated_as("1.2.840.10008.1.2.4.102"),
        "(MPEG-4 AVC/H.264 High Profile / Level 4.1) is not supported",
        C122,
    ),
    Hostile(
        "jpeg_xl_transfer_syntax",
        _encapsulated_as("1.2.840.10008.1.2.4.112"),
        "transfer syntax 1.2.840.10008.1.2.4.112 is not supported (not a transfer syntax we know)",
        C122,
    ),
    Hostile(
        "made_up_transfer_syntax",
        _encapsulated_as("1.2.3.4.5.6"),
        "transfer syntax 1.2.3.4.5.6 is not supported",
        C122,
    ),
    Hostile(
        "native_pixels_under_jpeg",
        lambda: _relabelled(part10(ct_dataset()), JPEGBaseline8Bit),
        "JPEG Baseline (Process 1) needs encapsulated Pixel Data, the file has native",
        A900,
    ),
    Hostile(
        "encapsulated_pixels_under_explicit_vr",
        _encapsulated_as(ExplicitVRLittleEndian),
        "Explicit VR Little Endian needs native Pixel Data, the file has encapsulated",
        A900,
    ),
    Hostile(
        "jpeg_frame_claiming_60000x60000",
        lambda: _jpeg(_jpeg_claiming(60000, 60000)),
        "the compressed frame claims 60000x60000 pixels with 1 samples, the header says 8x8 with 1",
        A900,
    ),
    Hostile("element_claiming_4_gib", _with_element_claiming_4_gib, "the file is truncated: element", C000),
    Hostile("bytes_after_the_data_set", _with_trailing_bytes, "the data set cannot be parsed", C000),
    Hostile(
        "sop_instance_uid_path_traversal",
        _ct(SOPInstanceUID="../../../../etc/passwd"),
        "SOP Instance UID (0008,0018) '../../../../etc/passwd' is not a valid DICOM UID",
        A900,
    ),
    Hostile(
        "study_uid_percent_encoded_dots",
        _ct(StudyInstanceUID="1.2.840.%2e%2e.%2f"),
        "Study Instance UID (0020,000D) '1.2.840.%2e%2e.%2f' is not a valid DICOM UID",
        A900,
    ),
    Hostile(
        "series_uid_with_nul",
        _ct(SeriesInstanceUID="1.2.3\x00.4"),
        "Series Instance UID (0020,000E)",
        A900,
    ),
    Hostile(
        "patient_id_of_65_characters",
        _ct(PatientID="P" * 65),
        "Patient ID (0010,0020) is longer than 64 characters",
        A900,
    ),
]


@pytest.mark.parametrize("hostile", DAMAGED + BUILT, ids=lambda hostile: hostile.id)
def test_every_way_in_refuses_it_with_the_same_reason(hostile, session, token, untouched, tmp_path):
    refusal = refusal_everywhere(
        hostile.build(), session=session, token=token, folder=tmp_path, code=hostile.code
    )

    assert hostile.reason in refusal.upload
    assert hostile.reason.replace('"', "'") in refusal.stow  # the Warning header of STOW-RS
    assert hostile.reason in refusal.imported
    untouched()
    keeps_serving(token)


# --- What a single file cannot show -----------------------------------------------------------------
def test_a_client_file_name_with_dot_dot_is_only_a_label(session, empty_store):
    ds = ct_dataset()

    response = upload(session, "../../../../tmp/overread-escape.dcm", part10(ds))

    [result] = response.json()["results"]
    assert result["status"] == "stored"
    assert result["name"] == "overread-escape.dcm"  # Django keeps the base name only
    key = Instance.objects.get(sop_instance_uid=ds.SOPInstanceUID).storage_key
    assert stored_files(empty_store) == {key}  # stored under its UIDs, not under its name
    assert "escape" not in key


def test_a_study_offered_again_for_another_patient_is_refused_and_the_first_kept(token, empty_store):
    first = ct_dataset(PatientID="PAT-A")
    stow(token, part10(first))
    rows = (Patient.objects.count(), Instance.objects.count())
    files = stored_files(empty_store)
    other = ct_dataset(StudyInstanceUID=first.StudyInstanceUID, PatientID="PAT-B")

    response = stow(token, part10(other))

    assert response.status_code == 409
    assert failure_codes(response) == [FailureReason.PROCESSING_FAILURE]
    assert f"study {first.StudyInstanceUID} belongs to another patient" in response["Warning"]
    assert (Patient.objects.count(), Instance.objects.count()) == rows  # no patient PAT-B half-made
    assert stored_files(empty_store) == files  # the refused file was removed again
    keeps_serving(token)


def test_a_stow_into_a_study_url_with_a_hostile_uid_is_400(token, untouched):
    for url in ("/dicomweb/studies/%2e%2e", "/dicomweb/studies/1.2.3;DROP"):
        response = stow(token, part10(ct_dataset()), url=url)

        assert response.status_code == 400, url
        assert response.json()["detail"] == (
            "the Study Instance UID is not a valid DICOM UID (digits and dots, at most 64 characters)"
        )
    nul = stow(token, part10(ct_dataset()), url="/dicomweb/studies/1.2.3%00")  # refused before any view
    assert (nul.status_code, nul.json()["detail"]) == (400, "Bad request: the path holds a NUL character.")
    untouched()


@pytest.mark.parametrize(
    ("body", "content_type", "status", "detail"),
    [
        (
            lambda: b"--" + b"b" * 71 + b"\r\n\r\nx\r\n--" + b"b" * 71 + b"--",
            'multipart/related; type="application/dicom"; boundary=' + "b" * 71,
            400,
            "the boundary parameter is missing or longer than 70 characters",
        ),
        (
            lambda: b"--hostile-boundary\r\nContent-Type: application/dicom\r\n" + b"X-Pad: y\r\n" * 2000,
            'multipart/related; type="application/dicom"; boundary=hostile-boundary',
            400,
            "a part's headers do not end with a blank line",
        ),
        (
            lambda: b"--hostile-boundary\r\n\r\nx\r\n" * 4 + b"--hostile-boundary--",
            'multipart/related; type="application/dicom"; boundary=hostile-boundary',
            413,
            "more than 3 parts in one request",
        ),
    ],
    ids=["boundary_of_71_characters", "headers_without_end", "more_parts_than_allowed"],
)
def test_a_hostile_multipart_body_is_refused_whole(
    body, content_type, status, detail, token, untouched, settings
):
    settings.DICOM_MAX_FILES_PER_UPLOAD = 3

    response = token.post("/dicomweb/studies", data=body(), content_type=content_type)

    assert response.status_code == status
    assert detail in response.json()["detail"]
    untouched()
    keeps_serving(token)


def test_a_stow_that_accepts_only_html_is_406(token, untouched):
    response = stow(token, part10(ct_dataset()), HTTP_ACCEPT="text/html")

    assert response.status_code == 406
    assert (
        "the response is application/dicom+json; the request accepts only text/html"
        in response.json()["detail"]
    )
    untouched()


def _read_with_one_added_finding(rita: Any, study: Any) -> tuple[Any, str, dict[str, Any]]:
    """Rita reads `study` in a project of her own, draws one finding and locks the reading:
    (her API client, the reading's URL, the locked reading)."""
    project = ReadingProject.objects.create(name="Non-conformant images")
    ProjectMember.objects.create(project=project, user=rita, role=MemberRole.RADIOLOGIST)
    project_studies_add(project=project, studies=[study])
    client = api(rita)
    reading = client.post(
        "/api/v1/readings/", {"study_uid": study.study_uid, "project": project.pk}, format="json"
    )
    url, uid = f"/api/v1/readings/{reading.json()['id']}/", reading.json()["slice_uids"][0]
    added = client.post(
        url + "decisions/",
        {
            "version": reading.json()["version"],
            "kind": "added",
            "label": "nodule",
            "confidence": 3,
            "mask": {uid: base64.b64encode(plane().tobytes()).decode()},
        },
        format="json",
    )
    locked = client.post(url + "lock/", {"version": added.json()["version"]}, format="json")
    return client, url, locked.json()


def test_a_reading_of_a_study_lacking_type_1_and_2_attributes_is_refused_by_name(rita, empty_store):
    study = tiny_study(conformant=False)  # no Frame of Reference UID: a SEG of it is not possible
    client, url, locked = _read_with_one_added_finding(rita, study)
    files, instances = stored_files(empty_store), Instance.objects.count()

    submitted = client.post(url + "submit/", {"version": locked["version"]}, format="json")

    assert submitted.status_code == 409
    assert "have no Frame of Reference UID (0020,0052)" in submitted.json()["detail"]
    reading = client.get(url).json()
    assert (reading["phase"], reading["version"]) == (locked["phase"], locked["version"])
    assert Reading.objects.get(pk=reading["id"]).seg_sop_uid == ""
    assert (stored_files(empty_store), Instance.objects.count()) == (files, instances)


def test_a_reading_of_a_study_lacking_type_2_attributes_is_submitted(rita, empty_store):
    study = tiny_study(conformant=False, FrameOfReferenceUID=generate_uid())
    client, url, locked = _read_with_one_added_finding(rita, study)

    submitted = client.post(url + "submit/", {"version": locked["version"]}, format="json")

    assert submitted.status_code == 200, submitted.json()
    assert submitted.json()["phase"] == "submitted"
    reading = Reading.objects.get(pk=submitted.json()["id"])
    for sop_uid in (reading.seg_sop_uid, reading.sr_sop_uid):
        with store_open(Instance.objects.get(sop_instance_uid=sop_uid).storage_key) as handle:
            written = pydicom.dcmread(handle)
        assert [written[keyword].value for keyword in TYPE_2] == ["", "", "", ""]
