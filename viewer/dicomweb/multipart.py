"""multipart/related responses (RFC 2387) as PS3.18 and its clients read them.

The body starts with the first boundary line (no preamble) and each part's
headers are spelled `Content-Type:` exactly: the Cornerstone image loader finds
both by plain string search. Parts are produced lazily so a response can
stream files and frames without holding them all.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Iterator

from django.http import HttpResponse, StreamingHttpResponse

Part = tuple[str, bytes | Iterable[bytes]]  # (Content-Type of the part, its content)


def new_boundary() -> str:
    """A random boundary: 128 bits make a collision with pixel data a non-event."""
    return f"overread-{secrets.token_hex(16)}"


def content_type(part_type: str, boundary: str) -> str:
    return f'multipart/related; type="{part_type}"; boundary={boundary}'


def chunks(parts: Iterable[Part], boundary: str) -> Iterator[bytes]:
    """The body, part by part: `--boundary`, headers, blank line, content, CRLF; then `--boundary--`."""
    for part_type, content in parts:
        yield f"--{boundary}\r\nContent-Type: {part_type}\r\n\r\n".encode()
        if isinstance(content, bytes):
            yield content
        else:
            yield from content
        yield b"\r\n"
    yield f"--{boundary}--\r\n".encode()


def multipart_response(
    parts: Iterable[Part], part_type: str, *, stream: bool
) -> HttpResponse | StreamingHttpResponse:
    """A multipart/related response; `stream` sends it as it is produced (no Content-Length)."""
    boundary = new_boundary()
    media_type = content_type(part_type, boundary)
    if stream:
        return StreamingHttpResponse(chunks(parts, boundary), content_type=media_type)
    return HttpResponse(b"".join(chunks(parts, boundary)), content_type=media_type)
