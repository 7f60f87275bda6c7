"""pg_dump and pg_restore for the configured PostgreSQL database.

The tools get the connection through libpq's environment variables (PGHOST,
PGPASSWORD, ...), never on their command line, where other users could read the
password. Each tool must be at least the server's major version (pg_dump of an
older major version refuses a newer server).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any, Final

import psycopg

# Connection options of a DATABASE_URL (?sslmode=...) as libpq environment variables.
_LIBPQ_ENV: Final = {
    "sslmode": "PGSSLMODE",
    "sslrootcert": "PGSSLROOTCERT",
    "sslcert": "PGSSLCERT",
    "sslkey": "PGSSLKEY",
    "service": "PGSERVICE",
}


class BackupError(Exception):
    """A backup or restore cannot go ahead or went wrong; the message says why and what to do."""


def require_postgresql(database: dict[str, Any]) -> None:
    if database["ENGINE"] != "django.db.backends.postgresql":
        raise BackupError(
            "backup and restore work on PostgreSQL (DATABASE_URL=postgres://...); for the embedded "
            "SQLite default, stop Overread and copy its var/ folder instead"
        )


def tool(name: str, *, at_least: int) -> str:
    """The path of a PostgreSQL client tool of major version `at_least` or newer."""
    path = shutil.which(name)
    if path is None:
        raise BackupError(f"{name} not found: install the PostgreSQL client (postgresql-client-{at_least})")
    found = tool_major(path)
    if found < at_least:
        raise BackupError(
            f"{name} is version {found}, older than the PostgreSQL {at_least} it must work with: "
            f"install postgresql-client-{at_least} or newer and put it first on PATH"
        )
    return path


def tool_major(path: str) -> int:
    output = subprocess.run([path, "--version"], capture_output=True, text=True, check=True).stdout  # noqa: S603
    match = re.search(r"\(PostgreSQL\) (\d+)", output)
    if match is None:
        raise BackupError(f"cannot tell the version of {path} from {output.strip()!r}")
    return int(match.group(1))


def server_major(database: dict[str, Any]) -> int:
    with connect(database) as conn:
        return int(conn.info.server_version) // 10000


def connect(database: dict[str, Any], **options: Any) -> psycopg.Connection[Any]:
    """A connection of its own (outside Django's), e.g. for a transaction that exports a snapshot."""
    params = {key: value for key, value in database.get("OPTIONS", {}).items() if key in _LIBPQ_ENV}
    for key, name in (("dbname", "NAME"), ("user", "USER"), ("password", "PASSWORD"), ("host", "HOST")):
        if database.get(name):
            params[key] = database[name]
    if database.get("PORT"):
        params["port"] = str(database["PORT"])
    try:
        return psycopg.connect(**params, **options)
    except psycopg.OperationalError as exc:
        raise BackupError(f"cannot connect to database {database.get('NAME')!r}: {exc}") from None


def dump(database: dict[str, Any], *, output: Path, snapshot: str, pg_dump: str) -> None:
    """Dumps the database as it was in `snapshot` (pg_export_snapshot) to `output`."""
    command = [pg_dump, "--format=custom", "--no-password", f"--snapshot={snapshot}", f"--file={output}"]
    _run(command, database, what="pg_dump")


def restore(database: dict[str, Any], *, dump_file: Path, pg_restore: str) -> None:
    """Restores into the (empty) database in one transaction: all of it, or nothing.

    Objects become the connecting role's and no GRANTs are restored: the target cluster's
    roles may differ, so the application role's rights are granted afresh (docs/security.md).
    """
    command = [
        pg_restore,
        "--no-password",
        "--no-owner",
        "--no-privileges",
        "--single-transaction",
        "--exit-on-error",
        f"--dbname={database['NAME']}",
        str(dump_file),
    ]
    _run(command, database, what="pg_restore")


def _run(command: list[str], database: dict[str, Any], *, what: str) -> None:
    result = subprocess.run(command, env=_env(database), capture_output=True, text=True, check=False)  # noqa: S603
    if result.returncode != 0:
        raise BackupError(f"{what} failed (exit status {result.returncode}): {result.stderr.strip()}")


def _env(database: dict[str, Any]) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("PG")}
    for name, variable in (
        ("NAME", "PGDATABASE"),
        ("USER", "PGUSER"),
        ("PASSWORD", "PGPASSWORD"),
        ("HOST", "PGHOST"),
        ("PORT", "PGPORT"),
    ):
        if database.get(name):
            env[variable] = str(database[name])
    for option, variable in _LIBPQ_ENV.items():
        if option in database.get("OPTIONS", {}):
            env[variable] = str(database["OPTIONS"][option])
    return env
