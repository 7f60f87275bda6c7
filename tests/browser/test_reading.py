"""A radiologist's whole second read in the browser, against real inference jobs.

Rhea reads in an unaided-first project: she opens the top study of her worklist, paints a
finding of her own with the AI out of sight, locks that read, sees the AI, accepts one
finding, corrects another with the brush, overrides a third with a reason, adds one the AI
missed, and submits. The database, the stored SEG and SR and the audit trail must then say
exactly what she did.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from audit.models import AuditEvent
from fixtures.synthetic import make_ct_study
from inference.derived import dciodvfy_check
from inference.models import InferenceJob
from reviews.models import Decision, MemberRole, ProjectMember, Reading, ReadingProject
from reviews.roles import Role
from reviews.services import project_studies_add
from tests.browser.conftest import ingest_study
from tests.browser.test_viewer import READY, centre_of, shot, sign_in, until
from tests.browser.test_viewer_ai import _queued_job, _run
from tests.factories import UserFactory
from tests.inference.helpers import demo_model
from viewer.models import Instance, Study
from viewer.store import store_open

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PANEL = "[data-review]"


@pytest.fixture
def rhea(db: Any) -> Any:
    """A radiologist who reads only in her project (no department-wide project)."""
    return UserFactory(username="rhea", role=Role.RADIOLOGIST, first_name="Rhea", last_name="Reader")


@pytest.fixture
def worklist(tmp_path: Any, rhea: Any) -> dict[str, Any]:
    """An unaided-first project with two studies that the AI has read: an urgent one with
    three lesions (the AI finds all three) and a normal one."""
    project = ReadingProject.objects.create(name="Chest CT second reading")
    ProjectMember.objects.create(project=project, user=rhea, role=MemberRole.RADIOLOGIST)
    urgent = ingest_study(tmp_path, make_ct_study(seed=5, slices=16, rows=128, columns=128, lesions=3))
    normal = ingest_study(tmp_path, make_ct_study(seed=6, slices=16, rows=128, columns=128, lesions=0))
    model = demo_model()
    jobs = {study.study_uid: _run(_queued_job(study, model)) for study in (normal, urgent)}
    project_studies_add(project=project, studies=list(Study.objects.all()), user=rhea)
    job = jobs[urgent.study_uid]
    assert job.findings.count() == 3, "the demonstration model should find the three lesions"
    return {"project": project, "study": urgent, "job": job}


def _panel_state(page: Any) -> dict[str, Any]:
    state: dict[str, Any] = page.evaluate("() => window.overread.viewer.review()")
    return state


def _decisions(page: Any) -> dict[str, dict[str, Any]]:
    reading = _panel_state(page)["reading"]
    return {d["target"]: d for d in reading["decisions"]}


def _paint(page: Any, dx: float = 0, dy: float = 0) -> None:
    """A brush stroke near the middle of the viewport (the viewer centres on a finding)."""
    x, y = centre_of(page)
    page.mouse.move(x + dx, y + dy)
    page.mouse.down()
    for step in range(1, 9):
        page.mouse.move(x + dx + step * 3, y + dy + step * 2)
    page.mouse.up()


def _finding(page: Any, index: int) -> Any:
    return page.locator(f'{PANEL} [data-finding="{index}"]')


def _grow_with_the_brush(page: Any, index: int) -> None:
    """Edit (the button), a brush stroke beside the lesion, Save: the finding's mask grows."""
    _finding(page, index).get_by_role("button", name="Edit").click()
    page.locator(f"{PANEL} [data-review-editing]").wait_for()
    until(lambda: page.evaluate("() => window.overread.viewer.state().tool") == "Brush", what="the brush")
    _paint(page, dx=25, dy=25)
    page.get_by_role("button", name="Save").click()
    until(lambda: _decisions(page).get(f"ai-{index}", {}).get("kind") == "edited", what=f"edit {index}")


def test_a_radiologist_reads_unaided_then_decides_on_every_ai_finding_and_submits(
    page: Any, browser_errors: list[str], rhea: Any, worklist: dict[str, Any]
) -> None:
    study, job = worklist["study"], worklist["job"]

    # The worklist: the urgent study is on top; the keyboard opens it.
    sign_in(page, "rhea")
    rows = page.locator("#worklist-rows tr")
    until(lambda: rows.count() >= 2, what="the worklist rows")
    assert study.study_uid in (page.locator("#worklist-rows tr").first.inner_html())
    page.keyboard.press("ArrowDown")
    page.keyboard.press("Enter")
    page.wait_for_url(f"**/studies/{study.study_uid}/**")
    page.locator(READY).wait_for(state="attached", timeout=60_000)
    page.locator(f'{PANEL}[data-review-state="ready"]').wait_for(timeout=30_000)

    # Unaided: no AI anywhere on the page, and the AI API says nothing either.
    assert _panel_state(page)["reading"]["phase"] == "unaided"
    assert page.locator("[data-ai-panel]").is_hidden()
    assert page.locator(f"{PANEL} [data-review-ai]").is_hidden()
    ai = page.request.get(f"/api/v1/studies/{study.study_uid}/ai/").json()
    assert ai.get("findings") in (None, []), ai
    thumbs = page.locator("[data-series-uid]")
    assert thumbs.count() == 1, "the AI's SEG, Parametric Map and SR series stay out of the list"
    shot(page, "reading-1-unaided.png")

    # Her own finding, painted with the brush, then the impression and the lock.
    page.keyboard.press("n")
    page.locator(f"{PANEL} [data-review-editing]").wait_for()
    _paint(page)
    page.keyboard.press("Enter")
    until(lambda: "added-1" in _decisions(page), what="the unaided finding saved")
    unaided = _decisions(page)["added-1"]
    assert unaided["phase"] == "unaided"
    assert unaided["mask_voxels"] > 0
    impression = page.locator("[data-review-unaided-impression]")
    impression.fill("Nodule in the right lung.")
    # A reload keeps the impression being typed (the tab's session storage), the finding too.
    page.evaluate("() => window.dispatchEvent(new Event('pagehide'))")  # posts the active time
    page.reload()
    page.locator(READY).wait_for(state="attached", timeout=60_000)
    page.locator(f'{PANEL}[data-review-state="ready"]').wait_for(timeout=30_000)
    assert impression.input_value() == "Nodule in the right lung."
    assert "added-1" in _decisions(page)
    impression.press("Control+Enter")  # locks from the impression box
    page.locator(f"{PANEL} [data-review-ai]").wait_for()
    until(lambda: page.locator(f"{PANEL} [data-finding]").count() == 3, what="the AI's three findings")
    assert _panel_state(page)["reading"]["phase"] == "ai_revealed"
    shot(page, "reading-2-revealed.png")

    # Accept finding 1 (keyboard: J/K choose, A accepts).
    _finding(page, 1).get_by_role("button", name="Accept").click()
    until(lambda: _decisions(page).get("ai-1", {}).get("kind") == "accepted", what="the accept")

    # Edit finding 2 with the brush: a stroke beside the lesion grows the mask.
    page.locator(f'{PANEL} input[name="confidence"][value="4"]').check()
    _grow_with_the_brush(page, 2)

    # Override finding 3: a false positive from an artefact.
    page.locator(f'{PANEL} input[name="confidence"][value="5"]').check()
    _finding(page, 3).get_by_role("button", name="Override").click()
    page.get_by_label("False positive: artefact").check()
    page.locator("[data-review-override]").get_by_role("button", name="Override").click()
    until(lambda: _decisions(page).get("ai-3", {}).get("kind") == "overridden", what="the override")
    # Its mask is no longer drawn (the edited and accepted ones are), its box is muted.
    hidden = "() => window.overread.viewer.state().hiddenSegments"
    until(lambda: page.evaluate(hidden) == [3], what="the overridden mask hidden")
    struck = page.locator("[data-ai-findings] li.is-overridden [data-finding-index]")
    assert [struck.nth(i).get_attribute("data-finding-index") for i in range(struck.count())] == ["3"]
    # The AI panel's list says what was decided on each finding, as the reading panel does.
    marks = "() => [...document.querySelectorAll('[data-ai-findings] li')].map((li) => li.dataset.decision)"
    assert page.evaluate(marks) == ["accepted", "edited", "overridden"]
    page.locator(f'{PANEL} [data-finding="3"]').locator("button").first.click()  # back to it
    box = page.locator('.viewport-boxes rect[data-finding-index="3"]')
    until(lambda: box.count() == 1, what="its box")
    assert box.get_attribute("data-rejected") == "true"
    shot(page, "reading-override-muted.png")

    # A finding the AI missed, on another slice.
    page.keyboard.press("Home")
    page.get_by_role("button", name="New finding").click()
    _paint(page, dx=-60, dy=-40)
    page.get_by_role("button", name="Save").click()
    until(lambda: "added-2" in _decisions(page), what="the missed finding saved")
    # Her own findings are listed; a click brings the viewer back to one.
    where = "() => window.overread.viewer.state().imageIndex"
    page.keyboard.press("End")
    until(lambda: page.evaluate(where) > 0, what="the last slice")
    page.locator(f'{PANEL} [data-review-added] li[data-target="added-2"] button').first.click()
    until(lambda: page.evaluate(where) == 0, what="the viewer back at the missed finding")

    # The study: agree with the triage, the final impression, submit.
    assert (
        page.locator("[data-review-triage] legend")
        .inner_text()
        .endswith(f"{job.triage} (score {job.study_score:.2f})")
    ), "the reader sees the triage they agree with"
    page.get_by_label("I agree").check()
    page.locator("[data-review-final-impression]").fill("Two nodules; one AI finding is an artefact.")
    submits: list[str] = []
    page.on("request", lambda r: submits.append(r.url) if r.url.endswith("/submit/") else None)
    page.get_by_role("button", name="Submit reading").dblclick()  # a double click submits once
    until(lambda: _panel_state(page)["reading"]["phase"] == "submitted", what="the submission", timeout=60)
    assert len(submits) == 1
    assert page.locator("[data-review-confidence]").is_hidden(), "no decision is left to rate"
    assert page.locator("[data-review-message]").get_attribute("data-tone") != "error"
    shot(page, "reading-3-submitted.png")
    assert browser_errors == []

    # What the database holds: each decision with its provenance and Dice.
    reading = Reading.objects.get(reader=rhea)
    assert reading.phase == "submitted"
    assert reading.reading_mode == "unaided-first"
    assert reading.unaided_impression == "Nodule in the right lung."
    assert reading.triage_agreement == "agree"
    assert reading.final_impression.startswith("Two nodules")
    assert reading.unaided_seconds > 0
    current = {d.target: d for d in Decision.objects.filter(reading=reading)}
    assert set(current) == {"added-1", "ai-1", "ai-2", "ai-3", "added-2"}
    for decision in current.values():
        assert decision.reader == rhea
        assert decision.reader_role == MemberRole.RADIOLOGIST
        assert decision.reading_mode == "unaided-first"
    assert current["added-1"].phase == "unaided"
    assert current["added-1"].dice is None
    for target in ("ai-1", "ai-2", "ai-3", "added-2"):
        decision = current[target]
        assert decision.phase == "ai_revealed"
        assert decision.model_version == job.model_version
        assert decision.inference_job == job
        assert decision.input_hash == job.input_hash
    assert current["ai-1"].dice == 1.0
    assert current["ai-1"].confidence is None, "she gave none: none is assumed"
    assert current["ai-1"].final_label == current["ai-1"].ai_label
    assert current["ai-1"].ai_max_probability == pytest.approx(job.findings.get(index=1).max_probability)
    edited = current["ai-2"]
    assert 0.0 < edited.dice < 1.0, "the brush stroke changed the mask"
    assert edited.mask_voxels > 0
    assert edited.final_label == edited.ai_label
    assert edited.confidence == 4
    overridden = current["ai-3"]
    assert overridden.reason_code == "false_positive_artefact"
    assert overridden.dice == 0.0
    assert overridden.confidence == 5
    assert not overridden.mask_key
    assert current["added-2"].dice is None
    assert current["added-2"].mask_voxels > 0

    # The reader's SEG and SR are stored with the study and valid.
    for sop_uid in (reading.seg_sop_uid, reading.sr_sop_uid):
        instance = Instance.objects.get(sop_instance_uid=sop_uid)
        assert instance.series.study.study_uid == study.study_uid
        with store_open(instance.storage_key) as handle:
            assert dciodvfy_check(handle.read()) == []

    # The audit trail has every step, in order.
    steps = [
        json.loads(e.detail).get("what")
        for e in AuditEvent.objects.filter(study_uid=study.study_uid, username="rhea").order_by("id")
    ]
    steps = [s for s in steps if s]
    assert steps[0] == "reading started"
    assert steps.count("decision recorded") == 5
    assert steps.index("unaided read locked") > steps.index("decision recorded")
    assert steps[-1].startswith("reading submitted") or "reading submitted" in steps
    assert InferenceJob.objects.get(pk=job.pk).status == "succeeded"


COUNT_SEGMENT = """(index) => Object.values(window.overread.viewer.getLabelmap())
    .reduce((n, values) => n + values.filter((v) => v === index).length, 0)"""


def test_what_the_viewer_draws_is_what_the_reading_saves(
    page: Any, browser_errors: list[str], rhea: Any, worklist: dict[str, Any]
) -> None:
    study, job = worklist["study"], worklist["job"]
    drawn = lambda index: page.evaluate(COUNT_SEGMENT, index)  # noqa: E731
    sign_in(page, "rhea")
    page.goto(f"/studies/{study.study_uid}/?project={worklist['project'].pk}")
    page.locator(READY).wait_for(state="attached", timeout=60_000)
    page.locator(f'{PANEL}[data-review-state="ready"]').wait_for(timeout=30_000)

    # A new finding painted, then cancelled: its paint goes, and nothing of it is saved later.
    page.keyboard.press("n")
    _paint(page, dx=-60, dy=-40)
    until(lambda: drawn(101) > 0, what="the stroke drawn")
    page.keyboard.press("Escape")
    until(lambda: drawn(101) == 0, what="the cancelled stroke gone")
    # Nothing recorded: the lock asks once more before it locks.
    page.get_by_role("button", name="Lock my read and show the AI").click()
    confirm = page.get_by_role("button", name="Lock with nothing recorded")
    confirm.wait_for()
    assert "no finding and no impression" in page.locator(f"{PANEL} [data-review-message]").inner_text()
    assert _panel_state(page)["reading"]["phase"] == "unaided"
    confirm.click()
    until(lambda: page.locator(f"{PANEL} [data-finding]").count() == 3, what="the AI's findings")

    # The viewer shows finding 1 at once; the reader outlines it as a finding of her own.
    until(lambda: _panel_state(page)["current"] == 1, what="finding 1 chosen")
    ai = _panel_state(page)["reading"]["ai"]
    slice_1 = ai["slices"][round(ai["findings"][0]["centroid_voxel"][0])]
    where = "() => window.overread.viewer.state().sopInstanceUid"
    until(lambda: page.evaluate(where) == slice_1, what="finding 1's slice")
    page.keyboard.press("n")
    _paint(page)
    page.keyboard.press("Enter")
    until(lambda: "added-1" in _decisions(page), what="her finding saved")
    # Editing finding 1 starts from the AI's whole mask, not what her marks left of it.
    page.keyboard.press("c")
    page.locator(f"{PANEL} [data-review-editing]").wait_for()
    page.keyboard.press("Enter")
    until(lambda: _decisions(page).get("ai-1", {}).get("kind") == "edited", what="the edit")
    assert _decisions(page)["ai-1"]["dice"] == 1.0, "an edit that changed nothing is the AI's mask"

    # Finding 2 edited with the brush, then accepted after all: the AI's mask is drawn again.
    ai_2 = job.findings.get(index=2).voxel_count
    _grow_with_the_brush(page, 2)
    edited = drawn(2)
    assert edited > ai_2
    page.keyboard.press("Control+z")  # a saved edit is not undone on screen behind the panel's back
    assert drawn(2) == edited
    page.keyboard.press("a")
    until(lambda: _decisions(page).get("ai-2", {}).get("kind") == "accepted", what="the accept of 2")
    until(lambda: drawn(2) == ai_2, what="the AI's mask of finding 2 drawn again")

    # Overriding by keyboard: O, the arrows choose among the reasons, Enter overrides.
    reasons = [r["code"] for r in _panel_state(page)["reading"]["project"]["override_reasons"]]
    page.keyboard.press("j")
    until(lambda: _panel_state(page)["current"] == 3, what="finding 3 chosen")
    page.keyboard.press("o")
    page.keyboard.press("ArrowDown")
    page.keyboard.press("Enter")
    until(
        lambda: _decisions(page).get("ai-3", {}).get("kind") == "overridden", what="the override by keyboard"
    )
    assert _decisions(page)["ai-3"]["reason_code"] == reasons[1]
    assert browser_errors == []
