"""Is this file an instance Overread accepts? Every check, in the order it is cheapest.

1. Part 10, parsed to its last byte (parse.py), and not a DICOMDIR (an index, not an instance).
2. A transfer syntax we decode.
3. The Type 1 UIDs, well formed, and the file meta agreeing with them.
4. A SOP class a reading workstation reads: images, SEG, Parametric Map, RT Dose
   (image-like, with pixel data) and structured reports (no pixel data).
5. The Image Pixel module bounded before any decode; pixel data as long as it
   must be (native) or split into exactly its frames (encapsulated).
6. Frame 1 decoded, from exactly the bytes the frame offsets point at: a codestream
   that claims another size, or that no decoder can read, is refused here, not
   when a reader opens the study.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.filereader import read_file_meta_info
from pydicom.pixels import get_decoder
from pydicom.uid import UID

from viewer.ingest.codestream import check_codestream
from viewer.ingest.errors import FailureReason, Rejected
from viewer.ingest.parse import PIXEL_TAGS, UNDEFINED_LENGTH, PixelElement, read_layout
from viewer.ingest.pixels import (
    Fragment,
    PixelFacts,
    encapsulated_frame_offsets,
    native_frame_offsets,
    pixel_facts,
    pixel_module,
    read_fragments,
)
from viewer.store import is_valid_uid

# What pydicom (with the pylibjpeg plugins) decodes. Explicit VR Big Endian is
# retired but still found in archives; it is kept as sent and the read side
# swaps bytes. Video, HTJ2K, JPIP and JPEG XL are refused.
SUPPORTED_TRANSFER_SYNTAXES = frozenset(
    UID(uid)
    for uid in (
        "1.2.840.10008.1.2",  # Implicit VR Little Endian
        "1.2.840.10008.1.2.1",  # Explicit VR Little Endian
        "1.2.840.10008.1.2.1.99",  # Deflated Explicit VR Little Endian
        "1.2.840.10008.1.2.2",  # Explicit VR Big Endian (retired)
        "1.2.840.10008.1.2.4.50",  # JPEG Baseline (Process 1)
        "1.2.840.10008.1.2.4.51",  # JPEG Extended (Process 2 & 4)
        "1.2.840.10008.1.2.4.57",  # JPEG Lossless, Non-Hierarchical (Process 14)
        "1.2.840.10008.1.2.4.70",  # JPEG Lossless, Process 14, SV1
        "1.2.840.10008.1.2.4.80",  # JPEG-LS Lossless
        "1.2.840.10008.1.2.4.81",  # JPEG-LS Near-Lossless
        "1.2.840.10008.1.2.4.90",  # JPEG 2000 Lossless Only
        "1.2.840.10008.1.2.4.91",  # JPEG 2000
        "1.2.840.10008.1.2.5",  # RLE Lossless
    )
)
# Image-like objects whose SOP class name does not say "Image Storage".
PIXEL_SOP_CLASSES = frozenset(
    {
        "1.2.840.10008.5.1.4.1.1.66.4",  # Segmentation Storage
        "1.2.840.10008.5.1.4.1.1.66.7",  # Label Map Segmentation Storage
        "1.2.840.10008.5.1.4.1.1.30",  # Parametric Map Storage
        "1.2.840.10008.5.1.4.1.1.481.2",  # RT Dose Storage
    }
)
KEY_OBJECT_SELECTION = "1.2.840.10008.5.1.4.1.1.88.59"
MEDIA_STORAGE_DIRECTORY = "1.2.840.10008.1.3.10"  # a DICOMDIR
_DEFER = "1 KB"
_UIDS = (
    ("StudyInstanceUID", "Study Instance UID (0020,000D)"),
    ("SeriesInstanceUID", "Series Instance UID (0020,000E)"),
    ("SOPInstanceUID", "SOP Instance UID (0008,0018)"),
    ("SOPClassUID", "SOP Class UID (0008,0016)"),
)


@dataclass(frozen=True)
class ValidInstance:
    """A file that passed every check, with what indexing it needs."""

    dataset: Dataset  # large values are read from the file on first use
    transfer_syntax_uid: str
    study_uid: str
    series_uid: str
    sop_instance_uid: str
    sop_class_uid: str
    pixels: PixelFacts | None
    pixel_element: PixelElement | None
    frame_offsets: list[list[Fragment]]


def validate_instance(path: Path) -> ValidInstance:
    """Checks `path` as described above; raises Rejected with the first problem found."""
    layout = read_layout(path)
    if str(layout.meta.get("MediaStorageSOPClassUID", "")) == MEDIA_STORAGE_DIRECTORY:
        raise Rejected(
            "a DICOMDIR (Media Storage Directory) is an index of the files on a medium, "
            "not an instance: send the files it lists",
            FailureReason.SOP_CLASS_NOT_SUPPORTED,
        )
    syntax = layout.transfer_syntax_uid
    if syntax not in SUPPORTED_TRANSFER_SYNTAXES:
        raise Rejected(
            f"transfer syntax {syntax} ({syntax.name}) is not supported",
            FailureReason.TRANSFER_SYNTAX_NOT_SUPPORTED,
        )
    ds = _read_dataset(path, deflated=syntax.is_deflated)
    uids = _checked_uids(ds, layout.meta)
    pixel = layout.pixel or _deflated_pixel_element(ds)
    _check_sop_class(uids["SOPClassUID"], has_pixels=pixel is not None)
    facts = pixel_facts(ds) if pixel is not None else None
    offsets = _frame_offsets(path, ds, facts, pixel, syntax)
    if facts is not None and offsets:
        _decode_first_frame(path, ds, facts, syntax, offsets[0])
    return ValidInstance(
        dataset=ds,
        transfer_syntax_uid=str(syntax),
        study_uid=uids["StudyInstanceUID"],
        series_uid=uids["SeriesInstanceUID"],
        sop_instance_uid=uids["SOPInstanceUID"],
        sop_class_uid=uids["SOPClassUID"],
        pixels=facts,
        pixel_element=layout.pixel,
        frame_offsets=offsets,
    )


def identify(path: Path) -> dict[str, str]:
    """The UIDs and Patient ID a lenient read finds, for reporting a refusal (only well-formed UIDs)."""
    keywords = ("SOPClassUID", "SOPInstanceUID", "StudyInstanceUID", "SeriesInstanceUID", "PatientID")
    try:
        meta = read_file_meta_info(path)
        if UID(str(meta.get("TransferSyntaxUID", ""))).is_deflated:
            # pydicom would inflate the whole data set (perhaps a bomb): the file meta must do.
            values = {"SOPClassUID": str(meta.get("MediaStorageSOPClassUID", ""))}
            values["SOPInstanceUID"] = str(meta.get("MediaStorageSOPInstanceUID", ""))
        else:
            ds = pydicom.dcmread(
                path, stop_before_pixels=True, defer_size=_DEFER, specific_tags=list(keywords)
            )
            values = {keyword: str(ds.get(keyword, "")) for keyword in keywords}
    except Exception:  # nothing identifiable: the refusal is reported without UIDs
        return {}
    found = {
        keyword: value for keyword, value in values.items() if keyword == "PatientID" or is_valid_uid(value)
    }
    found["PatientID"] = found.get("PatientID", "")[:64]
    return found


def _read_dataset(path: Path, *, deflated: bool) -> Dataset:
    try:
        # A deflated data set is inflated in memory (its size was bounded by the walk),
        # so its values cannot be re-read from the file later: read them all now.
        return pydicom.dcmread(path, defer_size=None if deflated else _DEFER, force=False)
    except Exception as exc:  # the walk passed, so this is a value pydicom cannot take
        raise Rejected(f"the data set cannot be read: {_one_line(exc)}") from None


def _checked_uids(ds: Dataset, meta: FileMetaDataset) -> dict[str, str]:
    uids: dict[str, str] = {}
    for keyword, name in _UIDS:
        try:
            value = ds.get(keyword)
        except Exception as exc:  # an unreadable value
            raise Rejected(f"{name} cannot be read: {_one_line(exc)}", FailureReason.DOES_NOT_MATCH) from None
        if not value:
            raise Rejected(f"{name} is missing (a Type 1 attribute)", FailureReason.DOES_NOT_MATCH)
        if not is_valid_uid(value):
            raise Rejected(
                f"{name} {str(value)[:70]!r} is not a valid DICOM UID", FailureReason.DOES_NOT_MATCH
            )
        uids[keyword] = str(value)
    for meta_keyword, keyword, tag in (
        ("MediaStorageSOPInstanceUID", "SOPInstanceUID", "(0002,0003)"),
        ("MediaStorageSOPClassUID", "SOPClassUID", "(0002,0002)"),
    ):
        if str(meta.get(meta_keyword, "")) != uids[keyword]:
            raise Rejected(
                f"{meta_keyword} {tag} {str(meta.get(meta_keyword, ''))[:70]!r} "
                f"does not match {keyword} {uids[keyword]}",
                FailureReason.DOES_NOT_MATCH,
            )
    return uids


def _check_sop_class(sop_class_uid: str, *, has_pixels: bool) -> None:
    uid = UID(sop_class_uid)
    if uid.type != "SOP Class" or not uid.name.endswith(("Storage", "Storage (Retired)")):
        raise Rejected(
            f"SOP class {uid} is not a storage SOP class we know", FailureReason.SOP_CLASS_NOT_SUPPORTED
        )
    if uid.name.endswith("SR Storage") or uid == KEY_OBJECT_SELECTION:
        return
    if "Image Storage" in uid.name or uid in PIXEL_SOP_CLASSES:
        if not has_pixels:
            raise Rejected(
                f"{uid.name} requires Pixel Data but the data set has none", FailureReason.DOES_NOT_MATCH
            )
        return
    raise Rejected(
        f"{uid.name} ({uid}) is not supported: Overread reads images, segmentations, parametric maps "
        "and structured reports",
        FailureReason.SOP_CLASS_NOT_SUPPORTED,
    )


def _deflated_pixel_element(ds: Dataset) -> PixelElement | None:
    # A deflated file's pixel data has no place in the stored bytes; its length still counts.
    for tag in PIXEL_TAGS:
        if tag in ds:
            value = ds[tag].value or b""
            return PixelElement(tag, ds[tag].VR, 0, len(value), 0)
    return None


def _frame_offsets(
    path: Path, ds: Dataset, facts: PixelFacts | None, pixel: PixelElement | None, syntax: UID
) -> list[list[Fragment]]:
    if facts is None or pixel is None:
        return []
    if pixel.length != UNDEFINED_LENGTH:
        if syntax.is_encapsulated:
            raise Rejected(
                f"{syntax.name} needs encapsulated Pixel Data, the file has native",
                FailureReason.DOES_NOT_MATCH,
            )
        offsets = native_frame_offsets(facts, pixel)  # checks the length either way
        return [] if syntax.is_deflated else offsets  # deflated bytes are not addressable
    if not syntax.is_encapsulated:
        raise Rejected(
            f"{syntax.name} needs native Pixel Data, the file has encapsulated", FailureReason.DOES_NOT_MATCH
        )
    return encapsulated_frame_offsets(path, ds, facts, pixel)


def _decode_first_frame(
    path: Path, ds: Dataset, facts: PixelFacts, syntax: UID, fragments: list[Fragment]
) -> None:
    if syntax.is_encapsulated:
        check_codestream(
            syntax,
            read_fragments(path, fragments, limit=1 << 20),
            rows=facts.rows,
            columns=facts.columns,
            samples=facts.samples,
        )
    single = Dataset()
    for keyword, value in pixel_module(ds).items():
        setattr(single, keyword, value)
    single.NumberOfFrames = 1
    single.file_meta = FileMetaDataset()
    single.file_meta.TransferSyntaxUID = syntax
    data = read_fragments(path, fragments)
    if syntax.is_encapsulated:
        single.PixelData = encapsulate([data])
    else:
        single.PixelData = data
        single["PixelData"].VR = "OW" if facts.bits_allocated > 8 else "OB"
    try:
        get_decoder(syntax).as_array(single, index=0)
    except Exception as exc:  # codecs raise many kinds; all mean "cannot decode"
        raise Rejected(f"frame 1 cannot be decoded: {_one_line(exc)}") from None


def _one_line(exc: BaseException, limit: int = 300) -> str:
    text = re.sub(r"\s+", " ", str(exc)).strip() or type(exc).__name__
    return text[:limit]
