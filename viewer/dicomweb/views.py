"""Resources that answer both reading and storing: /studies and /studies/{study}.

GET is ours (QIDO-RS search, WADO-RS retrieve); POST is STOW-RS, the ingest
side's view `viewer.dicomweb.stow.stow_studies`, imported when first needed so
this module does not depend on it being there. Authentication has already
happened when it is called (session with CSRF, token or Basic).
"""

from __future__ import annotations

import importlib

from django.http import HttpRequest, HttpResponseBase

from viewer.dicomweb.http import DicomwebError, dicomweb_view
from viewer.dicomweb.lookup import checked_uid
from viewer.dicomweb.retrieve import retrieve_study
from viewer.dicomweb.search import search_studies


@dicomweb_view("GET", "POST")
def studies(request: HttpRequest) -> HttpResponseBase:
    """/studies: GET searches (QIDO-RS), POST stores (STOW-RS)."""
    if request.method == "POST":
        return _stow(request, None)
    return search_studies(request)


@dicomweb_view("GET", "POST")
def study(request: HttpRequest, study_uid: str) -> HttpResponseBase:
    """/studies/{study}: GET retrieves its instances (WADO-RS), POST stores into it (STOW-RS)."""
    if request.method == "POST":
        return _stow(request, checked_uid(study_uid, "the Study Instance UID"))
    return retrieve_study(request, study_uid)


def _stow(request: HttpRequest, study_uid: str | None) -> HttpResponseBase:
    try:
        stow = importlib.import_module("viewer.dicomweb.stow")
    except ModuleNotFoundError as exc:
        if exc.name != "viewer.dicomweb.stow":
            raise
        raise DicomwebError(503, "STOW-RS is not available on this server yet") from None
    response: HttpResponseBase = stow.stow_studies(request, study_uid=study_uid)
    return response
