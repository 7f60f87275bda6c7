"""A two-reader consensus project in the browser, from the blinded reads to the reference
standard.

Two annotators read the same demo case, each blind to the other (and to the AI): they paint
the finding where they see it, lock, answer the project's question and submit. A real Celery
worker compares the reads; they disagree, so the case lands in the adjudication queue. The
adjudicator opens it from the project dashboard, sees both reads and the fused masks, starts
from STAPLE, corrects it with the brush, gives the answer and a rationale; the reference
standard is recorded with its provenance.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from fixtures.synthetic import make_ct_study
from reviews.models import ConsensusCase, Decision, MemberRole, ProjectMember, Reading, ReadingProject
from reviews.roles import Role
from reviews.services import project_studies_add
from tests.browser.conftest import ingest_study
from tests.browser.test_reading import _paint
from tests.browser.test_viewer import READY, shot, sign_in, until
from tests.factories import UserFactory
from viewer.models import Study

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

QUESTION = {"code": "nodule_type", "text": "Nodule type", "choices": ["solid", "part-solid", "ground-glass"]}


@pytest.fixture
def project(tmp_path: Any) -> dict[str, Any]:
    annotators = [UserFactory(username=name, role=Role.ANNOTATOR) for name in ("ann", "abe")]
    adjudicator = UserFactory(username="adi", role=Role.ADJUDICATOR)
    project = ReadingProject.objects.create(
        name="Nodule consensus",
        kind=ReadingProject.Kind.CONSENSUS,
        reads_per_case=2,
        label_schema={"questions": [QUESTION]},
    )
    for user in annotators:
        ProjectMember.objects.create(project=project, user=user, role=MemberRole.ANNOTATOR)
    ProjectMember.objects.create(project=project, user=adjudicator, role=MemberRole.ADJUDICATOR)
    study = ingest_study(tmp_path, make_ct_study(seed=7, slices=16, rows=128, columns=128, lesions=1))
    project_studies_add(project=project, studies=list(Study.objects.filter(study_uid=study.study_uid)))
    return {"project": project, "study": study, "annotators": annotators, "adjudicator": adjudicator}


def _read(browser: Any, live_server: Any, username: str, study_uid: str, *, dx: int, answer: str) -> None:
    """One annotator's whole blinded read in a browser of their own."""
    context = browser.new_context(base_url=live_server.url, viewport={"width": 1280, "height": 800})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    sign_in(page, username)
    page.goto(f"/studies/{study_uid}/")
    page.locator(READY).wait_for(state="attached", timeout=60_000)
    page.locator('[data-review][data-review-state="ready"]').wait_for(timeout=30_000)
    assert page.locator("[data-review-ai]").is_hidden()  # the project hides the AI from annotators
    page.keyboard.press("End")  # the lesions sit in the lower half of the demo series
    page.keyboard.press("PageUp")
    page.keyboard.press("n")
    _paint(page, dx=dx)
    page.keyboard.press("Enter")
    until(lambda: page.evaluate("() => window.overread.viewer.review().reading.decisions.length") == 1)
    page.get_by_role("button", name="Lock my read").click()
    page.locator("[data-review-study]").wait_for()
    page.get_by_label(answer, exact=True).check()
    page.get_by_role("button", name="Submit reading").click()
    until(
        lambda: page.evaluate("() => window.overread.viewer.review().reading.phase") == "submitted",
        what=f"{username}'s submission",
    )
    shot(page, f"consensus-read-{username}.png")
    context.close()
    assert errors == []


def test_two_blinded_reads_go_to_adjudication_and_become_a_reference_standard(
    browser: Any, live_server: Any, celery_worker_process: Any, project: dict[str, Any]
) -> None:
    study_uid = project["study"].study_uid
    _read(browser, live_server, "ann", study_uid, dx=0, answer="solid")
    _read(browser, live_server, "abe", study_uid, dx=40, answer="part-solid")

    # The worker compares the reads once both are in.
    case = ConsensusCase.objects.get(project=project["project"])
    deadline = time.monotonic() + 90
    while case.status == ConsensusCase.Status.COLLECTING and time.monotonic() < deadline:
        time.sleep(0.5)
        case.refresh_from_db()
    assert case.status == ConsensusCase.Status.ADJUDICATION, (case.status, case.error)
    assert "answers differ: Nodule type" in case.agreement["reasons"]

    # The adjudicator: the dashboard's queue, then the case beside the images.
    context = browser.new_context(base_url=live_server.url, viewport={"width": 1280, "height": 900})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    sign_in(page, "adi")
    page.get_by_role("link", name="Consensus").click()
    page.get_by_role("link", name="Nodule consensus").click()
    queue = page.locator('[data-testid="cases"] tbody tr[data-case]')
    assert queue.count() == 1
    shot(page, "consensus-dashboard.png")
    queue.get_by_role("link", name="Adjudicate").click()
    page.locator(READY).wait_for(state="attached", timeout=60_000)
    panel = page.locator('[data-adjudication][data-adjudication-state="ready"]')
    panel.wait_for(timeout=30_000)
    assert page.locator("[data-adj-reads] .adj-read").count() == 2
    # The readers' answers under the question's own words, as in the reasons.
    assert "Nodule type: solid" in page.locator("[data-adj-reads]").inner_text()
    assert page.locator("[data-adj-reads] .adj-read", has_text="read blind to the AI").count() == 2
    assert "answers differ: Nodule type" in page.locator("[data-adj-reasons]").inner_text()
    assert "STAPLE" in panel.inner_text()
    assert page.evaluate("() => window.overread.viewer.adjudication().shown") == "staple"

    # Start from STAPLE, correct it with the brush, answer, explain, record.
    page.get_by_role("button", name="Edit with the brush").click()
    _paint(page, dx=20, dy=30)
    page.get_by_label("solid", exact=True).check()
    page.locator("[data-adj-rationale]").fill(
        "STAPLE's mask, widened to the nodule's lower edge; solid on the lung window."
    )
    page.get_by_role("button", name="Record the reference standard").dblclick()  # records once
    until(
        lambda: page.locator("[data-adj-history-list] li").count() == 1, what="the reference in the history"
    )
    until(lambda: "recorded" in page.locator("[data-adj-message]").inner_text(), what="the recording said")
    assert "meanwhile" not in page.locator("[data-adj-message]").inner_text(), "no conflict with itself"
    shot(page, "consensus-adjudicated.png")

    # A second tab records a newer reference behind the first one's back.
    other = context.new_page()
    other.on("pageerror", lambda error: errors.append(str(error)))
    other.goto(page.url)
    other.locator('[data-adjudication][data-adjudication-state="ready"]').wait_for(timeout=30_000)
    other.locator("[data-adj-rationale]").fill("Second look: solid.")
    other.get_by_role("button", name="Record the reference standard").click()
    shot(other, "consensus-second-tab.png")
    until(lambda: other.locator("[data-adj-history-list] li").count() == 2, what="the second tab's reference")
    # The first tab, stale, records part-solid: refused, and its choices stay as they were.
    page.get_by_label("part-solid", exact=True).check()
    page.locator("[data-adj-rationale]").fill("Part-solid after all.")
    page.get_by_role("button", name="Record the reference standard").click()
    message = page.locator("[data-adj-message]")
    until(lambda: "recorded meanwhile" in message.inner_text(), what="the conflict explained")
    assert page.locator("[data-adj-history-list] li").count() == 2, "the newer reference is shown"
    assert page.get_by_label("part-solid", exact=True).is_checked(), "the adjudicator's answer is kept"
    page.get_by_role("button", name="Record the reference standard").click()
    until(lambda: page.locator("[data-adj-history-list] li").count() == 3, what="the checked reference")
    context.close()
    assert errors == []

    # The reference standard and its provenance.
    case.refresh_from_db()
    assert case.status == ConsensusCase.Status.ADJUDICATED
    assert case.references.get(superseded_by__isnull=True).answers == {"nodule_type": "part-solid"}
    reference = case.references.get(version=1)
    reads = Reading.objects.filter(project=project["project"], phase=Reading.Phase.SUBMITTED)
    assert reference.adjudicator == project["adjudicator"]
    assert (reference.source, reference.fusion) == ("edited", "staple")
    assert sorted(reference.readings) == sorted(reads.values_list("pk", flat=True))
    assert reference.answers == {"nodule_type": "solid"}
    assert reference.rationale.startswith("STAPLE's mask")
    assert reference.mask_voxels > 0
    # Each reader stays blind to the other: two readings, each with only its own finding.
    assert {r.reader.username for r in reads} == {"ann", "abe"}
    for reading in reads:
        assert list(Decision.objects.filter(reading=reading).values_list("reader__username", flat=True)) == [
            reading.reader.username
        ]
