"""A job's voxel arrays (heatmap, mask) as stored: one gzip member, flushed at every slice.

A 300-slice 512x512 uint8 array is 79 MB raw and mostly zeros. Stored deflated as a single
gzip member with a full flush after each slice, one file serves both ways it is read:
- whole, by the viewer: sent as it is with `Content-Encoding: gzip`, and the browser inflates
  it (a few MB on the wire instead of 79);
- slice by slice (one slice over the API, a finding's slices for a reading): a full flush
  empties the compressor's window, so inflation can start at a slice's recorded offset
  without anything before it.

The offsets (`JobOutput.slice_offsets`: where each slice's deflate data starts in the file)
come from `pack`. An output without offsets is a raw array, as jobs before this format wrote.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Sequence
from typing import IO

import numpy as np

LEVEL = 1  # zlib's fastest: runs of zeros deflate as well as at 6, at a fraction of the time
_HEADER = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"  # gzip, deflate, no name, mtime 0, OS unknown


class ArrayError(Exception):
    """A stored array does not hold what its job's geometry says."""


def pack(array: np.ndarray) -> tuple[bytes, list[int]]:
    """`array` (uint8, (z, y, x)) as a gzip member flushed at each slice, and the offset in
    it where each slice's deflate data starts."""
    if array.dtype != np.uint8 or array.ndim != 3:
        raise ValueError(f"expected a uint8 (z, y, x) array, not {array.dtype} {array.shape}")
    compressor = zlib.compressobj(LEVEL, zlib.DEFLATED, -zlib.MAX_WBITS)  # raw deflate
    parts = [_HEADER]
    offsets: list[int] = []
    written, crc = len(_HEADER), 0
    for plane in array:
        raw = np.ascontiguousarray(plane).data
        offsets.append(written)
        crc = zlib.crc32(raw, crc)
        chunk = compressor.compress(raw) + compressor.flush(zlib.Z_FULL_FLUSH)
        parts.append(chunk)
        written += len(chunk)
    parts.append(compressor.flush(zlib.Z_FINISH))
    parts.append(struct.pack("<II", crc, array.size & 0xFFFFFFFF))
    return b"".join(parts), offsets


def read_slices(handle: IO[bytes], offsets: Sequence[int], plane: int, start: int, stop: int) -> bytes:
    """Slices start..stop-1 of a stored array, raw: inflated from a packed file when there are
    `offsets`, else read straight from a raw one. `plane` is rows x columns."""
    depth = len(offsets)
    if not offsets:
        handle.seek(start * plane)
        content = handle.read((stop - start) * plane)
    else:
        if not 0 <= start < stop <= depth:
            raise ArrayError(f"slices {start}..{stop - 1} are not in 0..{depth - 1}")
        handle.seek(offsets[start])
        length = offsets[stop] - offsets[start] if stop < depth else -1
        inflater = zlib.decompressobj(-zlib.MAX_WBITS)
        try:
            content = inflater.decompress(handle.read(length), (stop - start) * plane)
        except zlib.error as error:
            raise ArrayError(f"the stored array does not inflate: {error}") from error
    expected = (stop - start) * plane
    if len(content) != expected:
        raise ArrayError(f"slices {start}..{stop - 1} hold {len(content)} bytes, not {expected}")
    return content


def unpack(data: bytes) -> bytes:
    """A whole packed file, raw (for a client that does not take gzip)."""
    try:
        return zlib.decompress(data, 16 + zlib.MAX_WBITS)
    except zlib.error as error:
        raise ArrayError(f"the stored array does not inflate: {error}") from error
