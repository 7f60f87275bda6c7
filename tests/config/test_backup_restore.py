"""A backup restores into a fresh database and media folder: the study is served, the audit
chain verifies (docs/security.md, "Backup and restore").

Backup and restore are for PostgreSQL; CI runs the suite on it. The restored side runs as an
operator would: `manage.py` under the production settings, pointed at the new database.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import psycopg
import pytest
from django.core.management import CommandError, call_command
from django.db import connection

from audit.codes import EventID
from audit.models import AuditEvent
from audit.services import audit_record
from tests.inference.helpers import ingest, small_study
from viewer.models import Instance

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

ROOT = Path(__file__).resolve().parents[2]

# Run in the restored database by `manage.py shell`: every instance is fetched over WADO-RS as
# the admin, and its stored file must be what the index says and what is served.
SERVE_EVERY_INSTANCE = """
import hashlib
from django.contrib.auth import get_user_model
from django.core.files.storage import default_storage
from django.test import Client
from viewer.models import Instance

client = Client()
client.force_login(get_user_model().objects.get(username="ada"))
served = 0
for instance in Instance.objects.select_related("series__study"):
    with default_storage.open(instance.storage_key, "rb") as handle:
        stored = handle.read()
    assert hashlib.sha256(stored).hexdigest() == instance.sha256, instance.storage_key
    url = (f"/dicomweb/studies/{instance.series.study.study_uid}/series/{instance.series.series_uid}"
           f"/instances/{instance.sop_instance_uid}")
    response = client.get(url, HTTP_ACCEPT='multipart/related; type="application/dicom"')
    assert response.status_code == 200, (url, response.status_code)
    assert stored in b"".join(response.streaming_content), url
    served += 1
print(f"served {served}")
"""


def _require_postgresql() -> None:
    if connection.vendor != "postgresql":
        pytest.skip(
            "backup and restore need PostgreSQL (DATABASE_URL=postgres://...); this run uses the "
            "embedded SQLite default"
        )


def _url(database: dict[str, Any], name: str) -> str:
    user = quote(database["USER"] or "", safe="")
    password = f":{quote(database['PASSWORD'], safe='')}" if database["PASSWORD"] else ""
    host = database["HOST"] or "localhost"
    port = f":{database['PORT']}" if database["PORT"] else ""
    return f"postgres://{user}{password}@{host}{port}/{name}"


@pytest.fixture
def empty_database() -> Iterator[str]:
    """A new, empty database beside the test database (dropped afterwards); its URL."""
    _require_postgresql()
    database = connection.settings_dict
    name = f"{database['NAME']}_restored"[:63]
    with psycopg.connect(_url(database, "postgres"), autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.execute(f'CREATE DATABASE "{name}"')
    yield _url(database, name)
    with psycopg.connect(_url(database, "postgres"), autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _manage(
    *args: str, database_url: str, media_root: Path, tmp_path: Path
) -> subprocess.CompletedProcess[str]:
    """`manage.py ARGS` under the production settings against the restored database and media."""
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in {"DJANGO_SETTINGS_MODULE", "OVERREAD_TEST_WORKER", "DEBUG"}
    }
    env.update(
        {
            "SECRET_KEY": "restore-test-" + "x" * 50,
            "HTTPS": "false",
            "ALLOWED_HOSTS": "testserver",
            "DATABASE_URL": database_url,
            "MEDIA_ROOT": str(media_root),
            "OVERREAD_VAR_DIR": str(tmp_path / "var"),
        }
    )
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )


def test_a_backup_restores_into_a_fresh_database_and_media_folder(
    empty_database, ada, tmp_path, settings, capsys
):
    series = ingest(small_study(seed=23, lesions=0, slices=4).datasets)
    audit_record(event=EventID.APPLICATION_ACTIVITY, action="E", username="system:test", detail={"step": 1})
    head = AuditEvent.objects.order_by("-id").first()
    instances = dict(Instance.objects.values_list("storage_key", "sha256"))
    assert len(instances) == 4

    backup = tmp_path / "backup"
    call_command("backup", str(backup))
    out = capsys.readouterr().out
    assert "4 indexed DICOM files" in out
    assert f"head {head.id})" in out
    listed = dict(line.split("  ", 1)[::-1] for line in (backup / "index.sha256").read_text().splitlines())
    assert listed == instances
    # The media listing is sha256sum's format: an operator can check a backup with coreutils.
    check = subprocess.run(
        ["sha256sum", "--check", "--quiet", "../media.sha256"], cwd=backup / "media", capture_output=True
    )
    assert check.returncode == 0, check.stdout + check.stderr

    # A damaged backup is refused before the database is touched, naming the file.
    target = {"database_url": empty_database, "tmp_path": tmp_path}
    damaged = tmp_path / "damaged"
    shutil.copytree(backup, damaged)
    victim = damaged / "media" / next(iter(instances))
    content = victim.read_bytes()
    victim.write_bytes(content[:-1] + bytes([content[-1] ^ 0xFF]))  # one bit-flipped byte
    refused = _manage("restore", str(damaged), media_root=tmp_path / "m0", **target)
    assert refused.returncode == 1
    assert f"restore failed: {next(iter(instances))} in the backup is damaged" in refused.stderr

    media = tmp_path / "restored-media"
    restored = _manage("restore", str(backup), media_root=media, **target)
    assert restored.returncode == 0, restored.stderr
    assert f"head {head.id} as backed up" in restored.stdout
    assert "DICOM store: 4 indexed files present with their SHA-256" in restored.stdout

    verified = _manage("verify_audit", media_root=media, **target)
    assert verified.returncode == 0, verified.stderr
    assert verified.stdout.startswith("audit trail intact:")

    served = _manage("shell", "-c", SERVE_EVERY_INSTANCE, media_root=media, **target)
    assert served.returncode == 0, served.stderr
    assert served.stdout.strip().endswith("served 4")
    assert series.instances.count() == 4

    # The append-only triggers came back with the tables.
    with psycopg.connect(empty_database) as restored_db:
        triggers = {
            row[0] for row in restored_db.execute("SELECT tgname FROM pg_trigger WHERE NOT tgisinternal")
        }
    assert {"audit_auditevent_no_update_or_delete", "reviews_decision_no_update_or_delete"} <= triggers

    # Restoring over data is refused: the database is no longer empty.
    again = _manage("restore", str(backup), media_root=tmp_path / "m2", **target)
    assert again.returncode == 1
    assert "is not empty" in again.stderr
    assert "restore into a new, empty database" in again.stderr


def test_restore_refuses_a_folder_that_is_no_backup(tmp_path):
    (tmp_path / "not-a-backup").mkdir()
    with pytest.raises(CommandError, match=r"holds no manifest\.json: not a backup, or an incomplete one"):
        call_command("restore", str(tmp_path / "not-a-backup"))


def test_backup_refuses_a_folder_in_use(tmp_path):
    _require_postgresql()
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "something").write_text("x")
    with pytest.raises(CommandError, match="is not empty: give each backup a new folder"):
        call_command("backup", str(tmp_path / "old"))


def test_backup_says_it_needs_postgresql_on_the_sqlite_default(tmp_path):
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in {"DJANGO_SETTINGS_MODULE", "DATABASE_URL"}
    }
    env.update({"SECRET_KEY": "x" * 60, "HTTPS": "false", "OVERREAD_VAR_DIR": str(tmp_path / "var")})
    result = subprocess.run(
        [sys.executable, "manage.py", "backup", str(tmp_path / "b")],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1
    assert "backup failed: backup and restore work on PostgreSQL" in result.stderr
    assert not (tmp_path / "b").exists()
