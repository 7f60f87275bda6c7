"""ZIP uploads: every entry stored or refused on its own; an unsafe archive refused whole, unopened."""

from __future__ import annotations

import io
import random
import zipfile

import pytest

from audit.models import AuditEvent
from tests.viewer.conftest import (
    ct_dataset,
    dicom_file,
    part10,
    zip_bomb,
    zip_of,
    zip_with_encrypted_entry,
    zip_with_symlink,
)
from viewer.ingest.errors import FailureReason
from viewer.ingest.service import IngestOutcome, ingest_upload
from viewer.models import Instance

pytestmark = pytest.mark.django_db


def upload(data: bytes, name: str = "study.zip") -> list[IngestOutcome]:
    return ingest_upload(source=io.BytesIO(data), name=name, origin="upload")


def refused_whole(outcomes: list[IngestOutcome], reason: str, code: int) -> None:
    assert len(outcomes) == 1
    [outcome] = outcomes
    assert outcome.status == "rejected"
    assert reason in outcome.reason, outcome.reason
    assert outcome.failure_code == code
    assert outcome.name == "study.zip"


def test_a_zip_of_files_and_folders_gives_one_outcome_per_file(empty_store, no_upload_temp_files):
    first, second = part10(ct_dataset()), part10(ct_dataset())
    archive = zip_of(
        [
            ("scan/series1/IM0001", first),
            ("scan/series1/IM0002.dcm", second),
            ("scan/series1/IM0002-copy.dcm", second),
            ("scan/README.txt", b"hello"),
            ("__MACOSX/scan/._IM0001", b"resource fork"),
            ("scan/.DS_Store", b"finder"),
            ("scan/", b""),
        ]
    )

    outcomes = upload(archive)

    assert [(o.name, o.status) for o in outcomes] == [
        ("study.zip/scan/series1/IM0001", "stored"),
        ("study.zip/scan/series1/IM0002.dcm", "stored"),
        ("study.zip/scan/series1/IM0002-copy.dcm", "duplicate"),
        ("study.zip/scan/README.txt", "rejected"),
    ]
    assert "not a DICOM Part 10 file" in outcomes[3].reason
    assert Instance.objects.count() == 2
    no_upload_temp_files()


def test_pydicom_files_in_a_zip_are_told_apart_by_content_not_name(empty_store):
    archive = zip_of(
        [("a.zip", dicom_file("CT_small.dcm").read_bytes()), ("b.dcm", b"PK\x03\x04 an archive")]
    )

    outcomes = upload(archive)

    assert [o.status for o in outcomes] == ["stored", "rejected"]
    assert "a ZIP inside a ZIP is not accepted" in outcomes[1].reason


def test_it_refuses_a_zip_bomb_before_extracting(nothing_added, no_upload_temp_files):
    bomb = zip_bomb(expanded_bytes=8 * 1024 * 1024)
    assert len(bomb) < 20_000

    outcomes = upload(bomb)

    refused_whole(outcomes, "more than 200 times (a ZIP bomb?)", FailureReason.OUT_OF_RESOURCES)
    nothing_added()
    no_upload_temp_files()


def test_it_refuses_a_zip_whose_entries_declare_more_than_the_limit(settings, nothing_added):
    settings.DICOM_MAX_UPLOAD_BYTES = 100_000
    letters = random.Random(0).choices(b"ACGT", k=60_000)
    entries = [(f"IM{n}", bytes(letters)) for n in range(2)]  # compresses about 4 times
    archive = zip_of(entries)
    assert len(archive) < settings.DICOM_MAX_UPLOAD_BYTES

    refused_whole(
        upload(archive),
        "the ZIP archive's entries declare more than 100000 bytes in all",
        FailureReason.OUT_OF_RESOURCES,
    )
    nothing_added()


def test_it_refuses_a_zip_with_too_many_entries(settings, nothing_added):
    settings.DICOM_MAX_FILES_PER_UPLOAD = 3
    entries = [(f"IM{n}", b"x") for n in range(4)]

    refused_whole(
        upload(zip_of(entries)), "4 entries, more than the limit of 3", FailureReason.OUT_OF_RESOURCES
    )
    nothing_added()


@pytest.mark.parametrize(
    ("entry", "reason"),
    [
        ("../../etc/passwd", "points outside the archive ('..')"),
        ("scan/../../../etc/cron.d/x.dcm", "points outside the archive ('..')"),
        ("..\\..\\windows\\system32\\x.dcm", "points outside the archive ('..')"),
        ("/etc/passwd", "has an absolute path"),
        ("C:\\Windows\\x.dcm", "has an absolute path"),
    ],
)
def test_it_refuses_entries_that_leave_the_archive(entry, reason, nothing_added, tmp_path):
    archive = zip_of([("scan/IM0001.dcm", part10(ct_dataset())), (entry, part10(ct_dataset()))])

    refused_whole(upload(archive), reason, FailureReason.CANNOT_UNDERSTAND)
    nothing_added()  # not even the good first entry: the archive is checked whole first
    assert not (tmp_path / "etc").exists()


def test_it_refuses_a_symbolic_link_entry(nothing_added):
    refused_whole(upload(zip_with_symlink()), "is a symbolic link", FailureReason.CANNOT_UNDERSTAND)
    nothing_added()


def test_it_refuses_an_encrypted_entry(nothing_added):
    refused_whole(
        upload(zip_with_encrypted_entry(part10(ct_dataset()))),
        "is encrypted",
        FailureReason.CANNOT_UNDERSTAND,
    )
    nothing_added()


def test_it_refuses_a_zip_inside_a_zip(nothing_added):
    inner = zip_of([("IM0001.dcm", part10(ct_dataset()))])

    [outcome] = upload(zip_of([("inner.zip", inner)]))

    assert outcome.status == "rejected"
    assert "a ZIP inside a ZIP is not accepted" in outcome.reason
    nothing_added()


def test_it_refuses_an_entry_that_is_longer_than_it_declares(nothing_added):
    archive = bytearray(zip_of([("IM0001.dcm", b"A" * 1000)], compression=zipfile.ZIP_STORED))
    # Lower the declared size in both headers; the stored data stays 1000 bytes long.
    for signature, offset in ((b"PK\x03\x04", 22), (b"PK\x01\x02", 24)):
        start = archive.find(signature)
        archive[start + offset : start + offset + 4] = (10).to_bytes(4, "little")

    [outcome] = upload(bytes(archive))

    assert outcome.status == "rejected"
    assert outcome.name == "study.zip/IM0001.dcm"
    nothing_added()


def test_it_refuses_a_damaged_zip(nothing_added):
    refused_whole(
        upload(b"PK\x03\x04" + b"\x00" * 100), "not a readable ZIP archive", FailureReason.CANNOT_UNDERSTAND
    )
    nothing_added()


def test_an_empty_zip_is_refused_with_a_reason(nothing_added):
    refused_whole(upload(zip_of([])), "the ZIP archive holds no files", FailureReason.CANNOT_UNDERSTAND)
    nothing_added()


def test_unsafe_archives_are_audited_as_security_alerts(nothing_added):
    before = AuditEvent.objects.order_by("-id").values_list("id", flat=True).first() or 0

    upload(zip_of([("../../etc/passwd", b"root:x:0:0")]))

    event = AuditEvent.objects.get(id__gt=before)
    assert (event.event_id, event.outcome) == ("110113", 4)
    assert "points outside the archive" in event.outcome_reason
