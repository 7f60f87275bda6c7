"""The Image Pixel module checked before any decode, and where each frame's bytes lie.

Everything a decoder would allocate is bounded from the header first (rows,
columns, frames, samples, bits); native pixel data must be exactly as long as
those say, and encapsulated pixel data must split into exactly that many frames.
Frame offsets are file positions: serving a frame is a seek and a read.
"""

from __future__ import annotations

import itertools
import math
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from django.conf import settings
from pydicom.dataset import Dataset

from viewer.ingest.errors import FailureReason, Rejected
from viewer.ingest.parse import PIXEL_TAGS, PixelElement

Fragment = tuple[int, int]  # (file offset, length)
_ITEM = (0xFFFE, 0xE000)
_SEQUENCE_DELIMITER = (0xFFFE, 0xE0DD)
_MAX_FRAGMENTS = 1_000_000
_BITS_ALLOCATED = {1, 8, 16, 32, 64}


@dataclass(frozen=True)
class PixelFacts:
    rows: int
    columns: int
    frames: int
    samples: int
    bits_allocated: int
    photometric: str

    @property
    def frame_bits(self) -> int:
        # YBR_FULL_422 stores two chroma samples per two pixels: 2 values per pixel.
        values = 2 if self.photometric == "YBR_FULL_422" and self.samples == 3 else self.samples
        return self.rows * self.columns * values * self.bits_allocated

    @property
    def decoded_bytes(self) -> int:
        return self.rows * self.columns * self.frames * self.samples * max(self.bits_allocated // 8, 1)


def pixel_facts(ds: Dataset) -> PixelFacts:
    """The Image Pixel attributes as checked integers, within the configured bounds."""
    facts = PixelFacts(
        rows=_whole(ds, "Rows", required=True),
        columns=_whole(ds, "Columns", required=True),
        frames=_whole(ds, "NumberOfFrames", required=False, default=1),
        samples=_whole(ds, "SamplesPerPixel", required=True),
        bits_allocated=_whole(ds, "BitsAllocated", required=True),
        photometric=str(ds.get("PhotometricInterpretation", "")).strip(),
    )
    limit = settings.DICOM_MAX_ROWS_COLUMNS
    for name, value in (("Rows", facts.rows), ("Columns", facts.columns)):
        if value > limit:
            raise Rejected(
                f"{name} {value} exceeds the limit of {limit}", FailureReason.OUT_OF_RESOURCES, security=True
            )
    if min(facts.rows, facts.columns, facts.frames) < 1:
        raise Rejected("Rows, Columns and Number of Frames must be at least 1", FailureReason.DOES_NOT_MATCH)
    if facts.samples not in (1, 3):
        raise Rejected(f"Samples per Pixel {facts.samples} is not 1 or 3", FailureReason.DOES_NOT_MATCH)
    if facts.bits_allocated not in _BITS_ALLOCATED:
        raise Rejected(
            f"Bits Allocated {facts.bits_allocated} is not 1, 8, 16, 32 or 64", FailureReason.DOES_NOT_MATCH
        )
    if not facts.photometric:
        raise Rejected("Photometric Interpretation (0028,0004) is missing", FailureReason.DOES_NOT_MATCH)
    if facts.decoded_bytes > settings.DICOM_MAX_PIXEL_BYTES:
        raise Rejected(
            f"{facts.rows}x{facts.columns} pixels x {facts.frames} frames x {facts.samples} samples "
            f"x {facts.bits_allocated} bits decode to {facts.decoded_bytes} bytes, "
            f"more than the limit of {settings.DICOM_MAX_PIXEL_BYTES}",
            FailureReason.OUT_OF_RESOURCES,
            security=True,
        )
    return facts


def _whole(ds: Dataset, keyword: str, *, required: bool, default: int = 0) -> int:
    try:
        value = ds.get(keyword)
    except Exception as exc:  # a value pydicom cannot convert
        raise Rejected(f"{keyword} cannot be read: {exc}", FailureReason.DOES_NOT_MATCH) from None
    if value is None or value == "":
        if required:
            raise Rejected(f"{keyword} is missing from the Image Pixel module", FailureReason.DOES_NOT_MATCH)
        return default
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = math.nan
    if not number.is_integer():
        raise Rejected(f"{keyword} {str(value)[:20]!r} is not an integer", FailureReason.DOES_NOT_MATCH)
    return int(number)


def native_frame_offsets(facts: PixelFacts, pixel: PixelElement) -> list[list[Fragment]]:
    """One fragment per frame; checks the value is exactly as long as the header says."""
    expected = math.ceil(facts.frame_bits * facts.frames / 8)
    padded = expected + expected % 2  # values have even length: one pad byte is allowed
    if pixel.length not in (expected, padded):
        raise Rejected(
            f"{PIXEL_TAGS.get(pixel.tag, 'Pixel Data')} holds {pixel.length} bytes, but {facts.rows}x"
            f"{facts.columns} pixels x {facts.frames} frames x {facts.samples} samples x "
            f"{facts.bits_allocated} bits need {expected}",
            FailureReason.DOES_NOT_MATCH,
        )
    if facts.frame_bits % 8:
        return []  # bit-packed frames that do not start on a byte boundary: not addressable
    size = facts.frame_bits // 8
    return [[(pixel.value_offset + index * size, size)] for index in range(facts.frames)]


def encapsulated_frame_offsets(
    path: Path, ds: Dataset, facts: PixelFacts, pixel: PixelElement
) -> list[list[Fragment]]:
    """The fragments of each frame, from the offset tables or, lacking them, the codestream starts."""
    with path.open("rb") as fp:
        basic_table, fragments = _items(fp, pixel)
        if not fragments:
            raise Rejected("the encapsulated Pixel Data holds no fragments")
        if facts.frames == 1:
            return [fragments]
        if len(fragments) == facts.frames:
            return [[fragment] for fragment in fragments]
        table = _extended_offsets(ds) or _basic_offsets(fp, basic_table)
        if table:
            return _split_by_table(fragments, table, facts.frames)
        if len(fragments) < facts.frames:
            raise Rejected(
                f"the encapsulated Pixel Data has {len(fragments)} fragments for {facts.frames} frames",
                FailureReason.DOES_NOT_MATCH,
            )
        return _split_by_codestream_start(fp, fragments, facts.frames)


def _items(fp: IO[bytes], pixel: PixelElement) -> tuple[Fragment, list[Fragment]]:
    """The Basic Offset Table item and the fragments that follow it, up to the delimiter."""
    fp.seek(pixel.value_offset)
    found: list[Fragment] = []
    while True:
        header = fp.read(8)
        if len(header) < 8:
            raise Rejected("the encapsulated Pixel Data ends without its sequence delimiter")
        group, element, length = struct.unpack("<HHL", header)
        if (group, element) == _SEQUENCE_DELIMITER:
            break
        if (group, element) != _ITEM or length == 0xFFFFFFFF:
            raise Rejected(f"the encapsulated Pixel Data has a malformed item at byte {fp.tell() - 8}")
        found.append((fp.tell(), length))
        if len(found) > _MAX_FRAGMENTS:
            raise Rejected(f"the encapsulated Pixel Data has more than {_MAX_FRAGMENTS} fragments")
        fp.seek(length, 1)
    if fp.tell() != pixel.end or not found:
        raise Rejected("the encapsulated Pixel Data's items do not fill its value")
    return found[0], found[1:]


def _basic_offsets(fp: IO[bytes], table: Fragment) -> list[int]:
    offset, length = table
    if length % 4:
        raise Rejected("the Basic Offset Table's length is not a multiple of 4")
    fp.seek(offset)
    return list(struct.unpack(f"<{length // 4}L", fp.read(length)))


def _extended_offsets(ds: Dataset) -> list[int]:
    value = ds.get("ExtendedOffsetTable")
    if not value:
        return []
    raw = bytes(value)
    if len(raw) % 8:
        raise Rejected("the Extended Offset Table's length is not a multiple of 8")
    return list(struct.unpack(f"<{len(raw) // 8}Q", raw))


def _split_by_table(fragments: list[Fragment], table: list[int], frames: int) -> list[list[Fragment]]:
    """Groups fragments by offset table: offsets count from the first fragment's item tag."""
    if len(table) != frames or table[0] != 0 or any(b <= a for a, b in itertools.pairwise(table)):
        raise Rejected(
            f"the offset table lists {len(table)} frames, not the {frames} of Number of Frames, "
            "or its offsets do not increase from 0",
            FailureReason.DOES_NOT_MATCH,
        )
    first_item = fragments[0][0] - 8
    starts = {offset - 8 - first_item: index for index, (offset, _) in enumerate(fragments)}
    if any(offset not in starts for offset in table):
        raise Rejected("the offset table points between fragments", FailureReason.DOES_NOT_MATCH)
    bounds = [starts[offset] for offset in table] + [len(fragments)]
    return [fragments[begin:end] for begin, end in itertools.pairwise(bounds)]


def _split_by_codestream_start(fp: IO[bytes], fragments: list[Fragment], frames: int) -> list[list[Fragment]]:
    # Without an offset table a frame begins with a fragment that starts a codestream
    # (JPEG SOI, JPEG 2000 SOC+SIZ); RLE has exactly one fragment per frame.
    grouped: list[list[Fragment]] = []
    for offset, length in fragments:
        fp.seek(offset)
        head = fp.read(min(length, 4))
        if head.startswith(b"\xff\xd8") or head == b"\xff\x4f\xff\x51" or not grouped:
            grouped.append([])
        grouped[-1].append((offset, length))
    if len(grouped) != frames:
        raise Rejected(
            f"cannot tell where frames begin: {len(fragments)} fragments, {frames} frames, no offset table",
            FailureReason.DOES_NOT_MATCH,
        )
    return grouped


def read_fragments(path: Path, fragments: list[Fragment], *, limit: int | None = None) -> bytes:
    """The bytes of a frame (its fragments joined), or only the first `limit` of them."""
    parts: list[bytes] = []
    remaining = limit if limit is not None else sum(length for _, length in fragments)
    with path.open("rb") as fp:
        for offset, length in fragments:
            if remaining <= 0:
                break
            fp.seek(offset)
            parts.append(fp.read(min(length, remaining)))
            remaining -= length
    return b"".join(parts)


def pixel_module(ds: Dataset) -> dict[str, Any]:
    """The Image Pixel attributes a decoder needs, to decode one frame on its own."""
    keywords = (
        "Rows",
        "Columns",
        "SamplesPerPixel",
        "BitsAllocated",
        "BitsStored",
        "HighBit",
        "PixelRepresentation",
        "PhotometricInterpretation",
        "PlanarConfiguration",
    )
    return {keyword: ds.get(keyword) for keyword in keywords if ds.get(keyword) is not None}
