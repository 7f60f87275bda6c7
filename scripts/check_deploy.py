"""Runs Django's deployment checklist under production-like settings (make lint).

HTTPS on, DEBUG off, a random secret key and a real host name: the way a
hospital would run Overread behind TLS. Fails on any warning.
"""

import os
import secrets
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

env = {
    k: v
    for k, v in os.environ.items()
    if k not in {"DJANGO_SETTINGS_MODULE", "DEBUG", "HTTPS", "DJANGO_ALLOW_ASYNC_UNSAFE"}
}
env.update(
    {
        "SECRET_KEY": secrets.token_urlsafe(50),
        "ALLOWED_HOSTS": "overread.hospital.example",
        "HTTPS": "true",
    }
)
command = [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"]
sys.exit(subprocess.run(command, cwd=ROOT, env=env, check=False).returncode)  # noqa: S603 (fixed argv)
