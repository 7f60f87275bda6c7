"""Paths into the viewer, for pages that link many studies at once."""

from __future__ import annotations

from collections.abc import Callable

from django.urls import reverse

_SAMPLE_UID = "1.2"


def study_viewer_path_maker() -> Callable[[str], str]:
    """A function giving the viewer's path of a study (what `reverse("study-viewer", ...)`
    gives) with one reverse() for them all: a reverse costs about 0.1 ms, and a worklist page
    links 50 studies. A study UID is digits and dots (validated on ingest), so it needs no
    quoting. Made per request: the path carries the request's script prefix."""
    sample = reverse("study-viewer", args=[_SAMPLE_UID])
    head, _, tail = sample.rpartition(f"/{_SAMPLE_UID}/")

    def path(study_uid: str) -> str:
        return f"{head}/{study_uid}/{tail}"

    return path
