"""Content negotiation for WADO-RS (PS3.18 8.7): which media type and transfer syntax to send.

Frames: `multipart/related; type="application/octet-stream"; transfer-syntax=*`
(what the Cornerstone loader sends) gets the stored bytes as they are,
compressed frames staying compressed; `application/octet-stream` without a
transfer syntax, or with Explicit VR Little Endian, gets uncompressed pixels
(decoded when stored compressed); `image/jpeg`, `image/jls`, `image/jp2`... get
the stored bit stream when it already is of that kind. We never re-encode into
another compressed syntax: such requests get 406.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian

from viewer.decode import is_encapsulated
from viewer.dicomweb.http import NotAcceptable

OCTET_STREAM = "application/octet-stream"
DICOM = "application/dicom"
DICOM_JSON = "application/dicom+json"
ANY = {"*/*", "*", "image/*"}
# PS3.18 Table 8.7.3-5: the media type of each compressed transfer syntax's bit stream.
IMAGE_MEDIA_TYPES: dict[str, frozenset[str]] = {
    "image/jpeg": frozenset(
        {
            "1.2.840.10008.1.2.4.50",
            "1.2.840.10008.1.2.4.51",
            "1.2.840.10008.1.2.4.57",
            "1.2.840.10008.1.2.4.70",
        }
    ),
    "image/jls": frozenset({"1.2.840.10008.1.2.4.80", "1.2.840.10008.1.2.4.81"}),
    "image/jp2": frozenset({"1.2.840.10008.1.2.4.90", "1.2.840.10008.1.2.4.91"}),
    "image/jpx": frozenset({"1.2.840.10008.1.2.4.92", "1.2.840.10008.1.2.4.93"}),
    "image/jphc": frozenset(
        {"1.2.840.10008.1.2.4.201", "1.2.840.10008.1.2.4.202", "1.2.840.10008.1.2.4.203"}
    ),
    "image/dicom-rle": frozenset({"1.2.840.10008.1.2.5"}),
}
IMAGE_MEDIA_TYPES["image/x-jls"] = IMAGE_MEDIA_TYPES["image/jls"]
IMAGE_MEDIA_TYPES["image/x-dicom-rle"] = IMAGE_MEDIA_TYPES["image/dicom-rle"]
_UNCOMPRESSED = {None, ExplicitVRLittleEndian, ImplicitVRLittleEndian}


@dataclass(frozen=True)
class MediaRange:
    """One entry of an Accept header: media type, parameters (names lower-cased) and q."""

    media_type: str
    params: dict[str, str] = field(default_factory=dict)
    q: float = 1.0


@dataclass(frozen=True)
class FrameEncoding:
    """How frames go out: each part's media type and transfer syntax; transcode = decode first."""

    part_type: str
    transfer_syntax_uid: str
    transcode: bool


def parse_accept(header: str | None) -> list[MediaRange]:
    """The Accept header's media ranges, most preferred first (none given: */*)."""
    ranges = []
    for entry in _split(header or "*/*", ","):
        media_type, *raw_params = _split(entry, ";")
        params: dict[str, str] = {}
        for raw in raw_params:
            name, _, value = raw.partition("=")
            params[name.strip().lower()] = value.strip().strip('"')
        try:
            q = float(params.pop("q", "1"))
        except ValueError:
            q = 1.0
        if media_type.strip() and q > 0:
            ranges.append(MediaRange(media_type.strip().lower(), params, q))
    ranges.sort(key=lambda r: -r.q)  # stable: equal q keeps the client's order
    return ranges or [MediaRange("*/*")]


def frame_encoding(accept: str | None, stored_transfer_syntax: str) -> FrameEncoding:
    """The encoding for frames stored in `stored_transfer_syntax`, or 406."""
    for media_range in parse_accept(accept):
        if media_range.media_type in ("*/*", "*"):
            return _uncompressed(stored_transfer_syntax, None)  # PS3.18's default
        if media_range.media_type == "multipart/related":
            part_type = media_range.params.get("type", OCTET_STREAM).lower()
        else:
            part_type = media_range.media_type  # a bare part type: taken as its multipart form
        choice = _frame_choice(part_type, media_range.params.get("transfer-syntax"), stored_transfer_syntax)
        if choice is not None:
            return choice
    raise NotAcceptable(
        f"frames are stored as {stored_transfer_syntax}; they can be sent as stored "
        '(multipart/related; type="application/octet-stream"; transfer-syntax=*) or uncompressed '
        '(multipart/related; type="application/octet-stream"), not as the Accept header asks'
    )


def _frame_choice(part_type: str, transfer_syntax: str | None, stored: str) -> FrameEncoding | None:
    compressed = is_encapsulated(stored)
    uncompressed = _uncompressed(stored, transfer_syntax)
    if part_type == OCTET_STREAM:
        if transfer_syntax in _UNCOMPRESSED:
            return uncompressed
        if compressed and transfer_syntax in ("*", stored):
            return FrameEncoding(OCTET_STREAM, stored, transcode=False)
        return FrameEncoding(OCTET_STREAM, ExplicitVRLittleEndian, False) if transfer_syntax == "*" else None
    if part_type in ANY and transfer_syntax in (None, "*"):
        if compressed:
            return FrameEncoding(_image_type(stored), stored, transcode=False)
        return FrameEncoding(OCTET_STREAM, ExplicitVRLittleEndian, transcode=False)
    family = IMAGE_MEDIA_TYPES.get(part_type, frozenset())
    if stored in family and transfer_syntax in (None, "*", stored):
        return FrameEncoding(part_type, stored, transcode=False)
    return None


def _uncompressed(stored: str, transfer_syntax: str | None) -> FrameEncoding:
    """Uncompressed pixels, labelled with the little endian syntax asked for (the bytes are the same)."""
    return FrameEncoding(
        OCTET_STREAM, transfer_syntax or ExplicitVRLittleEndian, transcode=is_encapsulated(stored)
    )


def _image_type(transfer_syntax: str) -> str:
    return next((t for t, family in IMAGE_MEDIA_TYPES.items() if transfer_syntax in family), OCTET_STREAM)


def accepts_json(accept: str | None) -> None:
    """Nothing when the client takes DICOM JSON; else 406 (we do not serve DICOM XML)."""
    for media_range in parse_accept(accept):
        if media_range.media_type in (DICOM_JSON, "application/json", "*/*", "application/*"):
            return
    raise NotAcceptable("this resource is served as application/dicom+json only")


def instance_transfer_syntax(accept: str | None, stored: str) -> None:
    """Nothing when the client takes Part 10 files as stored; else 406.

    Whole instances go out as stored: a client naming no transfer syntax, `*`
    or the stored one gets the original file. Transcoding whole files is not
    offered (frames are transcoded; ask for those).
    """
    for media_range in parse_accept(accept):
        part_type = (
            media_range.params.get("type", DICOM) if media_range.media_type == "multipart/related" else None
        )
        takes_dicom = media_range.media_type in ("*/*", "*") or part_type in (DICOM, "*/*", "application/*")
        if takes_dicom and media_range.params.get("transfer-syntax") in (None, "*", stored):
            return
    raise NotAcceptable(
        f'instances are sent as stored ({stored}): ask for multipart/related; type="application/dicom"; '
        "transfer-syntax=*"
    )


def rendered_media_type(accept: str | None) -> str:
    """image/png (the default) or image/jpeg, as the client prefers; else 406."""
    for media_range in parse_accept(accept):
        if media_range.media_type in ("image/png", "image/*", "*/*"):
            return "image/png"
        if media_range.media_type == "image/jpeg":
            return "image/jpeg"
    raise NotAcceptable("rendered images are served as image/png or image/jpeg")


def _split(text: str, separator: str) -> list[str]:
    """Splits on `separator` outside double quotes."""
    parts: list[str] = []
    current: list[str] = []
    quoted = False
    for char in text:
        if char == '"':
            quoted = not quoted
        if char == separator and not quoted:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return parts
