"""The admin audit review page, its htmx partials, and exports from it.

Admin role only: the page needs `audit.view_auditevent`, exports also
`audit.export_auditevent`. A refusal is a 403, which AuditMiddleware records.
"""

from __future__ import annotations

from urllib.parse import urlencode

from django.contrib.auth.decorators import permission_required
from django.core.files.storage import default_storage
from django.http import (
    FileResponse,
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseBase,
    StreamingHttpResponse,
)
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST
from django_htmx.middleware import HtmxDetails

from audit import selectors, services
from audit.exporters import FORMATS, attach
from audit.filters import QUICK_FILTERS, AuditFilter, AuditFilterForm
from audit.models import AuditExport
from config.inputs import id_param


class HtmxHttpRequest(HttpRequest):
    htmx: HtmxDetails  # set by django_htmx's middleware


VIEW = "audit.view_auditevent"
EXPORT = "audit.export_auditevent"
PAGE_SIZE = 50


def _int_param(request: HttpRequest, name: str) -> int | None:
    return id_param(request.GET.get(name, ""))


@require_GET
@permission_required(VIEW, raise_exception=True)
def audit_events(request: HtmxHttpRequest) -> HttpResponse:
    """The review page: filters, quick filters, a keyset-paged table and export buttons.

    An htmx request (the filter form, the paging links) gets only the results partial.
    """
    form = AuditFilterForm(request.GET or None)
    audit_filter = form.audit_filter() if form.is_bound and form.is_valid() else AuditFilter()
    page = None
    if not form.is_bound or form.is_valid():
        page = selectors.audit_event_page(
            audit_filter=audit_filter,
            before=_int_param(request, "before"),
            after=_int_param(request, "after"),
            limit=PAGE_SIZE,
        )
        services.audit_log_used(request=request, audit_filter=audit_filter, page="audit review page")
    context = {
        "form": form,
        "page": page,
        "filter_params": audit_filter.as_params(),
        "filter_query": urlencode(audit_filter.as_params()),
        "quick_filters": QUICK_FILTERS,
        "formats": FORMATS.values(),
        "can_export": request.user.has_perm(EXPORT),
    }
    template = "audit/events.html#results" if request.htmx else "audit/events.html"
    # A full page with an invalid filter is a 400; htmx swaps only a 2xx into the page.
    return render(request, template, context, status=400 if page is None and not request.htmx else 200)


@require_GET
@permission_required([VIEW, EXPORT], raise_exception=True)
def audit_export_download(request: HttpRequest, export_format: str) -> HttpResponseBase:
    """The current filter's events, exported and streamed at once (constant memory)."""
    if export_format not in FORMATS:
        raise Http404("unknown export format")
    form = AuditFilterForm(request.GET)
    if not form.is_valid():
        return HttpResponse(f"invalid filter: {form.errors.as_text()}", status=400, content_type="text/plain")
    chunks = services.audit_export_stream(
        export_format=export_format, audit_filter=form.audit_filter(), request=request
    )
    return attach(StreamingHttpResponse(chunks), FORMATS[export_format])


@require_POST
@permission_required([VIEW, EXPORT], raise_exception=True)
def audit_export_create(request: HtmxHttpRequest) -> HttpResponse:
    """Starts a background export of the current filter; answers with its progress."""
    form = AuditFilterForm(request.POST)
    export_format = request.POST.get("export_format", "")
    if export_format not in FORMATS:
        formats = ", ".join(FORMATS)
        return HttpResponse(f"export_format must be one of {formats}", status=400, content_type="text/plain")
    if not form.is_valid():
        return HttpResponse(f"invalid filter: {form.errors.as_text()}", status=400, content_type="text/plain")
    export, new = services.audit_export_request(
        export_format=export_format, audit_filter=form.audit_filter(), request=request
    )
    if request.htmx:
        if not new:  # its progress is on the page already
            return HttpResponse(status=204)
        return render(request, "audit/export_status.html#status", {"export": export})
    return redirect("audit:export-status", pk=export.pk)


@require_GET
@permission_required([VIEW, EXPORT], raise_exception=True)
def audit_export_status(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    """A background export's progress; the htmx partial polls itself until the export is finished."""
    export = selectors.audit_export_for_user(export_pk=pk, user=request.user)
    if export is None:
        services.audit_hidden_refused(request=request, exists=AuditExport.objects.filter(pk=pk).exists())
        raise Http404("no such export")
    template = "audit/export_status.html#status" if request.htmx else "audit/export_status.html"
    return render(request, template, {"export": export})


@require_GET
@permission_required([VIEW, EXPORT], raise_exception=True)
def audit_export_file(request: HttpRequest, pk: int) -> HttpResponseBase:
    """The finished file of a background export (recorded as 110106 Export)."""
    export = selectors.audit_export_for_user(export_pk=pk, user=request.user)
    if export is None or not export.file_name:
        services.audit_hidden_refused(
            request=request, exists=export is None and AuditExport.objects.filter(pk=pk).exists()
        )
        raise Http404("no such export file")
    services.audit_export_fetched(export=export, request=request)
    return attach(FileResponse(default_storage.open(export.file_name, "rb")), FORMATS[export.export_format])
