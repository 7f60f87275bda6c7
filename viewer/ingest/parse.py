"""A Part 10 file parsed to its last byte, without trusting pydicom's leniency.

`dcmread` reads truncated and damaged files without complaint (a value cut short
is simply shorter), so a successful read proves nothing. Here the file meta is
read, then every top-level element is walked with large values skipped rather
than loaded: each must end inside the file, each value read must be as long as
its header says, and the last element must end exactly at the end of the file.
The walk also records where the pixel data lies, for the frame offsets.
"""

from __future__ import annotations

import tempfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from django.conf import settings
from pydicom.dataelem import RawDataElement
from pydicom.dataset import FileMetaDataset
from pydicom.filereader import _read_file_meta_info, data_element_generator
from pydicom.uid import UID

from viewer.ingest.errors import FailureReason, Rejected

PART10_MAGIC_OFFSET = 128
PART10_MAGIC = b"DICM"
PIXEL_TAGS = {0x7FE00010: "Pixel Data", 0x7FE00008: "Float Pixel Data", 0x7FE00009: "Double Float Pixel Data"}
UNDEFINED_LENGTH = 0xFFFFFFFF
# Values longer than this are skipped during the walk, not read into memory.
_DEFER_BYTES = 1024
_CHUNK = 1 << 20
MAX_INFLATED_BYTES = 256 * 1024 * 1024


@dataclass(frozen=True)
class PixelElement:
    """Where a top-level pixel data element lies in the file."""

    tag: int
    vr: str | None
    value_offset: int  # file offset of the first value byte
    length: int  # UNDEFINED_LENGTH for encapsulated pixel data
    end: int  # file offset just after the element (after its delimiter when encapsulated)


@dataclass(frozen=True)
class Part10Layout:
    meta: FileMetaDataset
    transfer_syntax_uid: UID
    pixel: PixelElement | None  # None when the file has no pixel data, or is deflated


def is_part10(head: bytes) -> bool:
    """Whether the first 132 bytes are a Part 10 preamble and the "DICM" prefix."""
    return head[PART10_MAGIC_OFFSET : PART10_MAGIC_OFFSET + 4] == PART10_MAGIC


def read_layout(path: Path) -> Part10Layout:
    """Checks that `path` is a complete Part 10 file; raises Rejected when it is not."""
    size = path.stat().st_size
    if size == 0:
        raise Rejected("the file is empty")
    with path.open("rb") as fp:
        if not is_part10(fp.read(PART10_MAGIC_OFFSET + 4)):
            raise Rejected("not a DICOM Part 10 file: no 'DICM' prefix after the 128-byte preamble")
        meta = _file_meta(fp)
        syntax = _transfer_syntax(meta)
        if syntax.is_deflated:
            with _inflated(fp) as (inflated, inflated_size):
                _walk(inflated, inflated_size, implicit_vr=False, little_endian=True)
            return Part10Layout(meta=meta, transfer_syntax_uid=syntax, pixel=None)
        pixel = _walk(fp, size, implicit_vr=syntax.is_implicit_VR, little_endian=syntax.is_little_endian)
    return Part10Layout(meta=meta, transfer_syntax_uid=syntax, pixel=pixel)


def _file_meta(fp: IO[bytes]) -> FileMetaDataset:
    try:
        meta = _read_file_meta_info(fp)  # type: ignore[arg-type]
        for element in meta.iterall():  # converts each raw element: damaged values raise here
            element.value  # noqa: B018
    except Exception as exc:  # pydicom raises many kinds on a damaged header
        raise Rejected(f"the file meta information (group 0002) cannot be read: {exc}") from None
    if not meta:
        raise Rejected("the file meta information (group 0002) is missing")
    return meta


def _transfer_syntax(meta: FileMetaDataset) -> UID:
    value = meta.get("TransferSyntaxUID")
    if not value:
        raise Rejected("the file meta information has no Transfer Syntax UID (0002,0010)")
    syntax = UID(str(value).strip("\x00 "))
    if not syntax.is_transfer_syntax:
        raise Rejected(
            f"transfer syntax {syntax} is not supported (not a transfer syntax we know)",
            FailureReason.TRANSFER_SYNTAX_NOT_SUPPORTED,
        )
    return syntax


def _walk(fp: IO[bytes], size: int, *, implicit_vr: bool, little_endian: bool) -> PixelElement | None:
    """Walks the top-level elements to the end of the file; returns the pixel data's place."""
    pixel: PixelElement | None = None
    end = fp.tell()
    try:
        for element in data_element_generator(fp, implicit_vr, little_endian, defer_size=_DEFER_BYTES):  # type: ignore[arg-type]
            end = fp.tell()
            _check_complete(element, end, size)
            if element.tag in PIXEL_TAGS:
                if not isinstance(element, RawDataElement):  # parsed as a sequence of items
                    raise Rejected(f"{PIXEL_TAGS[element.tag]} is encoded as a sequence")
                pixel = PixelElement(int(element.tag), element.VR, element.value_tell, element.length, end)
    except Rejected:
        raise
    except Exception as exc:  # EOFError, struct.error, ValueError...: all mean a damaged data set
        raise Rejected(f"the data set cannot be parsed: {exc}") from None
    if end != size:
        raise Rejected(f"the data set cannot be parsed: {size - end} bytes after element end at {end}")
    return pixel


def _check_complete(element: object, end: int, size: int) -> None:
    tag = getattr(element, "tag", 0)
    if end > size:
        raise Rejected(
            f"the file is truncated: element {tag} ends {end - size} bytes after the end of the file"
        )
    length = getattr(element, "length", None)
    value = getattr(element, "value", None)
    if isinstance(value, bytes) and length not in (None, UNDEFINED_LENGTH) and len(value) != length:
        raise Rejected(f"the file is truncated: element {tag} has {len(value)} of its {length} bytes")


@contextmanager
def _inflated(fp: IO[bytes]) -> Iterator[tuple[IO[bytes], int]]:
    """The deflated data set, inflated into a temporary file under the size limit.

    pydicom reads a deflated data set into memory whole, so it gets a smaller
    limit than other files; deflate is rare in practice and used for small objects.
    """
    limit = min(settings.DICOM_MAX_FILE_BYTES, MAX_INFLATED_BYTES)
    inflater = zlib.decompressobj(-zlib.MAX_WBITS)
    with tempfile.TemporaryFile(dir=settings.FILE_UPLOAD_TEMP_DIR) as out:
        total = 0
        try:
            while chunk := fp.read(_CHUNK):
                while chunk:
                    # max_length bounds each step, so a deflate bomb never fills memory.
                    data = inflater.decompress(chunk, _CHUNK)
                    total += len(data)
                    if total > limit:
                        raise Rejected(
                            f"the deflated data set inflates to more than {limit} bytes",
                            FailureReason.OUT_OF_RESOURCES,
                            security=True,
                        )
                    out.write(data)
                    chunk = inflater.unconsumed_tail
        except zlib.error as exc:
            raise Rejected(f"the deflated data set cannot be inflated: {exc}") from None
        out.seek(0)
        yield out, total
