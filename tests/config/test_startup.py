"""Start-up with bad configuration stops with one line naming the variable."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from config.env import ConfigError, env_bool, env_database, env_int, env_list, env_secret, env_url

ROOT = Path(__file__).resolve().parents[2]


def _manage(
    env_overrides: dict[str, str], *args: str, drop: tuple[str, ...] = ()
) -> subprocess.CompletedProcess[str]:
    # A var/ of its own: no locally generated secret key to fall back on.
    var_dir = str(ROOT / "var" / "test" / "startup")
    env = {
        **os.environ,
        "OVERREAD_VAR_DIR": var_dir,
        "SECRET_KEY": "x" * 60,
        "HTTPS": "false",
        **env_overrides,
    }
    for name in ("DJANGO_SETTINGS_MODULE", *drop):  # the production settings module
        env.pop(name, None)
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )


@pytest.mark.parametrize(
    ("overrides", "variable"),
    [
        ({"DATABASE_URL": "nonsense"}, "DATABASE_URL"),
        ({"DATABASE_URL": "postgres://user@host:5432"}, "DATABASE_URL"),
        ({"CELERY_BROKER_URL": "carrier-pigeon://coop"}, "CELERY_BROKER_URL"),
        ({"DEBUG": "maybe"}, "DEBUG"),
        ({"SESSION_IDLE_MINUTES": "half an hour"}, "SESSION_IDLE_MINUTES"),
        ({"LOG_LEVEL": "LOUD"}, "LOG_LEVEL"),
        ({"PACS_DICOMWEB_URL": "ftp://pacs"}, "PACS_DICOMWEB_URL"),
    ],
)
def test_it_refuses_to_start_on_a_bad_variable_with_one_line_naming_it(overrides, variable):
    result = _manage(overrides, "check")
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"overread: configuration error: {variable}:")


def test_it_refuses_to_start_without_a_secret_key_when_debug_is_off():
    result = _manage({"DEBUG": "false"}, "check", drop=("SECRET_KEY",))
    env_without_key = _manage({"DEBUG": "false", "SECRET_KEY": ""}, "check")
    for run in (result, env_without_key):
        assert run.returncode == 2
        assert run.stderr.strip() == (
            "overread: configuration error: SECRET_KEY: "
            "is required when DEBUG is off (or set SECRET_KEY_FILE)"
        )


def test_it_starts_with_good_configuration():
    result = _manage({}, "check")
    assert result.returncode == 0, result.stderr
    assert "no issues" in result.stdout


def test_it_hides_the_database_password_in_errors(monkeypatch):
    monkeypatch.setenv("DATABASE_URL", "mysql://admin:hunter2@db/overread")
    with pytest.raises(ConfigError) as error:
        env_database("DATABASE_URL", Path("unused.sqlite3"))
    assert "hunter2" not in str(error.value)
    assert "admin:***@db" in str(error.value)


def test_postgres_connections_prepare_repeated_statements_unless_turned_off(monkeypatch):
    monkeypatch.setenv("DATABASE_URL", "postgres://overread:pw@db.internal:5433/overread")
    prepared = env_database("DATABASE_URL", Path("unused.sqlite3"))
    monkeypatch.setenv("DATABASE_PREPARED_STATEMENTS", "false")
    plain = env_database("DATABASE_URL", Path("unused.sqlite3"))

    assert prepared["OPTIONS"] == {"server_side_binding": True, "prepare_threshold": 2}
    assert "server_side_binding" not in plain.get("OPTIONS", {})


def test_database_connections_are_kept_ten_minutes_unless_told_otherwise(monkeypatch):
    monkeypatch.setenv("DATABASE_URL", "postgres://overread:pw@db.internal:5433/overread")
    assert env_database("DATABASE_URL", Path("unused.sqlite3"))["CONN_MAX_AGE"] == 600
    monkeypatch.setenv("DATABASE_CONN_MAX_AGE", "0")
    assert env_database("DATABASE_URL", Path("unused.sqlite3"))["CONN_MAX_AGE"] == 0
    monkeypatch.setenv("DATABASE_CONN_MAX_AGE", "-5")
    with pytest.raises(ConfigError, match="DATABASE_CONN_MAX_AGE"):
        env_database("DATABASE_URL", Path("unused.sqlite3"))


@pytest.mark.django_db
def test_the_running_database_prepares_a_repeated_query():
    from django.db import connection

    if connection.vendor != "postgresql":
        pytest.skip("prepared statements are PostgreSQL's")
    with connection.cursor() as cursor:
        for _ in range(3):
            cursor.execute("SELECT %s::int + 1 AS prepared_probe", [41])
        cursor.execute(
            "SELECT count(*) FROM pg_prepared_statements WHERE statement LIKE %s", ["%prepared_probe%"]
        )
        assert cursor.fetchone()[0] == 1


def test_it_reads_postgres_urls(monkeypatch):
    monkeypatch.setenv("DATABASE_URL", "postgres://overread:pw@db.internal:5433/overread")
    config = env_database("DATABASE_URL", Path("unused.sqlite3"))
    assert config["ENGINE"] == "django.db.backends.postgresql"
    assert (config["HOST"], config["PORT"], config["NAME"], config["USER"]) == (
        "db.internal",
        5433,
        "overread",
        "overread",
    )


def test_it_defaults_to_an_sqlite_file(monkeypatch, tmp_path):
    monkeypatch.delenv("DATABASE_URL", raising=False)
    assert env_database("DATABASE_URL", tmp_path / "db.sqlite3")["NAME"] == str(tmp_path / "db.sqlite3")


def test_typed_readers_parse_and_reject(monkeypatch):
    monkeypatch.setenv("A_BOOL", "Yes")
    monkeypatch.setenv("AN_INT", "7")
    monkeypatch.setenv("A_LIST", " a.example, b.example ,,")
    assert env_bool("A_BOOL", False) is True
    assert env_int("AN_INT", 1, minimum=1) == 7
    assert env_list("A_LIST", []) == ["a.example", "b.example"]
    monkeypatch.setenv("AN_INT", "0")
    with pytest.raises(ConfigError, match="AN_INT: must be at least 1"):
        env_int("AN_INT", 1, minimum=1)
    monkeypatch.setenv("A_URL", "http://x")
    with pytest.raises(ConfigError, match="A_URL: expected a URL with scheme redis"):
        env_url("A_URL", "redis://localhost", schemes={"redis"})


def test_secrets_can_come_from_a_file(monkeypatch, tmp_path):
    secret = tmp_path / "key"
    secret.write_text("from-a-file\n")
    monkeypatch.delenv("MY_SECRET", raising=False)
    monkeypatch.setenv("MY_SECRET_FILE", str(secret))
    assert env_secret("MY_SECRET") == "from-a-file"
    monkeypatch.setenv("MY_SECRET_FILE", str(tmp_path / "missing"))
    with pytest.raises(ConfigError, match="MY_SECRET_FILE: cannot read"):
        env_secret("MY_SECRET")


def test_the_web_process_loads_every_url_and_admin_page_without_torch():
    # torch is the worker's (about 250 MB a process): a web process registers and lists models
    # but never runs one.
    script = (
        "import sys, django; django.setup(); "
        "from django.urls import get_resolver; get_resolver().url_patterns; "
        "from django.contrib import admin; admin.autodiscover(); "
        "print('torch' in sys.modules)"
    )
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings"}
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "False", result.stderr


def test_the_web_process_leaves_what_start_up_built_out_of_garbage_collection():
    # A full collection scanning start-up's objects paused a request for about 120 ms.
    script = (
        "import gc, config.wsgi; frozen = gc.get_freeze_count(); gc.collect(); "
        "print(frozen, len(gc.get_objects()))"
    )
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings"}
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True, check=True
    )
    frozen, still_scanned = map(int, result.stdout.split())
    assert frozen > 100_000, result.stderr
    assert still_scanned < frozen / 20
