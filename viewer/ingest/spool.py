"""Inputs as local files: streamed to a temporary file under a size cap, hashed on the way.

Client-supplied names never become paths: temporary files get generated names.
"""

from __future__ import annotations

import hashlib
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from django.conf import settings

from viewer.ingest.errors import FailureReason, Rejected

CHUNK_BYTES = 1 << 20


@dataclass(frozen=True)
class LocalFile:
    path: Path
    size: int
    sha256: str


def too_large(limit: int) -> Rejected:
    return Rejected(f"larger than the limit of {limit} bytes", FailureReason.OUT_OF_RESOURCES, security=True)


@contextmanager
def local_file(source: Path | IO[bytes], *, limit: int) -> Iterator[LocalFile]:
    """`source` as a file on disk, at most `limit` bytes; a stream is copied, a path used as is."""
    if isinstance(source, Path):
        yield _existing(source, limit=limit)
        return
    with temporary_file() as (handle, path):
        size, digest = copy_capped(source, handle, limit=limit)
        handle.flush()
        yield LocalFile(path=path, size=size, sha256=digest)


@contextmanager
def temporary_file() -> Iterator[tuple[IO[bytes], Path]]:
    """A new temporary file (deleted afterwards) in FILE_UPLOAD_TEMP_DIR."""
    with tempfile.NamedTemporaryFile(
        dir=settings.FILE_UPLOAD_TEMP_DIR, prefix="ingest-", suffix=".part"
    ) as handle:
        yield handle, Path(handle.name)


def copy_capped(source: IO[bytes], target: IO[bytes], *, limit: int) -> tuple[int, str]:
    """Copies until the end of `source`; refuses past `limit` bytes. Returns (size, sha256)."""
    digest = hashlib.sha256()
    size = 0
    while chunk := source.read(CHUNK_BYTES):
        size += len(chunk)
        if size > limit:
            raise too_large(limit)
        digest.update(chunk)
        target.write(chunk)
    return size, digest.hexdigest()


def _existing(path: Path, *, limit: int) -> LocalFile:
    try:
        size = path.stat().st_size
        if size > limit:
            raise too_large(limit)
        digest = hashlib.sha256()
        with path.open("rb") as handle:
            while chunk := handle.read(CHUNK_BYTES):
                digest.update(chunk)
    except OSError as exc:
        raise Rejected(f"the file cannot be read: {exc.strerror or exc}") from None
    return LocalFile(path=path, size=size, sha256=digest.hexdigest())
