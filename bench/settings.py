"""Settings for benchmarks: the production settings on their own database under var/bench/.

Point DATABASE_URL at PostgreSQL to measure against it; the default is SQLite.
"""

import os
from pathlib import Path

_BASE = Path(__file__).resolve().parent.parent
os.environ.setdefault("SECRET_KEY", "bench-only-not-a-secret-0123456789-abcdefghijklmnopqrstuvwxyz")
os.environ.setdefault("HTTPS", "false")
os.environ.setdefault("OVERREAD_VAR_DIR", str(_BASE / "var" / "bench"))

from config.settings import *  # noqa: E402,F403
from config.settings import STATIC_ROOT  # noqa: E402

STATIC_ROOT.mkdir(parents=True, exist_ok=True)

# BENCH_PLAIN_STATIC=1: {% static %} without the collected manifest, for runs whose clients fetch
# no static file (the short soak in the test suite): collecting takes minutes.
if os.environ.get("BENCH_PLAIN_STATIC") == "1":
    from config.settings import STORAGES

    PLAIN = "django.contrib.staticfiles.storage.StaticFilesStorage"
    STORAGES = {**STORAGES, "staticfiles": {"BACKEND": PLAIN}}
