"""Helpers of the hostile input suite: each way in as one call, and the checks every refusal shares.

Ways in: the upload endpoint (one file per request, as the page's script sends it), STOW-RS,
the `import_dicom` command and the PACS pull (`pacs_pull`). Each refusal must name its
problem; `refusal_everywhere` sends the same bytes through the first three and returns what
each said, so a test states the expected reason once.
"""

from __future__ import annotations

import html
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import CommandError, call_command
from django.test import Client
from pydicom.uid import generate_uid

from tests.viewer.conftest import ct_dataset, part10
from viewer.ingest.service import ingest_file
from viewer.models import Study

BOUNDARY = "hostile-boundary"
STOW_TYPE = f'multipart/related; type="application/dicom"; boundary={BOUNDARY}'
# Injection strings for every free-text field: SQL that would end the statement, markup and
# script that would run if rendered unescaped, and an attribute break-out.
SQL = "'; DROP TABLE viewer_study; --"
SCRIPT = '<script>alert("xss")</script>'
ATTRIBUTE = '" onmouseover="alert(1)'
IMAGE = "<img src=x onerror=alert(1)>"


# --- Ways in ------------------------------------------------------------------------------------
def upload(client: Client, name: str, content: bytes) -> Any:
    """POST /upload/files with one file, as the upload page's script sends it."""
    return client.post("/upload/files", {"file": SimpleUploadedFile(name, content)})


def stow_body(*parts: bytes, part_type: str = "application/dicom") -> bytes:
    chunks = [
        f"--{BOUNDARY}\r\nContent-Type: {part_type}\r\n\r\n".encode() + part + b"\r\n" for part in parts
    ]
    return b"".join(chunks) + f"--{BOUNDARY}--\r\n".encode()


def stow(client: Client, *parts: bytes, url: str = "/dicomweb/studies", **extra: Any) -> Any:
    """POST a STOW-RS request of `parts`, one Part 10 file each."""
    content_type = extra.pop("content_type", STOW_TYPE)
    return client.post(url, data=stow_body(*parts), content_type=content_type, **extra)


def failure_codes(response: Any) -> list[int]:
    """The FailureReason (0008,1197) of each item of a STOW-RS FailedSOPSequence."""
    failed = response.json().get("00081198", {}).get("Value", [])
    return [item["00081197"]["Value"][0] for item in failed]


@dataclass(frozen=True)
class Imported:
    """What `import_dicom` said: its exit status (0 or 1), its output and its errors."""

    status: int
    out: str
    err: str


def import_dicom(*paths: Path) -> Imported:
    out, err = io.StringIO(), io.StringIO()
    try:
        call_command("import_dicom", *map(str, paths), stdout=out, stderr=err)
    except CommandError as exc:
        return Imported(exc.returncode, out.getvalue(), err.getvalue())
    return Imported(0, out.getvalue(), err.getvalue())


@dataclass(frozen=True)
class Refusal:
    """The reason each way in gave for the same refused file."""

    upload: str
    stow: str
    imported: str


def refusal_everywhere(data: bytes, *, session: Client, token: Client, folder: Path, code: int) -> Refusal:
    """Offers `data` through the upload endpoint, STOW-RS and import_dicom; checks each refused
    it whole with Failure Reason `code` (the upload's and STOW's) and returns the reasons."""
    uploaded = upload(session, "hostile.dcm", data)
    assert uploaded.status_code == 422, uploaded.content  # nothing stored
    results = uploaded.json()["results"]
    assert [r["status"] for r in results] == ["rejected"], results
    assert results[0]["failure_code"] == f"0x{code:04X}", results[0]

    stored = stow(token, data)
    assert stored.status_code == 409, stored.content  # PS3.18: nothing stored
    assert failure_codes(stored) == [code]

    path = folder / "hostile.dcm"
    path.write_bytes(data)
    imported = import_dicom(path)
    assert imported.status == 1
    assert "0 stored, 0 already stored, 1 rejected" in imported.out
    return Refusal(upload=results[0]["reason"], stow=stored["Warning"], imported=imported.err)


def keeps_serving(token: Client) -> None:
    """The next ordinary request works: a valid instance is stored over STOW-RS."""
    ds = ct_dataset()
    response = stow(token, part10(ds))
    assert response.status_code == 200, response.content
    assert Study.objects.filter(study_uid=ds.StudyInstanceUID).exists()


# --- A small study to read ----------------------------------------------------------------------
SLICES, ROWS, COLUMNS = 4, 8, 8
# Type 2 attributes of the Patient and General Study modules, which ct_dataset leaves out: a
# conformant CT has them (perhaps empty), and the reader's SEG and SR copy them.
TYPE_2 = {"PatientBirthDate": "", "PatientSex": "", "ReferringPhysicianName": "", "StudyID": ""}


def tiny_study(*, conformant: bool = True, **attributes: Any) -> Study:
    """A 4-slice 8x8 CT series stored through the ingest service; `attributes` set on every slice
    (PatientName, StudyDescription...). Not `conformant`: without its Type 2 patient and study
    attributes and its Frame of Reference UID, as ct_dataset makes it (ingest accepts that)."""
    study_uid, series_uid = generate_uid(), generate_uid()
    if conformant:
        attributes = {**TYPE_2, "FrameOfReferenceUID": generate_uid(), **attributes}
    for index in range(SLICES):
        ds = ct_dataset(
            rows=ROWS,
            columns=COLUMNS,
            StudyInstanceUID=study_uid,
            SeriesInstanceUID=series_uid,
            InstanceNumber=index + 1,
            ImagePositionPatient=[0.0, 0.0, -2.0 * index],
            **attributes,
        )
        outcome = ingest_file(source=io.BytesIO(part10(ds)), name=f"slice{index}", origin="import")
        assert outcome.status == "stored", outcome.reason
    return Study.objects.get(study_uid=study_uid)


def plane(value: int = 1, *, dtype: str = "uint8", shape: tuple[int, int] = (ROWS, COLUMNS)) -> np.ndarray:
    """A slice of the mask: a 3x3 square of `value` in a plane of `shape`."""
    pixels = np.zeros(shape, dtype=dtype)
    pixels[2:5, 2:5] = value
    return pixels


# --- Escaping -----------------------------------------------------------------------------------
def assert_escaped(page: str, payload: str) -> None:
    """`payload` appears in `page` only as text: escaped at least once, never as raw markup."""
    assert payload not in page, f"{payload!r} is rendered unescaped"
    assert html.escape(payload) in page, f"{payload!r} is not shown at all"
