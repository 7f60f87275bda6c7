"""decode_series: slice order, Hounsfield units, and every reason to refuse a series."""

from __future__ import annotations

import copy
import random
from collections.abc import Callable

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset
from pydicom.uid import RawDataStorage, RLELossless, generate_uid

from fixtures.synthetic import SyntheticStudy, make_ct_study
from inference.engine.decode import decode_series, voxel_to_patient
from inference.engine.types import InputError, InputSpec

SPEC = InputSpec(min_slices=4)


@pytest.fixture(scope="module")
def study() -> SyntheticStudy:
    return make_ct_study(seed=11, slices=10, rows=64, columns=72, lesions=0)


def _fresh(study: SyntheticStudy) -> list[Dataset]:
    return [copy.deepcopy(ds) for ds in study.datasets]


def test_it_orders_slices_by_position_along_the_normal_not_by_input_or_instance_number(study):
    datasets = _fresh(study)
    random.Random(3).shuffle(datasets)
    for number, ds in enumerate(datasets):
        ds.InstanceNumber = number + 1  # misleading on purpose

    volume = decode_series(datasets, SPEC)

    # Axial, head first: the normal points to the head, so slice 0 is the most inferior.
    assert np.array_equal(volume.hu, study.volume[::-1].astype(np.float32))
    assert volume.hu.dtype == np.float32
    assert volume.geometry.spacing == pytest.approx((2.5, 0.7, 0.7))
    assert volume.geometry.origin == tuple(float(v) for v in study.datasets[-1].ImagePositionPatient)
    assert volume.geometry.sop_instance_uids == tuple(ds.SOPInstanceUID for ds in study.datasets[::-1])
    assert volume.geometry.frame_of_reference_uid == study.datasets[0].FrameOfReferenceUID


def test_it_follows_a_reversed_orientation(study):
    datasets = _fresh(study)
    for ds in datasets:
        ds.ImageOrientationPatient = [-1, 0, 0, 0, 1, 0]  # normal now points to the feet
    random.Random(5).shuffle(datasets)

    volume = decode_series(datasets, SPEC)

    assert np.array_equal(volume.hu, study.volume.astype(np.float32))
    assert volume.geometry.sop_instance_uids[0] == study.datasets[0].SOPInstanceUID
    # Slice k lies at origin + k * spacing * normal, whichever way the normal points.
    last = voxel_to_patient(volume.geometry, (len(datasets) - 1, 0, 0))
    assert last == pytest.approx(tuple(float(v) for v in study.datasets[-1].ImagePositionPatient))


def test_it_rescales_stored_values_to_hounsfield_units(study):
    datasets = _fresh(study)
    stored = datasets[0].pixel_array.astype(np.float32)
    datasets[0].RescaleSlope = 2
    datasets[0].RescaleIntercept = -500

    volume = decode_series(datasets, SPEC)

    top = volume.hu[-1]  # datasets[0] is the most superior slice
    assert np.array_equal(top, stored * 2 - 500)
    assert np.array_equal(volume.hu[0], study.volume[-1].astype(np.float32))


def test_it_decodes_compressed_pixel_data(study):
    datasets = _fresh(study)
    for ds in datasets:
        ds.compress(RLELossless)

    volume = decode_series(datasets, SPEC)

    assert np.array_equal(volume.hu, study.volume[::-1].astype(np.float32))


def test_it_reads_a_real_ct_file_from_pydicom():
    original = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    datasets = []
    for k in range(4):
        ds = copy.deepcopy(original)
        ds.SOPInstanceUID = generate_uid()
        ds.ImagePositionPatient = [*original.ImagePositionPatient[:2], -75.7 + 3.0 * k]
        datasets.append(ds)

    volume = decode_series(datasets, SPEC)

    assert volume.hu.shape == (4, 128, 128)
    assert volume.geometry.spacing == pytest.approx((3.0, 0.661468, 0.661468))
    assert np.array_equal(volume.hu[2], original.pixel_array.astype(np.float32) - 1024)


def _set(keyword: str, value: object, index: int = 3) -> Callable[[list[Dataset]], list[Dataset]]:
    def change(datasets: list[Dataset]) -> list[Dataset]:
        setattr(datasets[index], keyword, value)
        return datasets

    return change


def _delete(keyword: str, index: int = 2) -> Callable[[list[Dataset]], list[Dataset]]:
    def change(datasets: list[Dataset]) -> list[Dataset]:
        delattr(datasets[index], keyword)
        return datasets

    return change


def _truncate_pixels(datasets: list[Dataset]) -> list[Dataset]:
    datasets[2].PixelData = datasets[2].PixelData[:100]
    return datasets


def _add_structured_report(datasets: list[Dataset]) -> list[Dataset]:
    report = pydicom.dcmread(get_testdata_file("reportsi.dcm"))
    report.SeriesInstanceUID = datasets[0].SeriesInstanceUID
    return [*datasets, report]


def _duplicate_position(datasets: list[Dataset]) -> list[Dataset]:
    datasets[4].ImagePositionPatient = list(datasets[3].ImagePositionPatient)
    return datasets


def _drop_two_slices(datasets: list[Dataset]) -> list[Dataset]:
    return datasets[:5] + datasets[7:]


def _mix_series(datasets: list[Dataset]) -> list[Dataset]:
    datasets[1].SeriesInstanceUID = generate_uid()
    return datasets


REFUSALS = [
    ("modality", _set("Modality", "MR"), "has modality MR; this model reads CT only"),
    ("structured report", _add_structured_report, "is a Basic Text SR Storage"),
    ("non-image object", _set("SOPClassUID", RawDataStorage), "is a Raw Data Storage"),
    ("no pixel data", _delete("PixelData"), "has no pixel data"),
    ("undecodable pixels", _truncate_pixels, "cannot be decoded"),
    ("mixed sizes", _set("Rows", 48), "mixed image sizes"),
    ("mixed orientations", _set("ImageOrientationPatient", [1, 0, 0, 0, 0, -1]), "mixed orientations"),
    ("mixed series", _mix_series, "more than one series"),
    ("duplicate positions", _duplicate_position, "duplicate slices"),
    ("no position", _delete("ImagePositionPatient"), "lacks ImagePositionPatient"),
    ("no frame of reference", _delete("FrameOfReferenceUID"), "has no Frame of Reference UID (0020,0052)"),
]


@pytest.mark.parametrize(("case", "change", "message"), REFUSALS, ids=[r[0] for r in REFUSALS])
def test_it_refuses_a_series_it_cannot_read_saying_why(study, case, change, message):
    datasets = change(_fresh(study))

    with pytest.raises(InputError) as refused:
        decode_series(datasets, SPEC)

    assert message in str(refused.value)


def test_it_names_the_missing_slices(study):
    with pytest.raises(InputError) as refused:
        decode_series(_drop_two_slices(_fresh(study)), SPEC)

    message = str(refused.value)
    # Slices 5 and 6 (z = 11.25 - 2.5 k) are gone: the message names where they were.
    assert "slices are missing" in message
    assert "2 between -6.25 and 1.25 mm" in message
    assert "-3.75" in message
    assert "-1.25" in message


def test_it_refuses_too_few_slices(study):
    with pytest.raises(InputError, match="the series has 10 slices; this model needs at least 12"):
        decode_series(_fresh(study), InputSpec(min_slices=12))


def test_it_refuses_an_empty_series():
    with pytest.raises(InputError, match="no instances"):
        decode_series([], SPEC)


def test_it_refuses_geometry_outside_the_spec(study):
    with pytest.raises(InputError, match=r"the images have 64 rows; this model accepts 128 to 512"):
        decode_series(_fresh(study), InputSpec(min_slices=4, matrix=(128, 512)))
    with pytest.raises(InputError, match=r"the pixel spacing is 0.7 mm; this model accepts 0.8 to 2 mm"):
        decode_series(_fresh(study), InputSpec(min_slices=4, pixel_spacing_mm=(0.8, 2.0)))
    with pytest.raises(InputError, match=r"the slice spacing is 2.50 mm; this model accepts 3 to 6 mm"):
        decode_series(_fresh(study), InputSpec(min_slices=4, slice_spacing_mm=(3.0, 6.0)))


def test_it_refuses_a_body_part_the_model_does_not_read(study):
    chest_only = InputSpec(min_slices=4, body_parts=("CHEST",))
    assert decode_series(_fresh(study), chest_only).hu.shape == (10, 64, 72)

    heads = _fresh(study)
    for ds in heads:
        ds.BodyPartExamined = "HEAD"
    with pytest.raises(InputError, match="the body part is HEAD; this model reads CHEST only"):
        decode_series(heads, chest_only)

    unknown = _fresh(study)
    for ds in unknown:
        del ds.BodyPartExamined
    with pytest.raises(InputError, match="does not record its body part"):
        decode_series(unknown, chest_only)
