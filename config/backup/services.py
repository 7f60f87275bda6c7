"""Taking a backup and restoring one (the folder's layout: config.backup)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import psycopg
from django.conf import settings
from django.core.files.storage import FileSystemStorage, default_storage
from django.db import connection
from django.utils import timezone
from psycopg import sql

from audit.models import AuditEvent
from audit.verification import audit_chain_verify
from config.backup.media import file_sha256, listing_read, media_copy, media_copy_checked
from config.backup.postgres import (
    BackupError,
    connect,
    dump,
    require_postgresql,
    restore,
    server_major,
    tool,
    tool_major,
)
from viewer.models import Instance

FORMAT: Final = 1
MANIFEST: Final = "manifest.json"


@dataclass(frozen=True)
class BackupSummary:
    folder: Path
    audit_events: int
    audit_head_id: int | None
    instances: int
    media_files: int
    media_bytes: int


def backup_create(*, folder: Path) -> BackupSummary:
    """Backs up the database (one snapshot) and then the media folder into `folder` (new or empty).

    Raises BackupError, saying what to do, when it cannot: not PostgreSQL, media not on local
    disk, the client tools missing or too old, the folder in use, an indexed file missing.
    """
    database = connection.settings_dict
    require_postgresql(database)
    media_root = _local_media_root()
    folder = folder.resolve()
    if folder == media_root or media_root in folder.parents:
        raise BackupError(f"{folder} is inside MEDIA_ROOT ({media_root}): put backups elsewhere")
    if folder.exists() and any(folder.iterdir()):
        raise BackupError(f"{folder} is not empty: give each backup a new folder")
    major = server_major(database)
    pg_dump = tool("pg_dump", at_least=major)
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)  # it holds patient data

    with connect(database) as conn:
        # One snapshot for the dump and for what the manifest says about it.
        conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        conn.read_only = True
        snapshot = _one(conn, sql.SQL("SELECT pg_export_snapshot()"))
        audit = _audit_head(conn)
        index = _write_index(conn, folder / "index.sha256")
        dump(database, output=folder / "database.dump", snapshot=str(snapshot), pg_dump=pg_dump)
        conn.commit()

    media = media_copy(source=media_root, target=folder / "media", listing=folder / "media.sha256")
    absent = [key for key, sha256 in index.items() if media.get(key) != sha256]
    if absent:
        raise BackupError(
            f"{len(absent)} indexed DICOM files are missing from the media copy or differ "
            f"(the first: {absent[0]}); the backup in {folder} is incomplete: take it again"
        )
    media_bytes = sum((folder / "media" / relative).stat().st_size for relative in media)
    manifest = {
        "format": FORMAT,
        "created_at": timezone.now().isoformat(),
        "database": {"name": database["NAME"], "server_major": major},
        "pg_dump_major": tool_major(pg_dump),
        "audit": audit,
        "instances": len(index),
        "media": {"files": len(media), "bytes": media_bytes},
    }
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")  # last: the backup is whole
    return BackupSummary(folder, audit["events"], audit["head_id"], len(index), len(media), media_bytes)


@dataclass(frozen=True)
class RestoreSummary:
    database: str
    media_root: Path
    audit_events: int
    audit_head_id: int | None
    instances: int
    media_files: int


def backup_restore(*, folder: Path) -> RestoreSummary:
    """Restores a backup into the configured database and MEDIA_ROOT, both new and empty, and
    verifies it: every media file's hash, the audit chain and its head, every indexed DICOM file.

    The media go first: a damaged backup is found before the database is touched.
    """
    manifest = _manifest(folder)
    database = connection.settings_dict
    require_postgresql(database)
    media_root = _local_media_root()
    tables = connection.introspection.table_names()
    if tables:
        raise BackupError(
            f"database {database['NAME']!r} is not empty ({len(tables)} tables): restore into a new, "
            "empty database (createdb NAME, then point DATABASE_URL at it)"
        )
    if media_root.exists() and any(media_root.iterdir()):
        raise BackupError(f"MEDIA_ROOT {media_root} is not empty: restore into a new, empty folder")
    pg_restore = tool("pg_restore", at_least=int(manifest["pg_dump_major"]))

    media = media_copy_checked(source=folder / "media", target=media_root, listing=folder / "media.sha256")
    restore(database, dump_file=folder / "database.dump", pg_restore=pg_restore)

    audit = _verify_audit(manifest["audit"])
    instances = _verify_instances(media_root, expected=int(manifest["instances"]))
    return RestoreSummary(database["NAME"], media_root, audit.count, audit.head_id, instances, len(media))


# --- Backup helpers ------------------------------------------------------------------------
def _local_media_root() -> Path:
    if not isinstance(default_storage, FileSystemStorage):
        raise BackupError(
            "media are in object storage (AWS_STORAGE_BUCKET_NAME), not on local disk: back the "
            "bucket up with its own versioning or replication; this command handles MEDIA_ROOT only"
        )
    return Path(settings.MEDIA_ROOT).resolve()


def _one(conn: psycopg.Connection[Any], query: sql.Composed | sql.SQL) -> Any:
    row = conn.execute(query).fetchone()
    return row[0] if row else None


def _audit_head(conn: psycopg.Connection[Any]) -> dict[str, Any]:
    table = sql.Identifier(AuditEvent._meta.db_table)
    events = _one(conn, sql.SQL("SELECT count(*) FROM {}").format(table))
    head = conn.execute(sql.SQL("SELECT id, hash FROM {} ORDER BY id DESC LIMIT 1").format(table)).fetchone()
    return {
        "events": int(events or 0),
        "head_id": head[0] if head else None,
        "head_hash": head[1] if head else "",
    }


def _write_index(conn: psycopg.Connection[Any], listing: Path) -> dict[str, str]:
    index: dict[str, str] = {}
    query = sql.SQL("SELECT storage_key, sha256 FROM {} ORDER BY storage_key").format(
        sql.Identifier(Instance._meta.db_table)
    )
    with conn.cursor(name="overread_backup_index") as rows, listing.open("w", encoding="utf-8") as out:
        rows.execute(query)
        for storage_key, sha256 in rows:
            index[storage_key] = sha256
            out.write(f"{sha256}  {storage_key}\n")
    return index


# --- Restore helpers -----------------------------------------------------------------------
def _manifest(folder: Path) -> dict[str, Any]:
    if not folder.is_dir():
        raise BackupError(f"{folder} is not a folder")
    path = folder / MANIFEST
    if not path.is_file():
        raise BackupError(f"{folder} holds no {MANIFEST}: not a backup, or an incomplete one")
    for part in ("database.dump", "media.sha256", "index.sha256"):
        if not (folder / part).is_file():
            raise BackupError(f"{folder} lacks {part}: the backup is incomplete")
    manifest: dict[str, Any] = json.loads(path.read_text())
    if manifest.get("format") != FORMAT:
        raise BackupError(
            f"{path} is of format {manifest.get('format')!r}; this Overread reads format {FORMAT}"
        )
    listing_read(folder / "media.sha256")  # well-formed before anything is touched
    return manifest


def _verify_audit(backed_up: dict[str, Any]) -> Any:
    report = audit_chain_verify()
    if not report.intact:
        raise BackupError(
            f"the restored audit trail is broken at event {report.first_bad_id}: {report.problem}"
        )
    if (report.head_id, report.head_hash) != (backed_up["head_id"], backed_up["head_hash"] or ""):
        raise BackupError(
            f"the restored audit trail ends at event {report.head_id}, the backup's at {backed_up['head_id']}"
        )
    return report


def _verify_instances(media_root: Path, *, expected: int) -> int:
    count = 0
    for storage_key, sha256 in Instance.objects.values_list("storage_key", "sha256").iterator():
        path = media_root / storage_key
        if not path.is_file():
            raise BackupError(f"the restored store lacks {storage_key}, which the database indexes")
        if file_sha256(path) != sha256:
            raise BackupError(f"the restored {storage_key} does not match its indexed SHA-256")
        count += 1
    if count != expected:
        raise BackupError(f"the restored database indexes {count} DICOM files, the backup {expected}")
    return count
