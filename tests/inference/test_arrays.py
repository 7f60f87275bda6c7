"""inference.arrays: a job's arrays stored as one gzip member that reads back whole or by slice."""

from __future__ import annotations

import gzip
import io

import numpy as np
import pytest

from inference.arrays import ArrayError, pack, read_slices, unpack

PLANE = 24 * 32


@pytest.fixture
def array() -> np.ndarray:
    values = np.zeros((9, 24, 32), dtype=np.uint8)  # mostly zeros, as a mask or heatmap is
    values[2:6, 5:15, 8:20] = np.random.default_rng(3).integers(1, 256, (4, 10, 12), dtype=np.uint8)
    values[8] = 255  # the last slice, full
    return values


def test_the_file_is_one_gzip_member_of_the_raw_array(array: np.ndarray) -> None:
    data, offsets = pack(array)
    assert gzip.decompress(data) == array.tobytes()
    assert unpack(data) == array.tobytes()
    assert len(offsets) == len(array)
    assert offsets == sorted(set(offsets))
    assert len(data) < array.nbytes / 4


@pytest.mark.parametrize(("start", "stop"), [(0, 1), (3, 4), (8, 9), (2, 7), (0, 9)])
def test_any_run_of_slices_reads_back_from_its_offset(array: np.ndarray, start: int, stop: int) -> None:
    data, offsets = pack(array)
    assert read_slices(io.BytesIO(data), offsets, PLANE, start, stop) == array[start:stop].tobytes()


def test_a_raw_array_without_offsets_reads_as_before(array: np.ndarray) -> None:
    raw = io.BytesIO(array.tobytes())
    assert read_slices(raw, [], PLANE, 4, 6) == array[4:6].tobytes()
    with pytest.raises(ArrayError, match="hold 0 bytes"):
        read_slices(raw, [], PLANE, 9, 10)  # past the end


def test_a_damaged_file_or_a_slice_outside_it_is_an_array_error(array: np.ndarray) -> None:
    data, offsets = pack(array)
    with pytest.raises(ArrayError, match=r"not in 0\.\.8"):
        read_slices(io.BytesIO(data), offsets, PLANE, 8, 10)
    with pytest.raises(ArrayError, match="does not inflate"):
        read_slices(io.BytesIO(b"\xff" * len(data)), offsets, PLANE, 2, 3)
    with pytest.raises(ArrayError, match="bytes, not"):
        read_slices(io.BytesIO(data), offsets, PLANE * 2, 2, 3)  # another geometry
    with pytest.raises(ArrayError, match="does not inflate"):
        unpack(data[:-20])


def test_only_a_uint8_volume_is_packed() -> None:
    with pytest.raises(ValueError, match="uint8"):
        pack(np.zeros((2, 3, 4), dtype=np.float32))
    with pytest.raises(ValueError, match="uint8"):
        pack(np.zeros((3, 4), dtype=np.uint8))
