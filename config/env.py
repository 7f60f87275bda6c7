"""Typed readers for settings taken from environment variables.

Each reader fails loudly with a `ConfigError` that names the variable, so that a
bad deployment stops at start-up with one clear line instead of running wrong.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


class ConfigError(ImproperlyConfigured):
    """A setting read from the environment is missing or malformed."""

    def __init__(self, name: str, problem: str) -> None:
        super().__init__(f"{name}: {problem}")
        self.name = name


def env_str(name: str, default: str | None = None) -> str:
    value = os.environ.get(name)
    if value is None:
        if default is None:
            raise ConfigError(name, "is required but not set")
        return default
    return value


def env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None:
        return default
    lowered = value.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ConfigError(name, f"expected true/false, got {value!r}")


def env_int(name: str, default: int, *, minimum: int | None = None) -> int:
    value = os.environ.get(name)
    if value is None:
        return default
    try:
        number = int(value)
    except ValueError:
        raise ConfigError(name, f"expected an integer, got {value!r}") from None
    if minimum is not None and number < minimum:
        raise ConfigError(name, f"must be at least {minimum}, got {number}")
    return number


def env_list(name: str, default: list[str]) -> list[str]:
    value = os.environ.get(name)
    if value is None:
        return default
    return [item.strip() for item in value.split(",") if item.strip()]


def env_secret(name: str) -> str | None:
    """Reads NAME, or the file named by NAME_FILE (for Docker/Kubernetes secrets)."""
    value = os.environ.get(name)
    if value:
        return value
    path = os.environ.get(f"{name}_FILE")
    if not path:
        return None
    try:
        content = Path(path).read_text().strip()
    except OSError as exc:
        raise ConfigError(f"{name}_FILE", f"cannot read {path}: {exc.strerror}") from None
    if not content:
        raise ConfigError(f"{name}_FILE", f"{path} is empty")
    return content


_DATABASE_ENGINES = {
    "postgres": "django.db.backends.postgresql",
    "postgresql": "django.db.backends.postgresql",
    "pgsql": "django.db.backends.postgresql",
    "sqlite": "django.db.backends.sqlite3",
}


def env_database(name: str, default_sqlite: Path) -> dict[str, Any]:
    """A Django DATABASES entry from a URL (PostgreSQL or SQLite); SQLite file by default."""
    url = os.environ.get(name)
    if url is None:
        return {"ENGINE": "django.db.backends.sqlite3", "NAME": str(default_sqlite)}
    scheme = urlsplit(url).scheme
    if scheme not in _DATABASE_ENGINES:
        raise ConfigError(
            name,
            f"unsupported or malformed database URL {_redact(url)!r} "
            "(expected postgres://user@host:port/name or sqlite:///path)",
        )
    try:
        # Connections are kept (10 minutes by default), and checked before reuse: after a
        # database restart a worker's first request reconnects instead of failing. A new
        # connection prepares and plans its statements again, and PostgreSQL plans a prepared
        # statement afresh on each of its first five runs: a decision on a connection under a
        # minute old took 37-50 ms against 22 ms (docs/benchmarks.md).
        max_age = env_int("DATABASE_CONN_MAX_AGE", 600, minimum=0)
        config: dict[str, Any] = dict(
            dj_database_url.parse(url, conn_max_age=max_age, conn_health_checks=True)
        )
    except ValueError as exc:
        raise ConfigError(name, f"malformed database URL: {exc}") from None
    if config["ENGINE"] != "django.db.backends.sqlite3" and not config.get("NAME"):
        raise ConfigError(name, "the URL names no database (add /dbname)")
    if config["ENGINE"] == "django.db.backends.postgresql" and env_bool("DATABASE_PREPARED_STATEMENTS", True):
        # Parameters bound by the server, and a statement run twice on a connection prepared:
        # the permission-scoped queries take PostgreSQL 6 ms to plan and 0.5 ms to run, and are
        # planned once per connection instead of on every request. Behind PgBouncer in
        # transaction pooling (before 1.21), set DATABASE_PREPARED_STATEMENTS=false.
        config["OPTIONS"] = {**config.get("OPTIONS", {}), "server_side_binding": True, "prepare_threshold": 2}
    return config


def env_url(name: str, default: str, *, schemes: set[str]) -> str:
    value = os.environ.get(name, default)
    parts = urlsplit(value)
    if parts.scheme not in schemes:
        allowed = ", ".join(sorted(schemes))
        raise ConfigError(name, f"expected a URL with scheme {allowed}, got {_redact(value)!r}")
    if parts.scheme in {"http", "https", "redis", "rediss"} and not parts.hostname:
        raise ConfigError(name, f"the URL {_redact(value)!r} names no host")
    return value


def _redact(url: str) -> str:
    """Hides a password in a URL before it is shown in an error."""
    parts = urlsplit(url)
    if parts.password:
        return url.replace(f":{parts.password}@", ":***@")
    return url
