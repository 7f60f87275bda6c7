"""Test settings: the production settings with test-only overrides.

Services come from the same variables as production (DATABASE_URL,
CELERY_BROKER_URL, PACS_*): CI points them at PostgreSQL, Redis and Orthanc;
without them the embedded defaults (SQLite, filesystem broker) are used.
"""

import os
from pathlib import Path

_BASE = Path(__file__).resolve().parent.parent
os.environ.setdefault("SECRET_KEY", "tests-only-not-a-secret-0123456789-abcdefghijklmnopqrstuvwxyz")
os.environ.setdefault("HTTPS", "false")
# Each test run has a var/ of its own (database file, broker folders, media), so
# runs side by side never meet; a worker process started by the run inherits
# OVERREAD_TEST_RUN and so shares it. The run's folder is removed at its end.
TEST_RUN = os.environ.setdefault("OVERREAD_TEST_RUN", str(os.getpid()))
os.environ.setdefault("OVERREAD_VAR_DIR", str(_BASE / "var" / "test" / f"run-{TEST_RUN}"))

from config.settings import *  # noqa: E402,F403
from config.settings import STORAGES, VAR_DIR  # noqa: E402

# Fast hashing in tests; tests/test_settings.py checks production uses argon2.
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
STORAGES = {**STORAGES, "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}}
MEDIA_ROOT = VAR_DIR / "media"
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = True
(VAR_DIR / "static").mkdir(parents=True, exist_ok=True)
AXES_FAILURE_LIMIT = 3

# SQLite tests use a file, not memory, so a real worker process (tests that run
# one) sees the same test database. That worker loads these settings with
# OVERREAD_TEST_WORKER=1 and connects to the test database directly.
_db = DATABASES["default"]  # noqa: F405
if _db["ENGINE"] == "django.db.backends.sqlite3":
    _db["TEST"] = {"NAME": str(VAR_DIR / "test.sqlite3")}
    _test_db_name = _db["TEST"]["NAME"]
else:
    _test_db_name = f"test_{_db['NAME']}"
if os.environ.get("OVERREAD_TEST_WORKER"):
    _db["NAME"] = _test_db_name

# A series settles one second after its last instance (production waits longer): the
# end-to-end tests exercise the real settle path without waiting for it.
INFERENCE_SERIES_STABLE_SECONDS = 1
