"""The image size a compressed frame claims, read from its codestream header.

Checked against Rows, Columns and Samples per Pixel before anything is decoded:
a decoder allocates what the codestream says, so a small file whose JPEG or
JPEG 2000 header claims a huge image would otherwise exhaust memory.
"""

from __future__ import annotations

import struct
from typing import NamedTuple

from pydicom.uid import UID

from viewer.ingest.errors import FailureReason, Rejected

# Start-of-frame markers of JPEG (ITU T.81, all processes) and JPEG-LS (SOF55).
_JPEG_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF, 0xF7}
_STANDALONE = {0x01, *range(0xD0, 0xD9)}  # markers without a length field (TEM, RSTn, SOI)
_J2K_SIZ = b"\xff\x4f\xff\x51"  # SOC then SIZ: the main header's start


class FrameSize(NamedTuple):
    rows: int
    columns: int
    samples: int


def codestream_size(syntax: UID, head: bytes) -> FrameSize | None:
    """The size claimed by the start of a compressed frame; None for RLE (sized by the data set)."""
    if syntax.keyword.startswith("JPEG2000"):
        return _j2k_size(head)
    if syntax.keyword.startswith("JPEG"):
        return _jpeg_size(head)
    return None


def check_codestream(syntax: UID, head: bytes, *, rows: int, columns: int, samples: int) -> None:
    """Refuses a frame whose codestream claims another size than the data set's header."""
    size = codestream_size(syntax, head)
    if size is None:
        return
    if size != FrameSize(rows, columns, samples):
        raise Rejected(
            f"the compressed frame claims {size.rows}x{size.columns} pixels with {size.samples} samples, "
            f"the header says {rows}x{columns} with {samples}",
            FailureReason.DOES_NOT_MATCH,
            security=True,  # a decoder would allocate what the codestream claims
        )


def _jpeg_size(head: bytes) -> FrameSize:
    if not head.startswith(b"\xff\xd8"):
        raise Rejected("the compressed frame is not a JPEG codestream (no start-of-image marker)")
    position = 2
    while position + 4 <= len(head):
        if head[position] != 0xFF:
            break
        marker = head[position + 1]
        if marker == 0xFF:  # fill byte
            position += 1
            continue
        if marker in _STANDALONE:
            position += 2
            continue
        (length,) = struct.unpack_from(">H", head, position + 2)
        if marker in _JPEG_SOF and position + 10 <= len(head):
            rows, columns, components = struct.unpack_from(">HHB", head, position + 5)
            return FrameSize(rows, columns, components)
        position += 2 + length
    raise Rejected("the JPEG codestream has no frame header where one must be")


def _j2k_size(head: bytes) -> FrameSize:
    # A JP2 wrapper (not allowed in DICOM, but seen) puts boxes before the codestream.
    start = head.find(_J2K_SIZ)
    if start < 0 or start + 42 > len(head):
        raise Rejected("the compressed frame is not a JPEG 2000 codestream (no SIZ marker)")
    xsiz, ysiz, x_offset, y_offset = struct.unpack_from(">IIII", head, start + 8)
    (components,) = struct.unpack_from(">H", head, start + 40)
    if x_offset > xsiz or y_offset > ysiz:
        raise Rejected("the JPEG 2000 codestream's image offset lies outside the image")
    return FrameSize(ysiz - y_offset, xsiz - x_offset, components)
