"""QIDO-RS (PS3.18 10.6): search for studies, series and instances.

Each search is one database query: matching, the user's access (a subquery
from `study_queryset_for_user`), the related counts (correlated subqueries,
evaluated only for the returned page) and the page itself. One row more than
the limit is fetched to know whether a Warning must say the results go on.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from django.db.models import CharField, Count, F, Func, IntegerField, OuterRef, QuerySet, Subquery
from django.db.models.functions import Coalesce
from django.http import HttpRequest, HttpResponse

from viewer import selectors
from viewer.dicomweb import attributes
from viewer.dicomweb.auditing import audit_query
from viewer.dicomweb.dicomjson import DICOM_JSON, Element, dumps
from viewer.dicomweb.http import dicomweb_root, dicomweb_view
from viewer.dicomweb.lookup import series_for_request, study_for_request
from viewer.dicomweb.matching import query_filter
from viewer.dicomweb.negotiation import accepts_json
from viewer.dicomweb.qido import QidoQuery, parse_query
from viewer.models import Instance, Series, Study


def search_studies(request: HttpRequest) -> HttpResponse:
    """GET /studies (dispatched with STOW-RS by viewer.dicomweb.views.studies)."""
    query = _query(request, "study")
    audit_query(request, level="study")
    rows = _page(studies_matching(query, user=request.user), query)
    root = dicomweb_root(request)
    return _results(rows, query, lambda study: attributes.study_attributes(study, root))


@dicomweb_view("GET")
def search_study_series(request: HttpRequest, study_uid: str) -> HttpResponse:
    """GET /studies/{study}/series"""
    query = _query(request, "series")
    study = study_for_request(request, study_uid)
    audit_query(request, level="series", study_uid=study.study_uid)
    rows = _page(series_matching(query, user=request.user).filter(study=study), query)
    root = dicomweb_root(request)
    return _results(rows, query, lambda series: attributes.series_attributes(series, root, with_study=False))


@dicomweb_view("GET")
def search_series(request: HttpRequest) -> HttpResponse:
    """GET /series"""
    query = _query(request, "series")
    audit_query(request, level="series")
    rows = _page(series_matching(query, user=request.user), query)
    root = dicomweb_root(request)
    return _results(rows, query, lambda series: attributes.series_attributes(series, root, with_study=True))


@dicomweb_view("GET")
def search_instances(request: HttpRequest) -> HttpResponse:
    """GET /instances"""
    return _instances(request, study_uid=None, series_uid=None)


@dicomweb_view("GET")
def search_study_instances(request: HttpRequest, study_uid: str) -> HttpResponse:
    """GET /studies/{study}/instances"""
    return _instances(request, study_uid=study_uid, series_uid=None)


@dicomweb_view("GET")
def search_series_instances(request: HttpRequest, study_uid: str, series_uid: str) -> HttpResponse:
    """GET /studies/{study}/series/{series}/instances"""
    return _instances(request, study_uid=study_uid, series_uid=series_uid)


def _instances(request: HttpRequest, *, study_uid: str | None, series_uid: str | None) -> HttpResponse:
    query = _query(request, "instance")
    rows = instances_matching(query, user=request.user)
    if series_uid is not None and study_uid is not None:
        series = series_for_request(request, study_uid, series_uid)
        rows = rows.filter(series=series)
    elif study_uid is not None:
        rows = rows.filter(series__study=study_for_request(request, study_uid))
    audit_query(request, level="instance", study_uid=study_uid or "", series_uid=series_uid or "")
    root = dicomweb_root(request)
    extra = None if query.include_all else query.include_tags

    def build(instance: Instance) -> dict[str, Element]:
        return attributes.instance_attributes(
            instance, root, with_series=series_uid is None, with_study=study_uid is None, extra=extra
        )

    return _results(_page(rows, query), query, build, instance_level=True)


def studies_matching(query: QidoQuery, *, user: Any) -> QuerySet[Study]:
    """The studies `user` may see that match `query`, newest first, with their counts."""
    series_count = Series.objects.filter(study=OuterRef("pk")).order_by().values("study")
    instance_count = Instance.objects.filter(series__study=OuterRef("pk")).order_by().values("series__study")
    return (
        selectors.study_queryset_for_user(user=user)
        .filter(query_filter(query))
        .select_related("patient")
        .annotate(
            n_series=_count(series_count),
            n_instances=_count(instance_count),
        )
        .order_by(F("study_date").desc(nulls_last=True), "-study_time", "-pk")
    )


def series_matching(query: QidoQuery, *, user: Any) -> QuerySet[Series]:
    """The series `user` may see that match `query`, by study and series number."""
    instance_count = Instance.objects.filter(series=OuterRef("pk")).order_by().values("series")
    return (
        selectors.series_queryset_for_user(user=user)
        .filter(query_filter(query))
        .select_related("study__patient")
        .annotate(n_instances=_count(instance_count))
        .order_by("study", F("series_number").asc(nulls_last=True), "pk")
    )


def instances_matching(query: QidoQuery, *, user: Any) -> QuerySet[Instance]:
    """The instances `user` may see that match `query`, in series and instance number order."""
    rows = (
        selectors.instance_queryset_for_user(user=user)
        .filter(query_filter(query))
        .select_related("series__study__patient")
        .annotate(bits_allocated=FirstMetadataValue("00280100"))
        .order_by("series__study", "series", F("instance_number").asc(nulls_last=True), "pk")
    )
    if not query.include_all and not query.include_tags:
        rows = rows.defer("metadata", "frame_offsets")
    else:
        rows = rows.defer("frame_offsets")
    return rows


class FirstMetadataValue(Func):
    """The first value of a top-level attribute of Instance.metadata, in SQL.

    Written by hand because Django reads an all-digit JSON key ("00280100")
    as an array index.
    """

    output_field = CharField()

    def __init__(self, tag: str) -> None:
        if not re.fullmatch(r"[0-9A-F]{8}", tag):
            raise ValueError(f"not a tag: {tag!r}")
        super().__init__(F("metadata"))
        self.tag = tag

    def as_sqlite(self, compiler: Any, connection: Any, **extra: Any) -> Any:
        template = f"JSON_EXTRACT(%(expressions)s, '$.\"{self.tag}\".Value[0]')"
        return super().as_sql(compiler, connection, template=template, **extra)

    def as_postgresql(self, compiler: Any, connection: Any, **extra: Any) -> Any:
        template = f"((%(expressions)s) -> '{self.tag}' -> 'Value' ->> 0)"
        return super().as_sql(compiler, connection, template=template, **extra)


def _count(rows: QuerySet[Any]) -> Coalesce:
    return Coalesce(Subquery(rows.annotate(n=Count("pk")).values("n")[:1]), 0, output_field=IntegerField())


def _query(request: HttpRequest, level: str) -> QidoQuery:
    accepts_json(request.headers.get("Accept"))
    return parse_query(level, ((name, value) for name, values in request.GET.lists() for value in values))


def _page(rows: QuerySet[Any], query: QidoQuery) -> list[Any]:
    return list(rows[query.offset : query.offset + query.limit + 1])


def _results(
    rows: list[Any],
    query: QidoQuery,
    build: Callable[[Any], dict[str, Element]],
    *,
    instance_level: bool = False,
) -> HttpResponse:
    more = len(rows) > query.limit
    results = [attributes.sorted_by_tag(build(row)) for row in rows[: query.limit]]
    response = HttpResponse(dumps(results), content_type=DICOM_JSON)
    warnings = []
    if more:
        warnings.append('299 overread "There are additional results that can be requested"')
    missing = _not_returned(results, query, instance_level=instance_level)
    if missing:
        warnings.append(
            f'299 overread "The fields {", ".join(missing)} are not held at the {query.level} level"'
        )
    if warnings:
        response["Warning"] = ", ".join(warnings)
    return response


def _not_returned(results: list[dict[str, Element]], query: QidoQuery, *, instance_level: bool) -> list[str]:
    """Requested includefields a study or series result cannot carry (instances take them from metadata)."""
    if instance_level or query.include_all or not query.include_tags or not results:
        return []
    return sorted(query.include_tags - results[0].keys())
