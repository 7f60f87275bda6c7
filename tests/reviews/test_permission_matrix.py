"""The permission matrix (tests/reviews/matrix.py): every role against every page, API endpoint
and DICOMweb resource, another project's study by direct URL, and every refusal audited.

The objects are built once for the module inside a transaction that is rolled back at its
end; each request runs in a savepoint of its own and is rolled back after it, so a write
(a lock, a submit, a new job) never changes what the next request finds.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from axes.models import AccessAttempt, AccessFailureLog, AccessLog
from django.contrib.auth.models import Group
from django.contrib.contenttypes.models import ContentType
from django.db import transaction
from django.http import HttpResponseBase
from django.test import Client, override_settings
from django.urls import Resolver404, URLPattern, URLResolver, get_resolver, resolve
from rest_framework.authtoken.models import Token

from audit.models import AuditEvent, AuditExport
from audit.services.exports import audit_export_write
from inference.models import JobOutput
from reviews.models import (
    Assignment,
    ConsensusCase,
    MemberRole,
    ProjectMember,
    ProjectStudy,
    Reading,
    ReadingProject,
)
from reviews.roles import Role
from reviews.services import (
    FeedbackFilter,
    consensus_case_compute,
    feedback_export_build,
    feedback_export_request,
    project_studies_add,
    reference_record,
)
from tests.consensus.helpers import grown, read, stored_case
from tests.factories import UserFactory
from tests.reviews.helpers import ai_result, api, stored_study, with_derived_objects
from tests.reviews.matrix import OK, ROLES, ROWS, Row
from viewer.models import Instance, PacsPull, Study

DENIED = {"event_id": "110113", "event_type": "110132"}  # Security Alert: Use of Restricted Function


# --- The world ------------------------------------------------------------------------------
@dataclass
class World:
    users: dict[str, Any]  # role -> user (none for anon)
    token: str  # tok's API token
    values: dict[str, Any]  # the matrix's placeholders
    clients: dict[str, Client] = field(default_factory=dict)

    def client(self, role: str, *, fresh: bool = False) -> Client:
        """The role's client: signed in once for the module (its session outlives the requests'
        savepoints), or afresh for a request that ends the session."""
        if fresh or role not in self.clients:
            if role == "tok":
                client = Client(HTTP_AUTHORIZATION=f"Token {self.token}")
            else:
                client = Client()
                if role != "anon":
                    client.force_login(self.users[role])
            if fresh:
                return client
            self.clients[role] = client
        return self.clients[role]


def _reading(user: Any, study_uid: str, *, lock: bool) -> dict[str, Any]:
    client = api(user)
    reading: dict[str, Any] = client.post("/api/v1/readings/", {"study_uid": study_uid}, format="json").json()
    if lock:
        url = f"/api/v1/readings/{reading['id']}/lock/"
        reading = client.post(url, {"version": reading["version"]}, format="json").json()
    return reading


def _decide(user: Any, reading: dict[str, Any], body: dict[str, Any]) -> dict[str, Any]:
    url = f"/api/v1/readings/{reading['id']}/decisions/"
    answer: dict[str, Any] = api(user).post(url, body | {"version": reading["version"]}, format="json").json()
    reading["version"] = answer["version"]
    return answer["decision"]


SCHEMA = {"questions": [{"code": "follow_up", "text": "Follow-up CT needed", "choices": ["yes", "no"]}]}
ANSWERS = {"follow_up": "yes"}


def _consensus(users: dict[str, Any]) -> dict[str, Any]:
    """Project C, kind consensus: every case read by rad and ann (its only readers, so both are
    assigned each case), adjudicated by adj. Case K is read by both and compared (the task runs
    after a commit, which the module's transaction never makes: its function is called here);
    case K2 likewise, with a reference standard. Returns C's placeholders."""
    c = ReadingProject.objects.create(
        name="C", kind=ReadingProject.Kind.CONSENSUS, reads_per_case=2, label_schema=SCHEMA
    )
    for role, member in (("rad", "radiologist"), ("ann", "annotator"), ("adj", "adjudicator")):
        ProjectMember.objects.create(project=c, user=users[role], role=MemberRole(member))
    studies = [stored_case(seed=41, lesions=1), stored_case(seed=43, lesions=1)]
    project_studies_add(project=c, studies=[case.study for case in studies])
    reads: list[tuple[dict[str, Any], dict[str, Any]]] = []
    cases = []
    for case in studies:
        reads.append(
            (
                read(users["rad"], case, [case.lesion(1)], ANSWERS),
                read(users["ann"], case, [grown(case.lesion(1))], ANSWERS),
            )
        )
        row = ConsensusCase.objects.get(project=c, entry__study=case.study)
        cases.append(consensus_case_compute(case_pk=row.pk))
    k, k2 = cases
    assert k is not None
    assert k2 is not None
    assert k.computed_at is not None
    assert not k.error
    reference = reference_record(
        case=k2,
        adjudicator=users["adj"],
        source="majority",
        answers=ANSWERS,
        rationale="the reads agree",
        expected_version=0,
    )
    (kr, ka), (k2r, k2a) = reads
    return {
        "C": c.pk,
        "K": k.pk,
        "K_S": studies[0].study.study_uid,
        "K2": k2.pk,
        "K2_S": studies[1].study.study_uid,
        "KR": kr["id"],
        "KA": ka["id"],
        "K2R": k2r["id"],
        "K2A": k2a["id"],
        "D": kr["decisions"][0]["id"],
        "DA": ka["decisions"][0]["id"],
        "KR_seg": kr["seg_sop_uid"],
        "KA_seg": ka["seg_sop_uid"],
        "referencestandard": reference.pk,
    }


def _build() -> World:
    users: dict[str, Any] = {
        "rad": UserFactory(username="rad", role=Role.RADIOLOGIST),
        "ann": UserFactory(username="ann", role=Role.ANNOTATOR),
        "adj": UserFactory(username="adj", role=Role.ADJUDICATOR),
        "radq": UserFactory(username="radq", role=Role.RADIOLOGIST),
        "admin": UserFactory(username="admin", role=Role.ADMIN),
        "tok": UserFactory(username="tok", role=Role.RADIOLOGIST),
    }
    token = Token.objects.create(user=users["tok"])
    p = ReadingProject.objects.create(name="P")  # unaided first; the AI hidden from annotators
    q = ReadingProject.objects.create(name="Q")
    for role, member in (
        ("rad", "radiologist"),
        ("ann", "annotator"),
        ("adj", "adjudicator"),
        ("tok", "radiologist"),
    ):
        ProjectMember.objects.create(project=p, user=users[role], role=MemberRole(member))
    ProjectMember.objects.create(project=q, user=users["radq"], role=MemberRole.RADIOLOGIST)
    s = ai_result(stored_study(seed=21, lesions=2))
    with_derived_objects(s)
    t = ai_result(stored_study(seed=29, lesions=1))
    project_studies_add(project=p, studies=[s.study])
    project_studies_add(project=q, studies=[t.study])

    r = _reading(users["rad"], s.study.study_uid, lock=True)
    for finding in s.job.findings.order_by("index"):
        _decide(users["rad"], r, {"kind": "accepted", "finding": finding.index, "confidence": 4})
    added = _decide(
        users["rad"],
        r,
        {"kind": "added", "label": "lesion", "confidence": 3, "bbox": [[1, 3], [2, 6], [2, 6]]},
    )
    ra = _reading(users["ann"], s.study.study_uid, lock=True)
    rq = _reading(users["radq"], t.study.study_uid, lock=True)
    assert (r["phase"], ra["phase"], rq["phase"]) == ("ai_revealed", "locked", "ai_revealed")
    consensus = _consensus(users)

    feedback = feedback_export_request(feedback_filter=FeedbackFilter(), user=users["admin"])
    feedback_export_build(export_pk=feedback.pk)
    audit_export = AuditExport.objects.create(
        requested_by=users["admin"], export_format="csv", up_to_id=AuditEvent.objects.latest("id").id
    )
    audit_export_write(export_pk=audit_export.pk)
    seg = s.job.outputs.get(kind=JobOutput.Kind.SEG)
    seg_instance = Instance.objects.select_related("series").get(sop_instance_uid=seg.sop_instance_uid)
    attempt = {"ip_address": "10.0.0.1", "user_agent": "test", "username": "rad", "http_accept": "*/*"}
    values = {
        "S": s.study.study_uid,
        "S_se": s.series.series_uid,
        "S_sop": s.series.instances.order_by("pk").first().sop_instance_uid,  # type: ignore[union-attr]
        "S_ai_se": seg_instance.series.series_uid,
        "S_ai_sop": seg_instance.sop_instance_uid,
        "T": t.study.study_uid,
        "T_se": t.series.series_uid,
        "T_sop": t.series.instances.order_by("pk").first().sop_instance_uid,  # type: ignore[union-attr]
        "jS": s.job.pk,
        "jT": t.job.pk,
        "P": p.pk,
        "Q": q.pk,
        "R": r["id"],
        "R_version": r["version"],
        "R_dec": added["id"],
        "RA": ra["id"],
        "RQ": rq["id"],
        "FE": feedback.pk,
        "AE": audit_export.pk,
        "PP": PacsPull.objects.create(study_uid=s.study.study_uid, requested_by=users["rad"]).pk,
        # the admin site's objects
        "group": Group.objects.get(name=Role.RADIOLOGIST).pk,
        "user": users["rad"].pk,
        "tokenproxy": users["tok"].pk,
        "accessattempt": AccessAttempt.objects.create(**attempt, failures_since_start=1).pk,
        "accesslog": AccessLog.objects.create(**attempt).pk,
        "accessfailurelog": AccessFailureLog.objects.create(**attempt).pk,
        "auditevent": AuditEvent.objects.latest("id").pk,
        "patient": s.study.patient_id,
        "study": s.study.pk,
        "study_type": ContentType.objects.get_for_model(Study).pk,
        "series": s.series.pk,
        "instance": s.series.instances.order_by("pk").first().pk,  # type: ignore[union-attr]
        "modelversion": s.job.model_version_id,
        "projectstudy": ProjectStudy.objects.get(project=p, study=s.study).pk,
        "assignment": Assignment.objects.filter(project=p, study=s.study).first().pk,  # type: ignore[union-attr]
        **consensus,
    }
    world = World(users=users, token=token.key, values=values)
    for role in ROLES:
        world.client(role)
    return world


@pytest.fixture(scope="module")
def world(django_db_setup: Any, django_db_blocker: Any, tmp_path_factory: Any) -> Iterator[World]:
    """The cast and the objects, once for the module (rolled back when it ends)."""
    media = tmp_path_factory.mktemp("media")
    with django_db_blocker.unblock(), override_settings(MEDIA_ROOT=media):
        atomic = transaction.atomic()
        atomic.__enter__()
        try:
            yield _build()
        finally:
            transaction.set_rollback(True)
            atomic.__exit__(None, None, None)


# --- Asking ---------------------------------------------------------------------------------
@dataclass
class Answer:
    status: int
    location: str
    denials: list[str]  # usernames on the 110113 events the request left
    content: bytes


def _send(client: Client, row: Row, values: dict[str, Any]) -> HttpResponseBase:
    url = row.url.format(**values)
    if row.method == "GET":
        return client.get(url)
    body = row.body(values) if row.body is not None else {}
    if row.json:
        return client.generic(row.method, url, json.dumps(body), content_type="application/json")
    return client.post(url, body)


def ask(world: World, role: str, row: Row) -> Answer:
    """One request by `role`, rolled back afterwards, with the refusals it left in the trail."""
    with transaction.atomic():
        before = AuditEvent.objects.order_by("-id").values_list("id", flat=True).first() or 0
        response = _send(world.client(role, fresh=row.fresh), row, world.values)
        # Read inside the savepoint: a streamed answer runs its code (and audit) as it is read.
        content = b"".join(response.streaming_content) if response.streaming else response.content  # type: ignore[attr-defined]
        denials = list(AuditEvent.objects.filter(id__gt=before, **DENIED).values_list("username", flat=True))
        transaction.set_rollback(True)
    return Answer(response.status_code, response.get("Location", ""), denials, content)


def _username(world: World, role: str) -> str:
    return "" if role == "anon" else str(world.users[role].get_username())


def _disagreement(world: World, role: str, row: Row, answer: Answer) -> str:
    """What is wrong with the answer ("" when it is what the matrix says)."""
    expected = row.expected(role)
    if answer.status != expected.status:
        return f"status {answer.status}, expected {expected}: {answer.content[:160]!r}"
    if expected.to and not answer.location.startswith(expected.to):
        return f"redirected to {answer.location!r}, expected {expected.to!r}"
    wanted = [_username(world, role)] if expected.audited else []
    if answer.denials != wanted:
        return f"audited refusals {answer.denials}, expected {wanted}"
    return ""


# --- The matrix -----------------------------------------------------------------------------
@pytest.mark.django_db
@pytest.mark.parametrize("row", ROWS, ids=[row.id for row in ROWS])
def test_every_role_gets_what_the_matrix_says(world: World, row: Row) -> None:
    known = dict(row.known)
    wrong, still_known = [], []
    for role in ROLES:
        problem = _disagreement(world, role, row, ask(world, role, row))
        if role in known:
            if not problem:
                wrong.append(f"{role}: now as the contract says; remove it from the row's `known`")
            else:
                still_known.append(f"{role}: {problem}")
        elif problem:
            wrong.append(f"{role}: {problem}")
    assert not wrong, f"{row.id}:\n" + "\n".join(wrong)
    if still_known:  # each of them a bug reported in matrix.py
        pytest.xfail(f"{'; '.join(still_known)} ({' / '.join(sorted(set(known.values())))})")


class _Ones(dict[str, Any]):
    """Every placeholder is 1: enough to resolve a URL to its route."""

    def __missing__(self, key: str) -> str:
        return "1"


def _routes(resolver: URLResolver, prefix: str = "") -> Iterator[str]:
    for pattern in resolver.url_patterns:
        if isinstance(pattern, URLResolver):
            yield from _routes(pattern, prefix + str(pattern.pattern).removeprefix("^"))
        elif isinstance(pattern, URLPattern):
            yield prefix + str(pattern.pattern).removeprefix("^")  # as ResolverMatch.route joins them


def test_the_matrix_has_a_row_for_every_url() -> None:
    """A URL added without deciding who may use it fails here."""
    covered = set()
    for row in ROWS:
        try:
            covered.add(resolve(row.url.split("?")[0].format_map(_Ones())).route)
        except Resolver404:  # a path no URL serves (the media storage): asked all the same
            continue
    missing = sorted(set(_routes(get_resolver())) - covered)
    assert not missing, "no matrix row for:\n" + "\n".join(missing)


# --- AI output: never to the annotator of a project that hides it ----------------------------
def _get(world: World, role: str, url: str) -> Answer:
    return ask(world, role, Row("GET", url, (OK,) * len(ROLES)))


@pytest.mark.django_db
def test_the_annotator_gets_no_ai_output_by_any_route(world: World) -> None:
    v = world.values
    for role, shown in (("rad", True), ("adj", True), ("ann", False)):
        ai = json.loads(_get(world, role, f"/api/v1/studies/{v['S']}/ai/").content)
        assert (ai["job"] == v["jS"], bool(ai["findings"])) == (shown, shown), role
        rows = json.loads(_get(world, role, "/api/v1/worklist/?status=all").content)["results"]
        rows = [r for r in rows if r["study_uid"] == v["S"]]  # C's cases have no AI result
        assert [(r["ai"] is not None, r["ai_priority"] == "urgent") for r in rows] == [(shown, shown)], role
        jobs = _get(world, role, "/inference/jobs/").content.decode()
        assert (f'id="job-{v["jS"]}"' in jobs) == shown, role
        panel = _get(world, role, f"/inference/studies/{v['S']}/panel/").content.decode()
        assert ("Model attention and findings from" in panel) == shown, role
    own = json.loads(_get(world, "ann", f"/api/v1/readings/{v['RA']}/").content)
    assert (own["ai"], own["project"]["show_ai"], own["phase"]) == (None, False, "locked")
    page = _get(world, "ann", f"/studies/{v['S']}/").content.decode()
    assert "data-ai-url" not in page
    assert v["S_ai_se"] not in page
    reading = json.loads(_get(world, "rad", f"/api/v1/readings/{v['R']}/").content)
    assert reading["ai"]["job"] == v["jS"]  # the control: a radiologist of P sees it


@pytest.mark.django_db
def test_the_worklist_page_keeps_the_ai_triage_from_the_annotator(world: World) -> None:
    assert "triage-urgent" in _get(world, "rad", "/?status=all").content.decode()
    assert "triage-urgent" not in _get(world, "ann", "/?status=all").content.decode()


@pytest.mark.django_db
def test_dicomweb_keeps_the_ai_series_from_the_annotator(world: World) -> None:
    v = world.values
    for role, shown in (("rad", True), ("ann", False)):
        series = json.loads(_get(world, role, f"/dicomweb/studies/{v['S']}/series").content)
        uids = {s["0020000E"]["Value"][0] for s in series}
        assert v["S_se"] in uids, role
        assert (v["S_ai_se"] in uids) == shown, role
        metadata = _get(world, role, f"/dicomweb/studies/{v['S']}/metadata").content.decode()
        assert (v["S_ai_sop"] in metadata) == shown, role


# --- Another project's study and objects ------------------------------------------------------
@pytest.mark.django_db
def test_another_projects_study_is_not_listed_anywhere(world: World) -> None:
    """radq (project Q only) finds nothing of S in any listing; rad finds S, never T."""
    v = world.values
    for role, mine, other in (("radq", "T", "S"), ("rad", "S", "T")):
        listings = [
            _get(world, role, "/api/v1/worklist/?status=all").content,
            _get(world, role, "/api/v1/readings/").content,
            _get(world, role, "/?status=all").content,
            _get(world, role, "/dicomweb/studies").content,
            _get(world, role, f"/dicomweb/series?StudyInstanceUID={v[other]}").content,
            _get(world, role, "/inference/jobs/").content,
        ]
        assert all(v[other].encode() not in listing for listing in listings), role
        assert v[mine].encode() in listings[0], role  # the worklist API
        assert v[mine].encode() in listings[3], role  # QIDO-RS
    projects = json.loads(_get(world, "radq", "/api/v1/projects/").content)
    assert [p["name"] for p in projects] == ["Q"]


@pytest.mark.django_db
def test_a_reading_is_seen_only_by_its_reader_and_the_admin(world: World) -> None:
    v = world.values
    seen = {
        role: sorted(r["id"] for r in json.loads(_get(world, role, "/api/v1/readings/").content))
        for role in ("rad", "ann", "adj", "radq", "admin", "tok")
    }
    consensus = {"rad": [v["KR"], v["K2R"]], "ann": [v["KA"], v["K2A"]]}  # C's reads
    assert seen == {
        "rad": sorted([v["R"], *consensus["rad"]]),
        "ann": sorted([v["RA"], *consensus["ann"]]),
        "adj": [],  # C's adjudicator reads the reads through the case, not the reading API
        "radq": [v["RQ"]],
        "admin": sorted([v["R"], v["RA"], v["RQ"], *consensus["rad"], *consensus["ann"]]),
        "tok": [],
    }
    assert Reading.objects.count() == 7


# --- Consensus: the readers of a case are blind to each other --------------------------------
def _status(world: World, role: str, url: str) -> tuple[int, bytes]:
    answer = _get(world, role, url)
    return answer.status, answer.content


@pytest.mark.django_db
def test_the_readers_of_a_consensus_case_never_see_each_others_read(world: World) -> None:
    """rad and ann read K: neither reaches the other's reading, decisions or masks by id, nor
    the case, its fused masks or the reference (of K2) by any route; only their own reads are
    listed, and the consensus list is empty for them."""
    v = world.values
    for role, mine, theirs, their_finding in (("rad", "KR", "KA", "DA"), ("ann", "KA", "KR", "D")):
        own = json.loads(_get(world, role, f"/api/v1/readings/{v[mine]}/").content)
        assert own["id"] == v[mine], role  # the control: their own read
        for url in (
            f"/api/v1/readings/{v[theirs]}/",
            f"/api/v1/readings/{v[theirs]}/decisions/?history=1",
            f"/api/v1/readings/{v[theirs]}/decisions/{v[their_finding]}/mask/",
            f"/api/v1/readings/{v[mine]}/decisions/{v[their_finding]}/mask/",  # theirs, through mine
        ):
            assert _status(world, role, url)[0] == 404, (role, url)
        for url in (
            f"/api/v1/consensus/projects/{v['C']}/",
            f"/api/v1/consensus/projects/{v['C']}/cases/?status=all",
            f"/api/v1/consensus/cases/{v['K']}/",
            f"/api/v1/consensus/cases/{v['K']}/masks/majority/",
            f"/api/v1/consensus/cases/{v['K']}/masks/staple/",
            f"/api/v1/consensus/cases/{v['K2']}/",
            f"/api/v1/consensus/cases/{v['K2']}/masks/reference/",
            f"/api/v1/consensus/cases/{v['K']}/decisions/{v[their_finding]}/mask/",
        ):
            status, content = _status(world, role, url)
            assert status == 403, (role, url)
            assert set(json.loads(content)) <= {"detail", "field"}, (role, url)  # the refusal alone
        assert _status(world, role, f"/consensus/projects/{v['C']}/")[0] == 403, role
        listed = json.loads(_get(world, role, f"/api/v1/readings/?study_uid={v['K_S']}").content)
        assert [r["id"] for r in listed] == [v[mine]], role
        assert json.loads(_get(world, role, "/api/v1/consensus/projects/").content) == [], role
        assert f"/consensus/projects/{v['C']}/" not in _get(world, role, "/consensus/").content.decode()
        page = _get(world, role, f"/studies/{v['K_S']}/?case={v['K']}").content.decode()
        assert f"/api/v1/consensus/cases/{v['K']}/" not in page, role  # no adjudication panel
        metadata = _get(world, role, f"/dicomweb/studies/{v['K_S']}/metadata").content.decode()
        assert (v[f"{mine}_seg"] in metadata, v[f"{theirs}_seg"] in metadata) == (True, False), role
    for role in ("adj", "admin"):  # the control: who oversees C finds it, and both reads
        case = json.loads(_get(world, role, f"/api/v1/consensus/cases/{v['K']}/").content)
        assert sorted(r["reading"] for r in case["reads"]) == sorted([v["KR"], v["KA"]]), role
        assert [p["id"] for p in json.loads(_get(world, role, "/api/v1/consensus/projects/").content)] == [
            v["C"]
        ]
        page = _get(world, role, f"/studies/{v['K_S']}/?case={v['K']}").content.decode()
        assert f"/api/v1/consensus/cases/{v['K']}/" in page, role


@pytest.mark.django_db
def test_a_reader_of_a_consensus_case_sees_only_themself_among_its_readers(world: World) -> None:
    v = world.values

    def assignees(role: str) -> dict[str, list[str]]:
        rows = json.loads(_get(world, role, "/api/v1/worklist/?status=all").content)["results"]
        return {r["study_uid"]: sorted(r["assignees"]) for r in rows if r["project"]["id"] == v["C"]}

    for case in ("K_S", "K2_S"):
        assert assignees("rad")[v[case]] == ["rad"]
        assert assignees("ann")[v[case]] == ["ann"]
        assert assignees("adj")[v[case]] == ["ann", "rad"]
        assert assignees("admin")[v[case]] == ["ann", "rad"]
    for role in ("radq", "tok"):
        assert assignees(role) == {}, role


# --- Exports are their requester's ------------------------------------------------------------
def _refusals_by(client: Client, url: str) -> tuple[int, list[str]]:
    with transaction.atomic():
        before = AuditEvent.objects.order_by("-id").values_list("id", flat=True).first() or 0
        status = client.get(url).status_code
        denials = AuditEvent.objects.filter(id__gt=before, **DENIED)
        usernames = list(denials.values_list("username", flat=True))
        transaction.set_rollback(True)
    return status, usernames


@pytest.mark.django_db
def test_another_admins_feedback_export_is_not_found_and_the_refusal_audited(world: World) -> None:
    other: Any = UserFactory(username="admin2", role=Role.ADMIN)
    client = Client()
    client.force_login(other)
    fe = world.values["FE"]
    for url in (f"/api/v1/feedback/exports/{fe}/", f"/api/v1/feedback/exports/{fe}/file/"):
        assert _refusals_by(client, url) == (404, ["admin2"]), url
    assert _refusals_by(client, f"/api/v1/feedback/exports/{fe + 1000}/") == (404, [])  # none such


@pytest.mark.django_db
def test_another_admins_audit_export_is_not_found_and_the_refusal_audited(world: World) -> None:
    other: Any = UserFactory(username="admin2", role=Role.ADMIN)
    client = Client()
    client.force_login(other)
    ae = world.values["AE"]
    for url in (f"/audit/exports/{ae}/", f"/audit/exports/{ae}/download/"):
        assert _refusals_by(client, url) == (404, ["admin2"]), url
