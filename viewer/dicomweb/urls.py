"""DICOMweb URLs (PS3.18), mounted at /dicomweb/ (no trailing slashes, as clients build them).

Identifiers are taken as any path segment and checked by the views, so a
malformed one gets a 400 that says why rather than an anonymous 404.
"""

from __future__ import annotations

from django.urls import path, register_converter

from viewer.dicomweb import rendered, retrieve, search, views, wado


class _Segment:
    """One non-empty path segment, unchecked (the views check it)."""

    regex = "[^/]+"

    def to_python(self, value: str) -> str:
        return value

    def to_url(self, value: str) -> str:
        return value


register_converter(_Segment, "segment")

app_name = "dicomweb"
STUDY = "studies/<segment:study_uid>"
SERIES = f"{STUDY}/series/<segment:series_uid>"
INSTANCE = f"{SERIES}/instances/<segment:sop_uid>"
FRAMES = f"{INSTANCE}/frames/<segment:frame_list>"

urlpatterns = [
    path("studies", views.studies, name="studies"),
    path("series", search.search_series, name="series-search"),
    path("instances", search.search_instances, name="instance-search"),
    path(STUDY, views.study, name="study"),
    path(f"{STUDY}/metadata", wado.study_metadata, name="study-metadata"),
    path(f"{STUDY}/series", search.search_study_series, name="study-series-search"),
    path(f"{STUDY}/instances", search.search_study_instances, name="study-instance-search"),
    path(f"{STUDY}/thumbnail", rendered.study_thumbnail, name="study-thumbnail"),
    path(SERIES, retrieve.retrieve_series, name="series"),
    path(f"{SERIES}/metadata", wado.series_metadata, name="series-metadata"),
    path(f"{SERIES}/instances", search.search_series_instances, name="series-instance-search"),
    path(f"{SERIES}/rendered", rendered.series_rendered, name="series-rendered"),
    path(f"{SERIES}/thumbnail", rendered.series_thumbnail, name="series-thumbnail"),
    path(INSTANCE, retrieve.retrieve_instance, name="instance"),
    path(f"{INSTANCE}/metadata", wado.instance_metadata, name="instance-metadata"),
    path(f"{INSTANCE}/rendered", rendered.instance_rendered, name="instance-rendered"),
    path(f"{INSTANCE}/thumbnail", rendered.instance_thumbnail, name="instance-thumbnail"),
    path(f"{INSTANCE}/bulkdata/<segment:tag>", wado.bulkdata, name="bulkdata"),
    path(FRAMES, wado.frames, name="frames"),
    path(f"{FRAMES}/rendered", rendered.frame_rendered, name="frame-rendered"),
    path(f"{FRAMES}/thumbnail", rendered.frame_thumbnail, name="frame-thumbnail"),
]
