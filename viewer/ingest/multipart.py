"""multipart/related bodies (STOW-RS requests), split without reading them into memory.

The body is first streamed to a temporary file under the upload cap; here it is
memory-mapped and searched for its delimiters, so a part of any size costs no
memory, and each part is then copied to its own temporary file for ingest.
"""

from __future__ import annotations

import mmap
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from viewer.ingest.spool import CHUNK_BYTES, temporary_file

_CRLF = b"\r\n"
_MAX_HEADER_BYTES = 16 * 1024


class MalformedMultipart(Exception):
    """The body is not multipart as its Content-Type says (HTTP 400)."""


class TooManyParts(Exception):
    """More parts than one request may carry (HTTP 413)."""


@dataclass(frozen=True)
class Part:
    """One part: its headers (names in lower case) and where its content lies in the body file."""

    headers: dict[str, str]
    start: int
    end: int

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "").split(";", 1)[0].strip().lower()


def split_parts(path: Path, boundary: str, *, max_parts: int) -> list[Part]:
    """The parts of the multipart body in `path` (RFC 2046 5.1), in order."""
    if not boundary or len(boundary) > 70:
        raise MalformedMultipart("the boundary parameter is missing or longer than 70 characters")
    if path.stat().st_size == 0:
        raise MalformedMultipart("the request body is empty")
    delimiter = b"--" + boundary.encode("latin-1")
    with path.open("rb") as handle, mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as body:
        position = _first_delimiter(body, delimiter)
        parts: list[Part] = []
        while True:
            position += len(delimiter)
            if body[position : position + 2] == b"--":
                break  # the close delimiter
            if len(parts) == max_parts:
                raise TooManyParts(f"more than {max_parts} parts in one request")
            part, position = _part(body, position, delimiter)
            parts.append(part)
    if not parts:
        raise MalformedMultipart("the multipart body has no parts")
    return parts


def _first_delimiter(body: mmap.mmap, delimiter: bytes) -> int:
    if body[: len(delimiter)] == delimiter:
        return 0
    position = body.find(_CRLF + delimiter)  # after a preamble
    if position < 0:
        raise MalformedMultipart("the body does not contain its boundary")
    return position + 2


def _part(body: mmap.mmap, position: int, delimiter: bytes) -> tuple[Part, int]:
    line_end = body.find(_CRLF, position)
    if line_end < 0 or body[position:line_end].strip(b" \t"):
        raise MalformedMultipart("a boundary line is followed by something other than a line break")
    header_start = line_end + 2
    if body[header_start : header_start + 2] == _CRLF:
        headers, content_start = {}, header_start + 2
    else:
        header_end = body.find(_CRLF + _CRLF, header_start, header_start + _MAX_HEADER_BYTES)
        if header_end < 0:
            raise MalformedMultipart("a part's headers do not end with a blank line")
        headers = _headers(bytes(body[header_start:header_end]))
        content_start = header_end + 4
    content_end = body.find(_CRLF + delimiter, content_start)
    if content_end < 0:
        raise MalformedMultipart("the body ends without its close delimiter")
    return Part(headers=headers, start=content_start, end=content_end), content_end + 2


def _headers(block: bytes) -> dict[str, str]:
    headers = {}
    for line in block.decode("latin-1").split("\r\n"):
        name, colon, value = line.partition(":")
        if not colon or not name.strip():
            raise MalformedMultipart(f"a part has a malformed header line {line[:60]!r}")
        headers[name.strip().lower()] = value.strip()
    return headers


@contextmanager
def part_file(body: Path, part: Part) -> Iterator[Path]:
    """The part's content copied to a temporary file of its own."""
    with temporary_file() as (target, path), body.open("rb") as source:
        source.seek(part.start)
        remaining = part.end - part.start
        while remaining > 0:
            chunk = source.read(min(CHUNK_BYTES, remaining))
            if not chunk:
                break
            target.write(chunk)
            remaining -= len(chunk)
        target.flush()
        yield path
