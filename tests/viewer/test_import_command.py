"""`manage.py import_dicom PATH...`: folders, files and ZIPs; a summary; exit status 1 on any rejection."""

from __future__ import annotations

import io

import pytest
from django.core.management import CommandError, call_command, execute_from_command_line

from audit.models import AuditEvent
from tests.viewer.conftest import ct_dataset, dicom_file, part10, write, zip_of
from viewer.models import Instance

pytestmark = pytest.mark.django_db


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_it_imports_a_folder_tree_with_a_zip_and_says_what_it_did(tmp_path, empty_store):
    write(tmp_path, "scans/a/CT_small.dcm", dicom_file("CT_small.dcm").read_bytes())
    write(tmp_path, "scans/a/b/IM0001", part10(ct_dataset()))
    write(
        tmp_path,
        "scans/series.zip",
        zip_of([("IM1.dcm", part10(ct_dataset())), ("IM2.dcm", part10(ct_dataset()))]),
    )
    write(tmp_path, "scans/.DS_Store", b"finder")
    write(tmp_path, "scans/DICOMDIR", b"a directory, not an image")
    out = io.StringIO()

    call_command("import_dicom", str(tmp_path / "scans"), stdout=out)

    assert out.getvalue() == "3 file(s) read: 4 stored, 0 already stored, 0 rejected\n"
    assert Instance.objects.count() == 4


def test_a_second_import_reports_duplicates(tmp_path, empty_store):
    path = write(tmp_path, "CT_small.dcm", dicom_file("CT_small.dcm").read_bytes())
    call_command("import_dicom", str(path), stdout=io.StringIO())
    out = io.StringIO()

    call_command("import_dicom", str(path), stdout=out)

    assert out.getvalue() == "1 file(s) read: 0 stored, 1 already stored, 0 rejected\n"


def test_rejections_are_listed_with_reasons_and_fail_the_command(tmp_path, empty_store):
    good = write(tmp_path, "in/CT_small.dcm", dicom_file("CT_small.dcm").read_bytes())
    truncated = write(tmp_path, "in/MR_truncated.dcm", dicom_file("MR_truncated.dcm").read_bytes())
    slip = write(tmp_path, "in/slip.zip", zip_of([("../../etc/passwd", b"root:x:0:0")]))
    out, err = io.StringIO(), io.StringIO()

    with pytest.raises(CommandError, match="2 rejected, 1 not found") as raised:
        call_command("import_dicom", str(tmp_path / "in"), str(tmp_path / "missing"), stdout=out, stderr=err)

    assert raised.value.returncode == 1
    assert out.getvalue() == "3 file(s) read: 1 stored, 0 already stored, 2 rejected\n"
    assert f"  not found: {tmp_path / 'missing'}\n" in err.getvalue()
    assert f"  rejected {truncated}: the file is truncated" in err.getvalue()
    assert f"  rejected {slip}: entry '../../etc/passwd' points outside the archive" in err.getvalue()
    assert Instance.objects.get().sop_instance_uid == "1.3.6.1.4.1.5962.1.1.1.1.1.20040119072730.12322"
    assert good.exists()


def test_the_exit_status_is_1_when_anything_was_rejected(tmp_path, empty_store, capsys):
    path = write(tmp_path, "notes.txt", b"not an image")

    with pytest.raises(SystemExit) as exited:
        execute_from_command_line(["manage.py", "import_dicom", str(path)])

    assert exited.value.code == 1
    assert "rejected" in capsys.readouterr().err


def test_the_exit_status_is_0_when_nothing_was_rejected(tmp_path, empty_store, capsys):
    path = write(tmp_path, "CT_small.dcm", dicom_file("CT_small.dcm").read_bytes())

    execute_from_command_line(["manage.py", "import_dicom", str(path)])

    assert "1 stored" in capsys.readouterr().out


def test_a_terminal_sees_a_progress_counter(tmp_path, empty_store):
    for name in ("IM1", "IM2"):
        write(tmp_path, f"in/{name}", part10(ct_dataset()))
    terminal = Terminal()

    call_command("import_dicom", str(tmp_path / "in"), stdout=terminal)

    shown = terminal.getvalue()
    assert "\r[1/2] " in shown
    assert "\r[2/2] " in shown
    assert shown.endswith("2 file(s) read: 2 stored, 0 already stored, 0 rejected\n")


def test_imports_are_audited_as_the_operating_system_account(tmp_path, empty_store):
    path = write(tmp_path, "IM1", part10(ct_dataset()))

    call_command("import_dicom", str(path), stdout=io.StringIO())

    event = AuditEvent.objects.filter(event_id="110107").get()
    assert event.username.startswith("os:")
    assert event.outcome == 0
