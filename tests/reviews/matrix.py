"""The permission matrix: what every role gets from every page, API endpoint and DICOMweb
resource, as docs/review.md ("Who sees what") and reviews/roles.py say.

The cast (columns, in ROLES order):
- anon: nobody signed in;
- rad: radiologist of project P, reader of study S, whose reading R (AI revealed) it is;
- ann: annotator of P; P hides the AI from annotators; her reading RA is locked, AI unseen;
- adj: adjudicator of P (reads nothing);
- radq: radiologist of project Q only (study T, his reading RQ), S is another project's study;
- admin: the admin role (sees every study, writes no reading);
- tok: a radiologist of P calling with an API token (no session), who has not opened S: P reads
  unaided first, so S's AI waits for his unaided read.

And a consensus project C (docs/consensus.md): rad and ann are its readers (each case read by
both, blind to each other), adj its adjudicator; radq and tok are not members, so C's cases
are to them as another project's.

The objects are named by the placeholders of the URLs: {S} {T} studies, {S_se} {T_se} their
CT series, {S_sop} {T_sop} one image of each, {S_ai_se} {S_ai_sop} the AI's SEG in S, {jS}
{jT} the AI jobs, {P} {Q} projects, {R} {RA} {RQ} readings, {R_dec} R's added decision (it has
a mask), {FE} a feedback export and {AE} an audit export of the admin's, {PP} a PACS pull;
{C} the consensus project, {K} a case of it read by both and compared (no reference standard
yet), {K2} another with one, {KR} {KA} rad's and ann's reads of K, {D} the finding of KR.

Expectations: HIDDEN is a 404 for something that exists but is not the caller's to see, and
like DENIED (403) it must leave exactly one 110113 audit event naming the caller; every other
answer must leave none.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

ROLES = ("anon", "rad", "ann", "adj", "radq", "admin", "tok")


@dataclass(frozen=True)
class Expect:
    status: int
    audited: bool = False  # one 110113 Security Alert for this refusal
    to: str = ""  # a redirect's location starts with this

    def __str__(self) -> str:
        return f"{self.status}{' audited' if self.audited else ''}{' to ' + self.to if self.to else ''}"


OK, CREATED, ACCEPTED = Expect(200), Expect(201), Expect(202)
BAD, CONFLICT, GONE = Expect(400), Expect(409), Expect(404)
LOGIN = Expect(302, to="/login/")  # LoginRequiredMiddleware: pages take no token
ADMIN_LOGIN = Expect(302, to="/admin/login/")  # the admin site's own sign-in
UNSIGNED = Expect(401)  # the API and DICOMweb: never a redirect
DENIED = Expect(403, audited=True)
HIDDEN = Expect(404, audited=True)
HIDDEN_BAD = Expect(400, audited=True)  # "no such series" in a body, as if it did not exist

Body = Callable[[dict[str, Any]], dict[str, Any]] | None


@dataclass(frozen=True)
class Row:
    method: str
    url: str  # with {placeholders}
    expect: tuple[Expect, ...]  # one per role, in ROLES order
    body: Body = None
    json: bool = True  # JSON body, else a form
    fresh: bool = False  # asked with a client of its own (it ends the session)
    # (role, why): cells where the code is known to disagree with the contract (the test
    # checks they still do, and fails once one is fixed so the entry is removed).
    known: tuple[tuple[str, str], ...] = field(default=())

    def __post_init__(self) -> None:
        assert len(self.expect) == len(ROLES), self.url

    @property
    def id(self) -> str:
        return f"{self.method} {self.url}"

    def expected(self, role: str) -> Expect:
        return self.expect[ROLES.index(role)]


def _same(expect: Expect) -> tuple[Expect, ...]:
    return (expect,) * len(ROLES)


def _version(values: dict[str, Any]) -> dict[str, Any]:
    return {"version": values["R_version"]}


#              anon      rad       ann       adj       radq      admin     tok
S_PAGE = (LOGIN, OK, OK, OK, HIDDEN, OK, LOGIN)
T_PAGE = (LOGIN, HIDDEN, HIDDEN, HIDDEN, OK, OK, LOGIN)
ADMIN_PAGE = (LOGIN, DENIED, DENIED, DENIED, DENIED, OK, LOGIN)
ADMIN_API = (UNSIGNED, DENIED, DENIED, DENIED, DENIED, OK, DENIED)
ANY_PAGE = (LOGIN, OK, OK, OK, OK, OK, LOGIN)
ANY_API = (UNSIGNED, OK, OK, OK, OK, OK, OK)
INGEST_PAGE = (LOGIN, OK, DENIED, DENIED, OK, OK, LOGIN)
S_API = (UNSIGNED, OK, OK, OK, HIDDEN, OK, OK)
T_API = (UNSIGNED, HIDDEN, HIDDEN, HIDDEN, OK, OK, HIDDEN)
# The AI of S: hidden from the annotator, and from tok, who has yet to read S unaided in P.
S_AI = (UNSIGNED, OK, HIDDEN, OK, HIDDEN, OK, HIDDEN)
R_READ = (UNSIGNED, OK, HIDDEN, HIDDEN, HIDDEN, OK, HIDDEN)  # rad's reading: his, the admin's


# Consensus project C: its cases, fused masks and reference are for its adjudicator and the
# admin; its readers are refused (403), anyone else is told nothing exists (404); both audited.
C_API = (UNSIGNED, DENIED, DENIED, OK, HIDDEN, OK, HIDDEN)
C_PAGE = (LOGIN, DENIED, DENIED, OK, HIDDEN, OK, LOGIN)


def _r_write(ok: Expect) -> tuple[Expect, ...]:
    """A write to rad's reading: his alone; the admin sees it but may not write (403)."""
    return (UNSIGNED, ok, HIDDEN, HIDDEN, HIDDEN, DENIED, HIDDEN)


PAGES = [
    Row("GET", "/login/", _same(OK)),
    # The second factor (config.otp): nothing is owed here (no devices, not required), so the
    # code page sends everybody on; enrolling is for admins.
    Row("GET", "/login/otp/", (LOGIN, *(Expect(302, to="/"),) * 5, LOGIN)),
    Row("GET", "/login/otp/setup/", ADMIN_PAGE),
    Row("POST", "/logout/", _same(LOGIN), json=False, fresh=True),
    Row("GET", "/health/", _same(OK)),
    Row("GET", "/", ANY_PAGE),
    Row("GET", "/studies/{S}/", S_PAGE),
    Row("GET", "/studies/{T}/", T_PAGE),
    Row("GET", "/upload/", INGEST_PAGE),
    Row("POST", "/upload/files", (LOGIN, BAD, DENIED, DENIED, BAD, BAD, LOGIN), json=False),
    Row("GET", "/pacs/", INGEST_PAGE),
    Row(
        "POST",
        "/pacs/pulls/",
        (LOGIN, BAD, DENIED, DENIED, BAD, BAD, LOGIN),
        body=lambda v: {"study_uid": ""},
        json=False,
    ),
    Row("GET", "/pacs/pulls/{PP}/", INGEST_PAGE),
    Row("GET", "/inference/jobs/", ANY_PAGE),
    Row(
        "GET",
        "/inference/jobs/{jS}/status/",
        (LOGIN, OK, HIDDEN, OK, HIDDEN, OK, LOGIN),
    ),
    Row(
        "GET",
        "/inference/jobs/{jT}/status/",
        T_PAGE,
    ),
    Row(
        "POST",
        "/inference/jobs/{jS}/cancel/",
        (LOGIN, CONFLICT, DENIED, DENIED, HIDDEN, CONFLICT, LOGIN),  # the job is already finished
        json=False,
    ),
    Row(
        "POST",
        "/inference/jobs/{jS}/rerun/",
        (LOGIN, OK, DENIED, DENIED, HIDDEN, OK, LOGIN),
        json=False,
    ),
    Row(
        "GET",
        "/inference/studies/{S}/panel/",
        S_PAGE,
    ),
    Row(
        "GET",
        "/inference/studies/{T}/panel/",
        T_PAGE,
    ),
    # Consensus pages: the list holds what the caller oversees (none for a reader; a content test)
    Row("GET", "/consensus/", ANY_PAGE),
    Row("GET", "/consensus/projects/{C}/", C_PAGE),
    # P is a second-reading project: there is no consensus project of that number
    Row("GET", "/consensus/projects/{P}/", (LOGIN, GONE, GONE, GONE, GONE, GONE, LOGIN)),
    Row("GET", "/audit/", ADMIN_PAGE),
    Row("GET", "/audit/export/csv/", ADMIN_PAGE),
    Row(
        "POST",
        "/audit/exports/",
        (LOGIN, DENIED, DENIED, DENIED, DENIED, Expect(302, to="/audit/exports/"), LOGIN),
        body=lambda v: {"export_format": "csv"},
        json=False,
    ),
    Row("GET", "/audit/exports/{AE}/", ADMIN_PAGE),
    Row("GET", "/audit/exports/{AE}/download/", ADMIN_PAGE),
    # Feedback export pages (admins); the zip itself comes from the API's file endpoint
    Row("GET", "/feedback/", ADMIN_PAGE),
    Row(
        "POST",
        "/feedback/",
        (LOGIN, DENIED, DENIED, DENIED, DENIED, Expect(302, to="/feedback/"), LOGIN),
        body=lambda v: {"decision": "accepted"},
        json=False,
    ),
    Row("GET", "/feedback/{FE}/", ADMIN_PAGE),
    # The media storage is never served by URL: arrays and masks go through the API.
    Row("GET", "/media/inference/jobs/{jS}/mask.u8.gz", _same(GONE)),
]

API = [
    Row("GET", "/api/schema/", ANY_API),
    Row("GET", "/api/docs/", ANY_API),
    Row("GET", "/api/v1/me/", ANY_API),
    Row("GET", "/api/v1/audit/events/", ADMIN_API),
    Row("GET", "/api/v1/audit/events/export/csv/", ADMIN_API),
    # Inference
    Row("GET", "/api/v1/studies/{S}/ai/", S_API),  # the annotator: 200 with no result
    Row("GET", "/api/v1/studies/{T}/ai/", T_API),
    Row("GET", "/api/v1/inference/models/", ANY_API),
    Row(
        "POST",
        "/api/v1/inference/jobs/",
        (UNSIGNED, ACCEPTED, DENIED, DENIED, HIDDEN_BAD, ACCEPTED, ACCEPTED),
        body=lambda v: {"series_uid": v["S_se"], "model": "demo-unet"},
    ),
    Row(
        "POST",
        "/api/v1/inference/jobs/",
        (UNSIGNED, HIDDEN_BAD, DENIED, DENIED, ACCEPTED, ACCEPTED, HIDDEN_BAD),
        body=lambda v: {"series_uid": v["T_se"], "model": "demo-unet"},
    ),
    Row("GET", "/api/v1/inference/jobs/{jS}/", S_AI),
    Row("GET", "/api/v1/inference/jobs/{jT}/", T_API),
    Row("GET", "/api/v1/inference/jobs/{jS}/arrays/mask/", S_AI),
    Row("GET", "/api/v1/inference/jobs/{jS}/arrays/heatmap/?slice=0", S_AI),
    Row("GET", "/api/v1/inference/jobs/{jT}/arrays/mask/", T_API),
    Row(
        "POST",
        "/api/v1/inference/jobs/{jS}/cancel/",
        (UNSIGNED, CONFLICT, DENIED, DENIED, HIDDEN, CONFLICT, HIDDEN),
    ),
    Row(
        "POST",
        "/api/v1/inference/jobs/{jS}/rerun/",
        (UNSIGNED, ACCEPTED, DENIED, DENIED, HIDDEN, ACCEPTED, HIDDEN),
    ),
    # Worklist, projects, assignment
    Row("GET", "/api/v1/worklist/", ANY_API),
    Row("GET", "/api/v1/projects/", ANY_API),
    Row(
        "POST",
        "/api/v1/projects/{P}/assignments/",
        (UNSIGNED, DENIED, DENIED, DENIED, DENIED, CREATED, DENIED),
        body=lambda v: {"study_uid": v["S"], "reader": "tok"},
    ),
    # Readings: open, read, write; R is rad's (AI revealed, every AI finding decided)
    Row("GET", "/api/v1/readings/", ANY_API),
    Row(
        "POST",
        "/api/v1/readings/",
        (UNSIGNED, OK, OK, DENIED, HIDDEN, DENIED, CREATED),
        body=lambda v: {"study_uid": v["S"]},
    ),
    Row(
        "POST",
        "/api/v1/readings/",
        (UNSIGNED, HIDDEN, HIDDEN, DENIED, OK, DENIED, HIDDEN),
        body=lambda v: {"study_uid": v["T"]},
    ),
    Row("GET", "/api/v1/readings/{R}/", R_READ),
    Row(
        "PATCH", "/api/v1/readings/{R}/", _r_write(OK), body=lambda v: _version(v) | {"final_impression": "x"}
    ),
    Row("POST", "/api/v1/readings/{R}/heartbeat/", _r_write(OK), body=lambda v: {"seconds": 5}),
    Row("POST", "/api/v1/readings/{R}/lock/", _r_write(CONFLICT), body=_version),
    Row("POST", "/api/v1/readings/{R}/reveal/", _r_write(CONFLICT), body=_version),
    Row("GET", "/api/v1/readings/{R}/decisions/", R_READ),
    Row(
        "POST",
        "/api/v1/readings/{R}/decisions/",
        _r_write(CREATED),
        body=lambda v: _version(v) | {"kind": "accepted", "finding": 1, "confidence": 4},
    ),
    Row("GET", "/api/v1/readings/{R}/decisions/{R_dec}/mask/", R_READ),
    Row(
        "POST",
        "/api/v1/readings/{R}/submit/",
        _r_write(OK),
        body=lambda v: _version(v) | {"triage_agreement": "agree"},
    ),
    Row("GET", "/api/v1/readings/{RA}/", (UNSIGNED, HIDDEN, OK, HIDDEN, HIDDEN, OK, HIDDEN)),
    Row("GET", "/api/v1/readings/{RQ}/", (UNSIGNED, HIDDEN, HIDDEN, HIDDEN, OK, OK, HIDDEN)),
    # Consensus: a reader's read of a case is a reading like any other (theirs and the admin's)
    Row("GET", "/api/v1/readings/{KR}/", R_READ),
    Row("GET", "/api/v1/readings/{KR}/decisions/", R_READ),
    Row("GET", "/api/v1/readings/{KR}/decisions/{D}/mask/", R_READ),
    Row("GET", "/api/v1/readings/{KA}/", (UNSIGNED, HIDDEN, OK, HIDDEN, HIDDEN, OK, HIDDEN)),
    # The consensus API; the project list holds what the caller oversees (a content test)
    Row("GET", "/api/v1/consensus/projects/", ANY_API),
    Row("GET", "/api/v1/consensus/projects/{C}/", C_API),
    Row("GET", "/api/v1/consensus/projects/{C}/cases/", C_API),
    # P is a second-reading project: there is no consensus project of that number
    Row("GET", "/api/v1/consensus/projects/{P}/", (UNSIGNED, GONE, GONE, GONE, GONE, GONE, GONE)),
    Row("GET", "/api/v1/consensus/cases/{K}/", C_API),
    Row("GET", "/api/v1/consensus/cases/{K}/masks/majority/", C_API),
    Row("GET", "/api/v1/consensus/cases/{K}/masks/staple/", C_API),
    # No reference yet: those who may see one are told there is none, not refused.
    Row(
        "GET",
        "/api/v1/consensus/cases/{K}/masks/reference/",
        (UNSIGNED, DENIED, DENIED, GONE, HIDDEN, GONE, HIDDEN),
    ),
    Row("GET", "/api/v1/consensus/cases/{K2}/masks/reference/", C_API),
    Row("GET", "/api/v1/consensus/cases/{K}/decisions/{D}/mask/", C_API),
    Row(
        "POST",
        "/api/v1/consensus/cases/{K}/reference/",
        (UNSIGNED, DENIED, DENIED, BAD, HIDDEN, BAD, HIDDEN),  # BAD: the rationale is required
        body=lambda v: {"version": 0, "source": "majority", "answers": {"follow_up": "yes"}, "rationale": ""},
    ),
    # Feedback export (admins)
    Row(
        "POST",
        "/api/v1/feedback/exports/",
        (UNSIGNED, DENIED, DENIED, DENIED, DENIED, ACCEPTED, DENIED),
        body=lambda v: {},
    ),
    Row("GET", "/api/v1/feedback/exports/{FE}/", ADMIN_API),
    Row("GET", "/api/v1/feedback/exports/{FE}/file/", ADMIN_API),
]

# DICOMweb: anybody not signed in gets 401 (clients cannot follow a login redirect).
_STUDY = "/dicomweb/studies/{X}"
_SERIES = _STUDY + "/series/{X_se}"
_INSTANCE = _SERIES + "/instances/{X_sop}"
_DICOMWEB_PATHS = [
    _STUDY,
    _STUDY + "/metadata",
    _STUDY + "/series",
    _STUDY + "/instances",
    _STUDY + "/thumbnail",
    _SERIES,
    _SERIES + "/metadata",
    _SERIES + "/instances",
    _SERIES + "/rendered",
    _SERIES + "/thumbnail",
    _INSTANCE,
    _INSTANCE + "/metadata",
    _INSTANCE + "/rendered",
    _INSTANCE + "/thumbnail",
    _INSTANCE + "/bulkdata/7FE00010",
    _INSTANCE + "/frames/1",
    _INSTANCE + "/frames/1/rendered",
    _INSTANCE + "/frames/1/thumbnail",
]
S_DICOMWEB = (UNSIGNED, OK, OK, OK, HIDDEN, OK, OK)
T_DICOMWEB = (UNSIGNED, HIDDEN, HIDDEN, HIDDEN, OK, OK, HIDDEN)
S_AI_DICOMWEB = S_AI
INGEST_API = (UNSIGNED, Expect(415), DENIED, DENIED, Expect(415), Expect(415), Expect(415))


def _dicomweb_rows() -> Iterator[Row]:
    yield Row("GET", "/dicomweb/studies", ANY_API)
    yield Row("GET", "/dicomweb/series", ANY_API)
    yield Row("GET", "/dicomweb/instances", ANY_API)
    # STOW-RS: the ingest permission first (an empty body is then refused as such)
    yield Row("POST", "/dicomweb/studies", INGEST_API)
    yield Row("POST", "/dicomweb/studies/{S}", INGEST_API)
    for path in _DICOMWEB_PATHS:
        s = path.replace("{X", "{S")
        yield Row("GET", s, S_DICOMWEB)
        t = path.replace("{X", "{T")
        yield Row("GET", t, T_DICOMWEB)
    # The AI's own SEG series in S: AI output, so not for the annotator of P.
    for path in (_SERIES, _SERIES + "/metadata", _INSTANCE + "/metadata"):
        ai = path.replace("{X_se}", "{S_ai_se}").replace("{X_sop}", "{S_ai_sop}").replace("{X", "{S")
        yield Row("GET", ai, S_AI_DICOMWEB)


DICOMWEB = list(_dicomweb_rows())


# --- The admin site ---------------------------------------------------------------------------
# What the admin role may do with each registered model in the admin site: v(iew) a(dd)
# c(hange) d(elete), from reviews.roles.ROLE_PERMISSIONS and the ModelAdmins' own refusals
# (read-only indexes, the append-only audit trail, projects deactivated rather than deleted).
# The object each model's pages are asked about is named by a placeholder.
ADMIN_MODELS: dict[str, tuple[str, str]] = {
    "auth/group": ("vc", "{group}"),
    "auth/user": ("vac", "{user}"),
    "authtoken/tokenproxy": ("vad", "{tokenproxy}"),
    "axes/accessattempt": ("", "{accessattempt}"),
    "axes/accesslog": ("", "{accesslog}"),
    "axes/accessfailurelog": ("", "{accessfailurelog}"),
    "audit/auditevent": ("v", "{auditevent}"),
    "viewer/patient": ("", "{patient}"),
    "viewer/study": ("v", "{study}"),
    "viewer/series": ("", "{series}"),
    "viewer/instance": ("", "{instance}"),
    "inference/modelversion": ("vc", "{modelversion}"),
    "inference/inferencejob": ("v", "{jS}"),
    "reviews/readingproject": ("vac", "{P}"),
    "reviews/projectstudy": ("va", "{projectstudy}"),
    "reviews/assignment": ("vad", "{assignment}"),
    "reviews/reading": ("v", "{R}"),
    "reviews/decision": ("v", "{R_dec}"),
    "reviews/feedbackexport": ("v", "{FE}"),
    "reviews/consensuscase": ("v", "{K}"),
    "reviews/referencestandard": ("v", "{referencestandard}"),
}
# The apps whose index the admin role sees (it holds a permission in each); the others 404.
ADMIN_APPS = {"auth": True, "authtoken": True, "axes": False, "audit": True, "viewer": True}
ADMIN_APPS |= {"inference": True, "reviews": True}


def _admin(for_admin: Expect, *, unsigned: Expect = ADMIN_LOGIN) -> tuple[Expect, ...]:
    """Only staff (the admin role) get past the admin site's sign-in. Nobody signed in is sent
    to it by the site's own pages, and to the main sign-in (LoginRequiredMiddleware) by the
    models' pages, whose views do not carry the site's login_not_required mark."""
    signed_in = ADMIN_LOGIN
    return (unsigned, signed_in, signed_in, signed_in, signed_in, for_admin, unsigned)


def _may(allowed: bool) -> Expect:
    return OK if allowed else DENIED


def _admin_rows() -> Iterator[Row]:
    signed_in_form = (OK, OK, OK, OK, OK, Expect(302, to="/admin/"), OK)
    yield Row("GET", "/admin/", _admin(OK))
    yield Row("GET", "/admin/login/", signed_in_form)
    # It signs out whoever asks; where it sends them next is the admin site's business.
    yield Row("POST", "/admin/logout/", _same(Expect(302)), json=False, fresh=True)
    yield Row("GET", "/admin/password_change/", _admin(OK))
    yield Row("GET", "/admin/password_change/done/", _admin(OK))
    yield Row("GET", "/admin/jsi18n/", _admin(OK))
    yield Row("GET", "/admin/autocomplete/", _admin(DENIED))  # without its parameters
    yield Row("GET", "/admin/r/{study_type}/{study}/", _admin(GONE))  # a study has no URL of its own
    yield Row("GET", "/admin/no-such-page/", _admin(GONE))
    yield Row("GET", "/admin/auth/user/{user}/password/", _admin(OK, unsigned=LOGIN))
    for app, shown in ADMIN_APPS.items():
        yield Row("GET", f"/admin/{app}/", _admin(OK if shown else GONE))
    for model, (letters, obj) in ADMIN_MODELS.items():
        sees = "v" in letters or "c" in letters
        base = f"/admin/{model}/"
        for path, expect in (
            (base, _may(sees)),
            (base + "add/", _may("a" in letters)),
            (f"{base}{obj}/change/", _may(sees)),
            (f"{base}{obj}/history/", _may(sees)),
            (f"{base}{obj}/delete/", _may("d" in letters)),
            (f"{base}{obj}/", Expect(302, to=base)),  # to its change page
        ):
            yield Row("GET", path, _admin(expect, unsigned=LOGIN))


ADMIN = list(_admin_rows())

ROWS = PAGES + API + DICOMWEB + ADMIN
