"""Acceptance: every decodable file of the pydicom wheel goes in by STOW-RS and comes back by QIDO/WADO-RS.

For each file: POST /dicomweb/studies stores it; QIDO-RS finds its study,
series and instance; WADO-RS metadata carries its key attributes; every frame,
fetched as stored and as uncompressed, decodes to exactly the pixels pydicom
decodes from the original file. Then a real DICOMweb client (dicomweb-client,
over HTTP against the live server) does the same on a few files.
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np
import pydicom
import pytest
import requests
from dicomweb_client.api import DICOMwebClient
from pydicom.dataset import Dataset

from tests.factories import PASSWORD
from tests.viewer.dicomweb_helpers import (
    decode_as_stored,
    decode_uncompressed,
    frames_of,
    repaired_for_ingest,
    split_multipart,
    stow_body,
    wheel_test_files,
)

pytestmark = [pytest.mark.django_db, pytest.mark.slow]

CORNERSTONE = 'multipart/related; type="application/octet-stream"; transfer-syntax=*'
UNCOMPRESSED = 'multipart/related; type="application/octet-stream"'

# Wheel files with pixel data that do not take part, each for its reason.
UNDECODABLE = "pydicom cannot decode it"
SKIPPED = {
    "JPEG-lossy.dcm": f"{UNDECODABLE}: invalid SOS parameters on purpose (JPGExtended.dcm is the fix)",
    "JPEG2000-embedded-sequence-delimiter.dcm": f"{UNDECODABLE}: codestream overwritten on purpose",
    "MR_truncated.dcm": f"{UNDECODABLE}: pixel data truncated on purpose",
    "badVR.dcm": f"{UNDECODABLE}: Number of Frames is '1A' on purpose",
    "meta_missing_tsyntax.dcm": f"{UNDECODABLE}: no Transfer Syntax UID in its meta header, on purpose",
    "nested_priv_SQ.dcm": f"{UNDECODABLE}: a private-sequence test, Pixel Data without Image Pixel module",
    "MR_small_padded.dcm": "ingest refuses it: Pixel Data 128 bytes longer than its header says, on purpose",
}
# Wheel files whose header ingest rightly refuses, mended before STOW (pixel data untouched).
MENDED = {
    "JPEGLSNearLossless_08.dcm": "no Study/Series Instance UID (the only JPEG-LS near-lossless 8-bit file)",
    "JPEGLSNearLossless_16.dcm": "no Study/Series Instance UID (the only JPEG-LS near-lossless 16-bit file)",
    "SC_rgb_jls_lossy_line.dcm": "no Study/Series Instance UID",
    "SC_rgb_jls_lossy_sample.dcm": "no Study/Series Instance UID",
    "rtdose.dcm": "its meta header names another SOP Instance UID",
    "rtdose_1frame.dcm": "its meta header names another SOP Instance UID",
    "rtdose_expb.dcm": "its meta header names another SOP Instance UID",
    "rtdose_expb_1frame.dcm": "its meta header names another SOP Instance UID",
}
# Attributes the served metadata must give exactly as the original has them.
KEY_ATTRIBUTES = (
    "SOPClassUID",
    "SOPInstanceUID",
    "StudyInstanceUID",
    "SeriesInstanceUID",
    "PatientID",
    "PatientName",
    "Modality",
    "StudyDate",
    "Rows",
    "Columns",
    "SamplesPerPixel",
    "BitsAllocated",
    "BitsStored",
    "PixelRepresentation",
    "PhotometricInterpretation",
    "NumberOfFrames",
    "ImagePositionPatient",
    "PixelSpacing",
    "WindowCenter",
    "RescaleSlope",
)


def _read(path: Path) -> Dataset | None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            ds = pydicom.dcmread(path)
        except Exception:  # no Part 10 header: ingest's negative tests, not ours
            return None
    if "PixelData" not in ds and "FloatPixelData" not in ds and "DoubleFloatPixelData" not in ds:
        return None
    return ds


IMAGE_FILES = [p for p in wheel_test_files() if p.name not in SKIPPED and _read(p) is not None]


def test_the_skipped_files_really_cannot_be_decoded():
    for name, reason in SKIPPED.items():
        if reason.startswith(UNDECODABLE):
            with pytest.raises(Exception):  # noqa: B017, PT011 (whatever pydicom raises, it fails)
                frames_of(_read(next(p for p in wheel_test_files() if p.name == name)))


def test_the_round_trip_covers_the_wheels_codecs():
    syntaxes = {str(_read(p).file_meta.TransferSyntaxUID) for p in IMAGE_FILES}
    assert len(syntaxes) >= 12
    assert len(IMAGE_FILES) >= 55
    assert set(MENDED) <= {p.name for p in IMAGE_FILES}


@pytest.mark.parametrize("path", IMAGE_FILES, ids=lambda p: p.name)
def test_a_file_goes_in_by_stow_and_comes_back_pixel_for_pixel(path, reader, empty_store):
    data, mended = repaired_for_ingest(path.read_bytes())
    assert bool(mended) == (path.name in MENDED), mended
    original = pydicom.dcmread(io.BytesIO(data))
    study, series, sop = original.StudyInstanceUID, original.SeriesInstanceUID, original.SOPInstanceUID

    body, content_type = stow_body([data])
    stored = reader.post(
        "/dicomweb/studies", body, content_type=content_type, HTTP_ACCEPT="application/dicom+json"
    )
    assert stored.status_code == 200, stored.content
    assert stored.json()["00081199"]["Value"][0]["00081155"]["Value"] == [sop]

    assert _found(reader.get("/dicomweb/studies", {"StudyInstanceUID": study}), "0020000D") == [study]
    assert series in _found(reader.get(f"/dicomweb/studies/{study}/series"), "0020000E")
    instances = reader.get(f"/dicomweb/studies/{study}/series/{series}/instances", {"SOPInstanceUID": sop})
    assert _found(instances, "00080018") == [sop]

    base = f"/dicomweb/studies/{study}/series/{series}/instances/{sop}"
    (metadata,) = reader.get(f"{base}/metadata").json()
    _assert_metadata_matches(metadata, original)

    expected = frames_of(original)
    every_frame = ",".join(str(n) for n in range(1, len(expected) + 1))
    as_stored = _parts(reader.get(f"{base}/frames/{every_frame}", HTTP_ACCEPT=CORNERSTONE))
    uncompressed = _parts(reader.get(f"{base}/frames/{every_frame}", HTTP_ACCEPT=UNCOMPRESSED))
    assert len(as_stored) == len(uncompressed) == len(expected)
    for index, frame in enumerate(expected):
        syntax = _transfer_syntax(as_stored[index][0])
        np.testing.assert_array_equal(decode_as_stored(as_stored[index][1], syntax, original), frame)
        assert _transfer_syntax(uncompressed[index][0]) == "1.2.840.10008.1.2.1"
        np.testing.assert_array_equal(decode_uncompressed(uncompressed[index][1], original), frame)


def _found(response, tag: str) -> list[str]:
    assert response.status_code == 200, response.content
    return [result[tag]["Value"][0] for result in response.json()]


def _parts(response) -> list[tuple[dict[str, str], bytes]]:
    assert response.status_code == 200, response.content
    body = b"".join(response.streaming_content) if response.streaming else response.content
    return split_multipart(body, response["Content-Type"])


def _transfer_syntax(headers: dict[str, str]) -> str:
    (syntax,) = [
        p.split("=", 1)[1] for p in headers["Content-Type"].split("; ") if p.startswith("transfer-syntax=")
    ]
    return syntax


def _comparable(element) -> object:
    """DS and IS travel as JSON numbers (PS3.18 F.2.3): compare them as numbers, the rest as text."""
    values = element.value if element.VM > 1 else [element.value]
    if element.VR in ("DS", "IS"):
        return [float(v) for v in values]
    return [str(v) for v in values]


def _assert_metadata_matches(metadata: dict, original: Dataset) -> None:
    served = Dataset.from_json(metadata, bulk_data_uri_handler=lambda tag, vr, uri: b"")
    for keyword in KEY_ATTRIBUTES:
        if keyword in original:
            assert _comparable(served[keyword]) == _comparable(original[keyword]), keyword
    assert metadata["00020010"]["Value"] == [str(original.file_meta.TransferSyntaxUID)]
    pixel_tag = next(t for t in ("7FE00010", "7FE00008", "7FE00009") if t in metadata)
    assert metadata[pixel_tag]["BulkDataURI"].endswith(
        f"/instances/{original.SOPInstanceUID}/bulkdata/{pixel_tag}"
    )


# --- A real client over HTTP ----------------------------------------------------------------------
@pytest.fixture
def dicomweb(live_server, rita, empty_store) -> DICOMwebClient:
    """dicomweb-client against the live server, signed in with HTTP Basic as scripts do."""
    session = requests.Session()
    session.auth = ("rita", PASSWORD)
    return DICOMwebClient(url=f"{live_server.url}/dicomweb", session=session)


LIVE_FILES = ["CT_small.dcm", "SC_rgb_jpeg_dcmtk.dcm", "MR_small_jpeg_ls_lossless.dcm", "JPEG2000.dcm"]


@pytest.mark.django_db(transaction=True)
def test_dicomweb_client_stores_searches_and_retrieves(dicomweb):
    originals = {name: pydicom.dcmread(next(p for p in IMAGE_FILES if p.name == name)) for name in LIVE_FILES}
    dicomweb.store_instances(datasets=list(originals.values()))

    found = {
        s["0020000D"]["Value"][0]
        for s in dicomweb.search_for_studies(search_filters={"ModalitiesInStudy": "CT"})
    }
    assert originals["CT_small.dcm"].StudyInstanceUID in found

    for name, original in originals.items():
        study, series, sop = original.StudyInstanceUID, original.SeriesInstanceUID, original.SOPInstanceUID
        metadata = dicomweb.retrieve_series_metadata(study, series)
        assert sop in {m["00080018"]["Value"][0] for m in metadata}, name
        syntax = str(original.file_meta.TransferSyntaxUID)
        native = not original.file_meta.TransferSyntaxUID.is_encapsulated
        stored_type = "application/octet-stream" if native else _image_media_type(syntax)
        (as_stored,) = dicomweb.retrieve_instance_frames(
            study, series, sop, [1], media_types=((stored_type, syntax),)
        )
        (uncompressed,) = dicomweb.retrieve_instance_frames(
            study, series, sop, [1], media_types=(("application/octet-stream", "1.2.840.10008.1.2.1"),)
        )
        frame = frames_of(original)[0]
        np.testing.assert_array_equal(decode_as_stored(as_stored, syntax, original), frame)
        np.testing.assert_array_equal(decode_uncompressed(uncompressed, original), frame)
        retrieved = dicomweb.retrieve_instance(study, series, sop, media_types=(("application/dicom", "*"),))
        assert retrieved.SOPInstanceUID == sop


def test_dicomweb_clients_default_frame_request_works(dicomweb):
    original = pydicom.dcmread(next(p for p in IMAGE_FILES if p.name == "MR_small_RLE.dcm"))
    dicomweb.store_instances(datasets=[original])
    (frame,) = dicomweb.retrieve_instance_frames(
        original.StudyInstanceUID, original.SeriesInstanceUID, original.SOPInstanceUID, [1]
    )
    syntax = str(original.file_meta.TransferSyntaxUID)
    np.testing.assert_array_equal(decode_as_stored(frame, syntax, original), frames_of(original)[0])


def _image_media_type(syntax: str) -> str:
    from viewer.dicomweb.negotiation import IMAGE_MEDIA_TYPES

    return next(media for media, family in IMAGE_MEDIA_TYPES.items() if syntax in family)
