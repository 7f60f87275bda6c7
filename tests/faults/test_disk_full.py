"""The media disk fills up during a STOW-RS: the client is told the store is out of space,
nothing is indexed, no partial file is left, and once space returns the same request works."""

from __future__ import annotations

import errno
import hashlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from django.test import Client
from rest_framework.authtoken.models import Token

from tests.viewer.conftest import ct_dataset, part10, stored_files
from tests.viewer.dicomweb_helpers import stow_body
from viewer.ingest.errors import FailureReason
from viewer.models import Instance, Series, Study

pytestmark = pytest.mark.django_db

FREE_BYTES = 16 * 1024  # left on the disk: less than one 256 x 256 CT slice
FILLER = "filler.bin"


class _FullFile:
    """A file whose writes stop part way with ENOSPC, as a full disk's do."""

    def __init__(self, handle: Any) -> None:
        self._handle = handle

    def write(self, data: bytes) -> int:
        self._handle.write(data[: len(data) // 2])
        self._handle.flush()
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    def close(self) -> None:
        self._handle.close()


def _mount_tmpfs(root: Path) -> bool:
    try:
        command = ["mount", "-t", "tmpfs", "-o", "size=1m,mode=0700", "tmpfs", str(root)]
        return subprocess.run(command, capture_output=True, timeout=10).returncode == 0
    except OSError:  # no mount(8) here
        return False


@pytest.fixture
def small_media_disk(settings: Any, tmp_path: Path) -> Iterator[Path]:
    """MEDIA_ROOT on a real 1 MiB tmpfs, filled to FREE_BYTES; where mounting is not permitted,
    the storage's file writes fail part way with ENOSPC until the filler is removed."""
    root = tmp_path / "media"
    root.mkdir()
    settings.MEDIA_ROOT = root
    filler = root / FILLER
    if _mount_tmpfs(root):
        filler.write_bytes(b"\0" * (os.statvfs(root).f_bavail * os.statvfs(root).f_frsize - FREE_BYTES))
        yield root
        subprocess.run(["umount", str(root)], check=True)
        return
    filler.write_bytes(b"\0")
    real_fdopen = os.fdopen

    def fdopen(fd: int, *args: Any, **kwargs: Any) -> Any:
        handle = real_fdopen(fd, *args, **kwargs)
        return _FullFile(handle) if filler.exists() else handle

    with mock.patch("django.core.files.storage.filesystem.os.fdopen", fdopen):
        yield root


def test_a_full_media_disk_refuses_cleanly_and_the_same_upload_works_once_space_returns(
    small_media_disk: Path, rita: Any
) -> None:
    client = Client(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=rita).key}")
    instance = ct_dataset(rows=256, columns=256)
    body, content_type = stow_body([part10(instance)])

    response = client.post("/dicomweb/studies", data=body, content_type=content_type)

    assert response.status_code == 409  # PS3.18: no instance stored
    (failed,) = response.json()["00081198"]["Value"]
    assert failed["00081197"]["Value"] == [FailureReason.OUT_OF_RESOURCES]
    assert "DICOM store" in response["Warning"]
    assert "No space left on device" in response["Warning"]
    assert (Study.objects.count(), Series.objects.count(), Instance.objects.count()) == (0, 0, 0)
    assert stored_files(small_media_disk) == {FILLER}, "a partial file was left in the store"

    (small_media_disk / FILLER).unlink()
    response = client.post("/dicomweb/studies", data=body, content_type=content_type)

    assert response.status_code == 200, response.get("Warning")
    stored = Instance.objects.get(sop_instance_uid=instance.SOPInstanceUID)
    assert stored_files(small_media_disk) == {stored.storage_key}
    assert hashlib.sha256((small_media_disk / stored.storage_key).read_bytes()).hexdigest() == stored.sha256
