"""Frames of stored instances: their stored bytes, uncompressed bytes and decoded pixels.

The fast path reads a frame with a seek and a read at the offsets ingest
recorded (`Instance.frame_offsets`), without parsing DICOM. Decoding goes
through pydicom's decoders (with the pylibjpeg plugins) given a small data set
made of the instance's Image Pixel attributes and the one frame, so a frame
decodes to exactly what pydicom's `pixel_array` gives for it in the whole file.
When frames are not addressable (deflated or big endian files, no offsets), the
stored file is read with pydicom instead; that slower path is kept per
`FrameSource`, so a request for many frames parses the file once.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from types import TracebackType
from typing import IO, Any

import numpy as np
import pydicom
from django.core.files.storage import default_storage
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate, generate_frames
from pydicom.pixels import pack_bits, pixel_array
from pydicom.uid import UID, ExplicitVRLittleEndian, ImplicitVRLittleEndian

from viewer.models import Instance
from viewer.store import store_open

# Native syntaxes whose pixel bytes are already what "uncompressed" means on the wire.
NATIVE_LITTLE_ENDIAN = frozenset({ImplicitVRLittleEndian, ExplicitVRLittleEndian})
PIXEL_KEYWORDS = {"7FE00010": "PixelData", "7FE00008": "FloatPixelData", "7FE00009": "DoubleFloatPixelData"}


class FrameError(Exception):
    """A frame cannot be read or decoded (damaged file, index out of step with the file)."""


def is_encapsulated(transfer_syntax_uid: str) -> bool:
    """Whether frames in this transfer syntax are compressed (encapsulated) bit streams."""
    try:
        return UID(transfer_syntax_uid).is_encapsulated
    except ValueError:  # not a transfer syntax pydicom knows
        return False


def native_bytes(array: np.ndarray, *, bits_allocated: int) -> bytes:
    """A decoded frame as Explicit VR Little Endian pixel bytes (bit-packed for 1 bit)."""
    if bits_allocated == 1:
        return pack_bits(array, pad=False)  # a frame, not a whole (even-length) value
    if array.dtype.kind in "iu" and array.dtype.itemsize * 8 != bits_allocated:
        array = array.astype(f"{array.dtype.kind}{bits_allocated // 8}")
    return array.astype(array.dtype.newbyteorder("<"), copy=False).tobytes()


class FrameSource:
    """Reads and decodes frames of one stored instance; use as a context manager.

    Frame numbers are 1-based as in WADO-RS; callers check them against
    `instance.number_of_frames` first.
    """

    def __init__(self, instance: Instance) -> None:
        self.instance = instance
        self.transfer_syntax_uid = instance.transfer_syntax_uid
        self.encapsulated = is_encapsulated(self.transfer_syntax_uid)
        self._offsets = _checked_offsets(instance.frame_offsets, instance.number_of_frames)
        # Deflate hides the offsets inside a compressed stream; big endian needs
        # pydicom's byte swapping rules (OW/OB, 8 bit in OW): both go the slow way.
        self.addressable = bool(self._offsets) and (
            self.encapsulated or self.transfer_syntax_uid in NATIVE_LITTLE_ENDIAN
        )
        self._fd: int | None = None
        self._file: IO[bytes] | None = None
        self._dataset: Dataset | None = None
        self._template: Dataset | None = None
        self._pixel_keyword = "PixelData"

    def __enter__(self) -> FrameSource:
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        if self._file is not None:
            self._file.close()
            self._file = None

    # --- What WADO-RS serves --------------------------------------------------------
    def stored(self, number: int) -> bytes:
        """The frame as stored: its compressed bit stream, or native pixel bytes."""
        if self.addressable:
            return self._read(self._offsets[number - 1])
        if self.encapsulated:
            return self._dataset_fragments(number)
        return self.uncompressed(number)

    def uncompressed(self, number: int) -> bytes:
        """The frame as Explicit VR Little Endian pixel bytes.

        Native frames keep their stored layout (planar configuration, colour
        space), only made little endian. Compressed frames are decoded as
        pydicom decodes them by default: colour-by-pixel, YBR turned into RGB,
        as other archives decompress them; the metadata still describes the
        stored form.
        """
        if self.addressable and not self.encapsulated:
            return self.stored(number)  # native little endian: the bytes are already right
        if self.encapsulated:
            return native_bytes(self.array(number), bits_allocated=self._bits_allocated())
        return self._native_from_dataset(number)

    def array(self, number: int) -> np.ndarray:
        """The frame's pixels as pydicom decodes them (YBR colour converted to RGB)."""
        try:
            if self.addressable:
                return pixel_array(self._frame_dataset(self.stored(number)))
            return pixel_array(self._full_dataset(), index=number - 1)
        except FrameError:
            raise
        except Exception as exc:  # codecs raise many kinds; all mean "cannot decode this frame"
            raise FrameError(f"cannot decode frame {number}: {exc}") from exc

    # --- Reading --------------------------------------------------------------------
    def _read(self, fragments: list[tuple[int, int]]) -> bytes:
        parts = [self._read_range(offset, length) for offset, length in fragments]
        return parts[0] if len(parts) == 1 else b"".join(parts)

    def _read_range(self, offset: int, length: int) -> bytes:
        if self._fd is None and self._file is None:
            self._open()
        if self._fd is not None:
            data = os.pread(self._fd, length, offset)
        else:
            assert self._file is not None
            self._file.seek(offset)
            data = self._file.read(length)
        if len(data) != length:
            raise FrameError(f"stored file of {self.instance.sop_instance_uid} is shorter than its index")
        return data

    def _open(self) -> None:
        # Local files are read with pread (no per-read seek, no Python buffering);
        # other storages (S3) through their file object.
        try:
            path = default_storage.path(self.instance.storage_key)
        except NotImplementedError:
            self._file = store_open(self.instance.storage_key)
            return
        try:
            self._fd = os.open(path, os.O_RDONLY)
        except OSError as exc:
            raise FrameError(f"stored file of {self.instance.sop_instance_uid} is missing") from exc

    # --- Decoding -------------------------------------------------------------------
    def _frame_dataset(self, data: bytes) -> Dataset:
        """A one-frame data set with the instance's Image Pixel attributes."""
        if self._template is None:
            self._template, self._pixel_keyword = _pixel_template(
                self.instance.metadata, self.transfer_syntax_uid
            )
        ds = Dataset(self._template)
        ds.file_meta = self._template.file_meta
        ds.NumberOfFrames = 1
        keyword = self._pixel_keyword
        if self.encapsulated:
            ds[keyword] = pydicom.DataElement(keyword, "OB", encapsulate([data]))
        else:
            vr = "OW" if keyword == "PixelData" and self._bits_allocated() > 8 else "OB"
            vr = {"FloatPixelData": "OF", "DoubleFloatPixelData": "OD"}.get(keyword, vr)
            ds[keyword] = pydicom.DataElement(keyword, vr, data)
        return ds

    def _bits_allocated(self) -> int:
        if self._dataset is not None:
            return int(self._dataset.BitsAllocated)
        element = self.instance.metadata.get("00280100", {})
        try:
            return int(element["Value"][0])
        except (KeyError, IndexError, TypeError, ValueError):
            raise FrameError("the instance's metadata has no Bits Allocated") from None

    def _full_dataset(self) -> Dataset:
        if self._dataset is None:
            try:
                with store_open(self.instance.storage_key) as handle:
                    self._dataset = pydicom.dcmread(handle)
            except Exception as exc:  # pydicom raises many kinds on a damaged file
                raise FrameError(f"cannot read the stored file: {exc}") from exc
        return self._dataset

    def _native_from_dataset(self, number: int) -> bytes:
        """A native frame of a deflated or big endian file, in its stored layout, little endian."""
        ds = self._full_dataset()
        try:
            array = pixel_array(ds, index=number - 1, raw=True)  # raw: YBR stays YBR
        except Exception as exc:  # codecs raise many kinds; all mean "cannot decode this frame"
            raise FrameError(f"cannot decode frame {number}: {exc}") from exc
        if array.ndim == 3 and int(ds.get("PlanarConfiguration", 0)) == 1:
            array = np.moveaxis(array, -1, 0)  # colour-by-plane, as stored
        return native_bytes(array, bits_allocated=int(ds.BitsAllocated))

    def _dataset_fragments(self, number: int) -> bytes:
        ds = self._full_dataset()
        frames: Iterator[bytes] = generate_frames(
            ds.PixelData, number_of_frames=self.instance.number_of_frames
        )
        for index, frame in enumerate(frames, start=1):
            if index == number:
                return frame
        raise FrameError(f"frame {number} is not in the stored pixel data")


def _pixel_template(metadata: dict[str, Any], transfer_syntax_uid: str) -> tuple[Dataset, str]:
    """The Image Pixel attributes (group 0028, bulk data left out) and the pixel data's keyword."""
    group = {
        tag: element
        for tag, element in metadata.items()
        if tag.upper().startswith("0028") and isinstance(element, dict) and "BulkDataURI" not in element
    }
    try:
        template = Dataset.from_json(group)
    except Exception as exc:  # malformed JSON values
        raise FrameError(f"the instance's pixel attributes are unreadable: {exc}") from exc
    template.file_meta = FileMetaDataset()
    template.file_meta.TransferSyntaxUID = UID(transfer_syntax_uid)
    present = [
        keyword for tag, keyword in PIXEL_KEYWORDS.items() if tag in metadata or tag.lower() in metadata
    ]
    return template, present[0] if present else "PixelData"


def _checked_offsets(raw: Any, number_of_frames: int) -> list[list[tuple[int, int]]]:
    """Instance.frame_offsets, validated: one list of (offset, length) per frame, else []."""
    if not isinstance(raw, list) or len(raw) != number_of_frames:
        return []
    frames: list[list[tuple[int, int]]] = []
    for fragments in raw:
        if not isinstance(fragments, list) or not fragments:
            return []
        pairs = []
        for pair in fragments:
            if not (
                isinstance(pair, list | tuple) and len(pair) == 2 and all(isinstance(v, int) for v in pair)
            ):
                return []
            if pair[0] < 0 or pair[1] < 0:
                return []
            pairs.append((pair[0], pair[1]))
        frames.append(pairs)
    return frames
