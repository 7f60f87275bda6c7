"""WSGI entry point (gunicorn config.wsgi)."""

import gc
import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

from config.startup import load_settings_or_exit

load_settings_or_exit()

from django.core.wsgi import get_wsgi_application  # noqa: E402
from django.urls import get_resolver  # noqa: E402

application = get_wsgi_application()

# What start-up built (modules, models, URL patterns: about 200,000 objects) lives as long as
# the process, yet every full garbage collection scanned it again: a pause of about 120 ms in
# the middle of whichever request set it off, the slowest 1% of requests under load. Frozen
# here, those objects are left out of every collection (docs/benchmarks.md).
get_resolver().check()  # builds the URL patterns, which the first request would build otherwise
gc.collect()
gc.freeze()
