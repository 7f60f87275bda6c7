"""Copying the media folder file by file, hashing as it goes (sha256sum's listing format)."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Final

from config.backup.postgres import BackupError

_CHUNK: Final = 1 << 20


def media_copy(*, source: Path, target: Path, listing: Path) -> dict[str, str]:
    """Copies every file under `source` to `target`; writes `listing` and returns {path: sha256}.

    Paths are relative and use "/". Links and other non-files are not followed or copied.
    """
    hashes: dict[str, str] = {}
    with listing.open("w", encoding="utf-8") as out:
        for relative in _files(source):
            hashes[relative] = _copy(source / relative, target / relative)
            out.write(f"{hashes[relative]}  {relative}\n")
    return hashes


def media_copy_checked(*, source: Path, target: Path, listing: Path) -> dict[str, str]:
    """Copies the files `listing` names from `source` to `target`, checking each one's SHA-256."""
    expected = listing_read(listing)
    for relative, sha256 in expected.items():
        if not (source / relative).is_file():
            raise BackupError(f"the backup lacks {relative}, which media.sha256 lists")
        copied = _copy(source / relative, target / relative)
        if copied != sha256:
            raise BackupError(f"{relative} in the backup is damaged: SHA-256 {copied}, listed as {sha256}")
    return expected


def listing_read(listing: Path) -> dict[str, str]:
    entries = {}
    with listing.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, 1):
            sha256, separator, relative = line.rstrip("\n").partition("  ")
            if not separator or len(sha256) != 64 or not relative:
                raise BackupError(f"{listing.name} line {number} is not '<sha256>  <path>'")
            entries[relative] = sha256
    return entries


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _files(root: Path) -> Iterator[str]:
    for folder, folders, names in os.walk(root):
        folders.sort()
        for name in sorted(names):
            path = Path(folder) / name
            if not path.is_file() or path.is_symlink():
                continue
            relative = path.relative_to(root).as_posix()
            if "\n" in relative or "\\" in relative:
                raise BackupError(f"cannot list a file whose name holds a newline or backslash: {relative!r}")
            yield relative


def _copy(source: Path, target: Path) -> str:
    target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    digest = hashlib.sha256()
    with source.open("rb") as reader, target.open("xb") as writer:
        while chunk := reader.read(_CHUNK):
            digest.update(chunk)
            writer.write(chunk)
    return digest.hexdigest()
