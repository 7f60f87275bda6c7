"""Helpers of the fault tests: waiting for a condition, and the files under the media root."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from django.conf import settings

T = TypeVar("T")


def wait_for(predicate: Callable[[], T | None], timeout: float, what: str, interval: float = 0.05) -> T:
    """The predicate's first true value; fails the test after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def media_files(under: str = "") -> set[str]:
    """The storage keys of every file under MEDIA_ROOT/`under` (slash-separated, as stored)."""
    root = Path(settings.MEDIA_ROOT)
    folder = root / under if under else root
    if not folder.exists():
        return set()
    return {path.relative_to(root).as_posix() for path in folder.rglob("*") if path.is_file()}
