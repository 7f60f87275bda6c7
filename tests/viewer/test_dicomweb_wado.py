"""WADO-RS: metadata, frames (as stored and transcoded), bulk data, whole instances, rendered images."""

from __future__ import annotations

import gzip
import io
import json

import numpy as np
import pydicom
import pytest
from PIL import Image

from tests.viewer.conftest import dicom_file
from tests.viewer.dicomweb_helpers import index_file, make_ct_series, split_multipart
from viewer.decode import FrameSource

pytestmark = pytest.mark.django_db

CORNERSTONE = 'multipart/related; type="application/octet-stream"; transfer-syntax=*'
UNCOMPRESSED = 'multipart/related; type="application/octet-stream"'
EXPLICIT_LE = "1.2.840.10008.1.2.1"
JPEG_BASELINE = "1.2.840.10008.1.2.4.50"


@pytest.fixture
def ct(empty_store):
    return [index_file(data) for data in make_ct_series(3)]


def _file(name: str):
    return index_file(dicom_file(name).read_bytes(), name=name)


def _url(instance, tail: str = "") -> str:
    series = instance.series
    base = f"/dicomweb/studies/{series.study.study_uid}/series/{series.series_uid}"
    return f"{base}/instances/{instance.sop_instance_uid}{tail}"


def _parts(response):
    body = b"".join(response.streaming_content) if response.streaming else response.content
    return split_multipart(body, response["Content-Type"])


# --- Metadata ------------------------------------------------------------------------------
def test_series_metadata_is_every_instances_dicom_json_with_absolute_bulkdata_uris(ct, reader):
    series = ct[0].series
    response = reader.get(f"/dicomweb/studies/{series.study.study_uid}/series/{series.series_uid}/metadata")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/dicom+json"
    metadata = response.json()
    assert [m["00080018"]["Value"][0] for m in metadata] == [i.sop_instance_uid for i in ct]
    assert metadata[0]["00020010"]["Value"] == [EXPLICIT_LE]
    assert metadata[0]["7FE00010"]["BulkDataURI"] == f"http://testserver{_url(ct[0], '/bulkdata/7FE00010')}"
    assert metadata[0]["00280100"] == {"vr": "US", "Value": [16]}


def test_study_and_instance_metadata(ct, reader):
    study_uid = ct[0].series.study.study_uid
    response = reader.get(f"/dicomweb/studies/{study_uid}/metadata")
    study = json.loads(b"".join(response.streaming_content))
    assert len(study) == 3
    (one,) = reader.get(_url(ct[1], "/metadata")).json()
    assert one["00080018"]["Value"] == [ct[1].sop_instance_uid]


def test_metadata_is_compressed_for_clients_that_take_gzip(ct, reader):
    series = ct[0].series
    url = f"/dicomweb/studies/{series.study.study_uid}/series/{series.series_uid}/metadata"
    response = reader.get(url, HTTP_ACCEPT_ENCODING="gzip")
    assert response["Content-Encoding"] == "gzip"
    assert len(json.loads(gzip.decompress(response.content))) == 3


# --- Frames -------------------------------------------------------------------------------------
def test_cornerstone_gets_compressed_frames_as_stored_with_their_transfer_syntax(empty_store, reader):
    instance = _file("SC_rgb_jpeg_dcmtk.dcm")
    response = reader.get(_url(instance, "/frames/1"), HTTP_ACCEPT=CORNERSTONE)
    assert response.status_code == 200
    assert response["Content-Type"].startswith(
        'multipart/related; type="application/octet-stream"; boundary='
    )
    (headers, content) = _parts(response)[0]
    assert headers == {"Content-Type": f"application/octet-stream; transfer-syntax={JPEG_BASELINE}"}
    with FrameSource(instance) as source:
        assert content == source.stored(1)
    assert content.startswith(b"\xff\xd8")  # a JPEG codestream, untouched


def test_the_body_is_laid_out_as_the_cornerstone_loader_parses_it(ct, reader):
    response = reader.get(_url(ct[0], "/frames/1"), HTTP_ACCEPT=CORNERSTONE)
    boundary = response["Content-Type"].rsplit("boundary=", 1)[1]
    body = response.content
    assert body.startswith(
        f"--{boundary}\r\nContent-Type: application/octet-stream; transfer-syntax=".encode()
    )
    header_end = body.index(b"\r\n\r\n") + 4
    end = body.index(f"--{boundary}".encode(), header_end)
    assert len(body[header_end : end - 2]) == 16 * 16 * 2  # what the loader slices out
    assert body.endswith(f"\r\n--{boundary}--\r\n".encode())


def test_uncompressed_frames_are_decoded_from_compressed_storage(empty_store, reader):
    instance = _file("JPGLosslessP14SV1_1s_1f_8b.dcm")
    response = reader.get(_url(instance, "/frames/1"), HTTP_ACCEPT=UNCOMPRESSED)
    (headers, content) = _parts(response)[0]
    assert headers["Content-Type"] == f"application/octet-stream; transfer-syntax={EXPLICIT_LE}"
    expected = pydicom.dcmread(dicom_file("JPGLosslessP14SV1_1s_1f_8b.dcm")).pixel_array
    np.testing.assert_array_equal(np.frombuffer(content, np.uint8).reshape(expected.shape), expected)


def test_no_accept_header_means_uncompressed(empty_store, reader):
    instance = _file("MR_small_RLE.dcm")
    (headers, content) = _parts(reader.get(_url(instance, "/frames/1")))[0]
    assert headers["Content-Type"].endswith(f"transfer-syntax={EXPLICIT_LE}")
    assert len(content) == 64 * 64 * 2


@pytest.mark.parametrize(
    ("accept", "part_type"),
    [
        ('multipart/related; type="image/jpeg"', f"image/jpeg; transfer-syntax={JPEG_BASELINE}"),
        (
            f'multipart/related; type="image/jpeg"; transfer-syntax={JPEG_BASELINE}',
            f"image/jpeg; transfer-syntax={JPEG_BASELINE}",
        ),
        ('multipart/related; type="*/*"', f"image/jpeg; transfer-syntax={JPEG_BASELINE}"),
        (
            'multipart/related; type="image/jls", multipart/related; type="image/jpeg"',
            f"image/jpeg; transfer-syntax={JPEG_BASELINE}",
        ),
        (
            'multipart/related; type="image/jpeg"; q=0.5, ' + UNCOMPRESSED,
            f"application/octet-stream; transfer-syntax={EXPLICIT_LE}",
        ),
    ],
)
def test_the_accept_header_chooses_the_form(empty_store, reader, accept, part_type):
    instance = _file("SC_rgb_jpeg_dcmtk.dcm")
    response = reader.get(_url(instance, "/frames/1"), HTTP_ACCEPT=accept)
    assert response.status_code == 200
    assert _parts(response)[0][0]["Content-Type"] == part_type


@pytest.mark.parametrize(
    ("name", "accept"),
    [
        ("SC_rgb_jpeg_dcmtk.dcm", 'multipart/related; type="image/jls"'),
        (
            "SC_rgb_jpeg_dcmtk.dcm",
            'multipart/related; type="application/octet-stream"; transfer-syntax=1.2.840.10008.1.2.4.80',
        ),
        ("CT_small.dcm", 'multipart/related; type="image/jp2"'),
        ("CT_small.dcm", 'multipart/related; type="application/dicom"'),
        ("CT_small.dcm", "text/html"),
    ],
)
def test_it_answers_406_when_it_cannot_send_what_is_asked(empty_store, reader, name, accept):
    response = reader.get(_url(_file(name), "/frames/1"), HTTP_ACCEPT=accept)
    assert response.status_code == 406
    assert "transfer-syntax=*" in response.json()["detail"]


def test_several_frames_come_in_the_order_asked_each_with_its_transfer_syntax(empty_store, reader):
    instance = _file("emri_small_jpeg_ls_lossless.dcm")
    response = reader.get(_url(instance, "/frames/3,1,10"), HTTP_ACCEPT=CORNERSTONE)
    parts = _parts(response)
    assert len(parts) == 3
    assert all(h["Content-Type"].endswith("transfer-syntax=1.2.840.10008.1.2.4.80") for h, _ in parts)
    with FrameSource(instance) as source:
        assert [content for _, content in parts] == [source.stored(3), source.stored(1), source.stored(10)]


def test_frame_numbers_are_checked(ct, reader):
    assert reader.get(_url(ct[0], "/frames/2")).status_code == 404
    assert reader.get(_url(ct[0], "/frames/0")).status_code == 400
    assert reader.get(_url(ct[0], "/frames/1,x")).status_code == 400
    assert reader.get(_url(ct[0], "/frames/-1")).status_code == 400
    assert reader.get(_url(ct[0], "/frames/" + ",".join(["1"] * 5000))).status_code == 400


def test_frames_of_an_instance_without_pixels_are_404(empty_store, reader):
    report = _file("test-SR.dcm")
    assert reader.get(_url(report, "/frames/1")).status_code == 404


def test_a_deflated_file_serves_uncompressed_frames(empty_store, reader):
    instance = _file("image_dfl.dcm")
    (headers, content) = _parts(reader.get(_url(instance, "/frames/1"), HTTP_ACCEPT=CORNERSTONE))[0]
    assert headers["Content-Type"].endswith(f"transfer-syntax={EXPLICIT_LE}")
    expected = pydicom.dcmread(dicom_file("image_dfl.dcm")).pixel_array
    assert content == expected.tobytes()


# --- Bulk data ------------------------------------------------------------------------------
def test_bulkdata_serves_a_large_value_named_in_the_metadata(empty_store, reader):
    instance = _file("examples_overlay.dcm")
    (metadata,) = reader.get(_url(instance, "/metadata")).json()
    uri = metadata["60003000"]["BulkDataURI"]
    response = reader.get(uri.removeprefix("http://testserver"))
    (headers, content) = _parts(response)[0]
    assert headers["Content-Type"] == "application/octet-stream"
    assert content == pydicom.dcmread(dicom_file("examples_overlay.dcm"))[0x60003000].value


def test_bulkdata_can_be_a_single_part(empty_store, reader):
    instance = _file("CT_small.dcm")
    response = reader.get(_url(instance, "/bulkdata/00431029"), HTTP_ACCEPT="application/octet-stream")
    assert response["Content-Type"] == "application/octet-stream"
    assert len(response.content) == 2068


def test_bulkdata_of_the_pixel_data_is_its_frames(empty_store, reader):
    instance = _file("emri_small_RLE.dcm")
    response = reader.get(_url(instance, "/bulkdata/7fe00010"), HTTP_ACCEPT=CORNERSTONE)
    assert len(_parts(response)) == 10


def test_bulkdata_that_is_not_there_is_404_and_a_bad_tag_400(ct, reader):
    assert reader.get(_url(ct[0], "/bulkdata/00431029")).status_code == 404
    assert reader.get(_url(ct[0], "/bulkdata/00100010")).status_code == 404  # text, not bulk data
    assert reader.get(_url(ct[0], "/bulkdata/7FE0001")).status_code == 400


# --- Whole instances ------------------------------------------------------------------------------
def test_an_instance_comes_back_as_the_stored_part10_file(empty_store, reader):
    instance = _file("JPEG2000.dcm")
    response = reader.get(
        _url(instance), HTTP_ACCEPT='multipart/related; type="application/dicom"; transfer-syntax=*'
    )
    (headers, content) = _parts(response)[0]
    assert headers["Content-Type"] == "application/dicom; transfer-syntax=1.2.840.10008.1.2.4.91"
    assert content == dicom_file("JPEG2000.dcm").read_bytes()


def test_a_study_and_a_series_come_back_as_all_their_files(ct, reader):
    study_uid, series_uid = ct[0].series.study.study_uid, ct[0].series.series_uid
    for url in (f"/dicomweb/studies/{study_uid}", f"/dicomweb/studies/{study_uid}/series/{series_uid}"):
        parts = _parts(reader.get(url))
        assert [pydicom.dcmread(io.BytesIO(c)).SOPInstanceUID for _, c in parts] == [
            i.sop_instance_uid for i in ct
        ]


def test_instances_are_not_transcoded_so_asking_for_it_is_406(empty_store, reader):
    instance = _file("JPEG2000.dcm")
    accept = f'multipart/related; type="application/dicom"; transfer-syntax={EXPLICIT_LE}'
    assert reader.get(_url(instance), HTTP_ACCEPT=accept).status_code == 406


# --- Rendered images and thumbnails ----------------------------------------------------------------
def _image(response) -> Image.Image:
    assert response.status_code == 200, response.content
    return Image.open(io.BytesIO(response.content))


def test_rendered_is_png_by_default_and_jpeg_when_asked(ct, reader):
    png = _image(reader.get(_url(ct[0], "/rendered")))
    assert (png.format, png.size, png.mode) == ("PNG", (16, 16), "L")
    jpeg = _image(reader.get(_url(ct[0], "/rendered"), {"quality": "80"}, HTTP_ACCEPT="image/jpeg"))
    assert jpeg.format == "JPEG"
    assert reader.get(_url(ct[0], "/rendered"), HTTP_ACCEPT="image/gif").status_code == 406


def test_rendered_applies_the_requested_window_else_the_files(ct, reader):
    # Stored values run 0..255 (x1 slope, -1024 intercept): HU -1024..-769.
    file_window = np.asarray(_image(reader.get(_url(ct[0], "/rendered"))))
    assert file_window.max() == 0  # the file's window 40/400 puts all of it below black
    wide = np.asarray(_image(reader.get(_url(ct[0], "/rendered"), {"window": "-896,256,linear"})))
    assert wide.min() < 10
    assert wide.max() > 245


def test_monochrome1_is_inverted(empty_store, reader):
    instance = _file("RG1_UNCI.dcm")
    rendered = _image(reader.get(_url(instance, "/rendered"), {"viewport": "200,200"}))
    stored = pydicom.dcmread(dicom_file("RG1_UNCI.dcm")).pixel_array.astype(np.float32)
    shrunk = np.asarray(Image.fromarray(stored).resize(rendered.size))
    correlation = np.corrcoef(shrunk.ravel(), np.asarray(rendered, dtype=np.float32).ravel())[0, 1]
    assert correlation < -0.5  # high stored values show dark


def test_colour_and_palette_images_render_in_colour(empty_store, reader):
    for name in ("SC_rgb_jpeg_dcmtk.dcm", "OBXXXX1A.dcm", "US1_J2KR.dcm"):
        assert _image(reader.get(_url(_file(name), "/rendered"))).mode == "RGB", name


def test_thumbnails_are_small(empty_store, reader):
    instance = _file("US1_UNCR.dcm")
    thumbnail = _image(reader.get(_url(instance, "/thumbnail")))
    assert max(thumbnail.size) == 128
    series = instance.series
    assert max(_image(reader.get(f"/dicomweb/studies/{series.study.study_uid}/thumbnail")).size) == 128
    url = f"/dicomweb/studies/{series.study.study_uid}/series/{series.series_uid}/thumbnail"
    assert max(_image(reader.get(url, {"viewport": "64,64"})).size) == 64


def test_a_frame_of_a_multiframe_instance_renders(empty_store, reader):
    instance = _file("emri_small_jpeg_2k_lossless.dcm")
    assert _image(reader.get(_url(instance, "/frames/7/rendered"))).size == (64, 64)
    assert reader.get(_url(instance, "/frames/1,2/rendered")).status_code == 400


@pytest.mark.parametrize(
    "params",
    [
        {"window": "40"},
        {"window": "40,0"},
        {"window": "a,b"},
        {"window": "40,400,cubic"},
        {"viewport": "0,10"},
        {"quality": "101"},
        {"frobnicate": "1"},
    ],
)
def test_bad_rendering_parameters_are_400(ct, reader, params):
    assert reader.get(_url(ct[0], "/rendered"), params).status_code == 400


# --- What a stock OHIF 3 with the Cornerstone loader calls (shared/NOTES.md) ------------------------
def test_the_calls_ohif_makes(ct, reader):
    study_list = reader.get(
        "/dicomweb/studies",
        {
            "limit": "101",
            "offset": "0",
            "fuzzymatching": "false",
            "includefield": "00081030,00080060",
            "StudyDate": "20240101-20241231",
            "PatientName": "*doe*",
        },
    )
    (study,) = study_list.json()
    study_uid = study["0020000D"]["Value"][0]
    (series,) = reader.get(f"/dicomweb/studies/{study_uid}/series").json()
    series_uid = series["0020000E"]["Value"][0]
    metadata = reader.get(f"/dicomweb/studies/{study_uid}/series/{series_uid}/metadata").json()
    for instance in metadata:
        image_id = (
            f"/dicomweb/studies/{study_uid}/series/{series_uid}/instances/{instance['00080018']['Value'][0]}"
        )
        # Exactly as the loader sends it: the type parameter unquoted.
        frame = reader.get(
            f"{image_id}/frames/1",
            HTTP_ACCEPT="multipart/related; type=application/octet-stream; transfer-syntax=*",
        )
        ((headers, content),) = _parts(frame)
        assert "transfer-syntax=1.2.840.10008.1.2.1" in headers["Content-Type"]
        assert len(content) == instance["00280010"]["Value"][0] * instance["00280011"]["Value"][0] * 2


def test_a_damaged_stored_file_is_a_500_that_names_no_path(empty_store, reader):
    instance = _file("JPEG2000.dcm")
    stored = empty_store / instance.storage_key
    stored.write_bytes(stored.read_bytes()[:2000])  # damaged behind the index's back
    response = reader.get(_url(instance, "/frames/1"), HTTP_ACCEPT=UNCOMPRESSED)
    assert response.status_code == 500
    assert response.json() == {"detail": "the stored object cannot be read or decoded"}
    assert reader.get("/dicomweb/studies").status_code == 200  # and the server keeps serving
