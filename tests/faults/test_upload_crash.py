"""An ingest process that dies mid-upload (after spooling the body and writing the store file,
before indexing it) leaves files behind; the clean-up task removes exactly those, once they
are old enough, and leaves indexed data and uploads in progress alone."""

from __future__ import annotations

import hashlib
import io
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command

from tests.faults.helpers import media_files
from tests.viewer.conftest import ct_dataset, part10
from viewer.ingest.service import ingest_upload
from viewer.models import Instance
from viewer.store import instance_key
from viewer.tasks import ingest_orphans_remove

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

# Runs one upload through the ingest service in a process that is SIGKILLed (as by the OOM
# killer or a pod eviction) when the index rows are about to be written.
_CRASHING_UPLOAD = """
import io, os, signal, sys
import django
django.setup()
from viewer.ingest import service
def crash(*args, **kwargs):
    os.kill(os.getpid(), signal.SIGKILL)
service.index_rows_write = crash
service.ingest_upload(source=io.BytesIO(sys.stdin.buffer.read()), name="crash.dcm", origin="upload")
"""


def _crash_during_upload(data: bytes, spool: Path) -> int:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "OVERREAD_TEST_WORKER": "1",  # the test database, as the Celery worker of the suite
        "FILE_UPLOAD_TEMP_DIR": str(spool),
    }
    env.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
    root = Path(__file__).resolve().parents[2]  # the repository, where tests.settings imports
    command = [sys.executable, "-c", _CRASHING_UPLOAD]
    return subprocess.run(command, input=data, env=env, cwd=root, capture_output=True, timeout=60).returncode


def _age(paths: list[Path], hours: float = 2) -> None:
    past = time.time() - hours * 3600
    for path in paths:
        os.utime(path, (past, past))


def test_the_clean_up_task_removes_what_a_crashed_upload_left_and_nothing_else(
    settings: Any, tmp_path: Path
) -> None:
    spool = tmp_path / "spool"
    spool.mkdir()
    settings.FILE_UPLOAD_TEMP_DIR = str(spool)
    media = Path(settings.MEDIA_ROOT)
    kept = ct_dataset()
    (outcome,) = ingest_upload(source=io.BytesIO(part10(kept)), name="kept.dcm", origin="upload")
    assert outcome.status == "stored", outcome.reason
    kept_key = Instance.objects.get(sop_instance_uid=kept.SOPInstanceUID).storage_key
    lost = ct_dataset()
    uids = (lost.StudyInstanceUID, lost.SeriesInstanceUID, lost.SOPInstanceUID)
    lost_key = instance_key(study_uid=uids[0], series_uid=uids[1], sop_instance_uid=uids[2])

    assert _crash_during_upload(part10(lost), spool) == -9
    left_spool = sorted(spool.iterdir())
    assert len(left_spool) == 1, "the crashed upload's spool file"
    assert left_spool[0].name.startswith("ingest-")
    assert lost_key in media_files("dicom"), "the crashed upload's store file"
    assert not Instance.objects.filter(sop_instance_uid=lost.SOPInstanceUID).exists()

    # Freshly written files may belong to an ingest still running: the task leaves them.
    assert ingest_orphans_remove(older_than_minutes=60) == {"spool_files": 0, "store_files": 0}
    assert lost_key in media_files("dicom")

    in_progress = spool / "ingest-now.part"
    in_progress.write_bytes(b"an upload arriving now")
    _age([*left_spool, media / lost_key, media / kept_key])
    call_command("ingest_orphans_remove", "--older-than", "60", stdout=io.StringIO())

    assert sorted(spool.iterdir()) == [in_progress]
    assert lost_key not in media_files("dicom")
    assert kept_key in media_files("dicom")
    assert Instance.objects.get(storage_key=kept_key).sha256 == _sha256(media / kept_key)
    # The crashed upload, sent again, is stored as if nothing had happened.
    (again,) = ingest_upload(source=io.BytesIO(part10(lost)), name="again.dcm", origin="upload")
    assert again.status == "stored", again.reason


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()
