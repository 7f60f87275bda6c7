"""Turns a configuration error into one line on stderr and a non-zero exit.

Every entry point (manage.py, WSGI, ASGI, the Celery worker) loads the settings
through here, so a bad variable stops start-up with a message naming it rather
than a traceback or, worse, a half-working server.
"""

import sys

from config.env import ConfigError


def load_settings_or_exit() -> None:
    from django.conf import settings

    try:
        settings.INSTALLED_APPS  # noqa: B018  (touching a setting loads them all)
    except ConfigError as exc:
        print(f"overread: configuration error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
