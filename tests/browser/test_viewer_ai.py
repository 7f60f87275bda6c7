"""The AI's output in the viewer, from real inference jobs of the demonstration model.

The engine orders a job's arrays along the slice normal, the opposite of the series'
instance order here, so these tests also prove that overlays are placed by SOP Instance UID.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from inference.execution import job_execute
from inference.models import InferenceJob, PendingSeries
from inference.services import input_hash
from tests.browser.test_viewer import (
    LABELMAP_AS_LISTS,
    VIEWPORT,
    changed,
    open_viewer,
    pixels,
    pixels_when,
    red_pixels,
    shot,
    slice_label,
    tinted_pixels,
    until,
)
from tests.inference.helpers import demo_model, in_study_order
from viewer.models import Series

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def _queued_job(study: Any, model: Any = None) -> InferenceJob:
    # The test runs its own job: the series' automatic one (a worker of an earlier test may be
    # running) is called off before the model exists.
    PendingSeries.objects.all().delete()
    series = Series.objects.get(series_uid=study.series_uid)
    digest, count = input_hash(series=series)
    # Made directly, not through job_request: no task is sent, the test runs the job itself.
    return InferenceJob.objects.create(
        model_version=model or demo_model(),
        series=series,
        input_hash=digest,
        instance_count=count,
        trigger="manual",
    )


def _run(job: InferenceJob) -> InferenceJob:
    job_execute(job_pk=job.pk, task_id="browser-test")
    job.refresh_from_db()
    assert job.status == "succeeded", job.error
    return job


def _finding_slice(job: InferenceJob, study: Any, index: int) -> int:
    """The series' instance index (0-based) of a finding's centre slice."""
    finding = job.findings.get(index=index)
    sop = job.slice_uids[round(finding.centroid_voxel[0])]
    return [d.SOPInstanceUID for d in study.datasets].index(sop)


def test_the_heatmap_shows_where_the_model_found_the_lesion_and_h_toggles_it(page, browser_errors, ct):
    job = _run(_queued_job(ct))
    open_viewer(page, ct.study_uid)
    page.locator("[data-ai-findings] button").first.wait_for(timeout=30_000)
    page.locator('[data-ai-findings] button[data-finding-index="1"]').click()
    k = _finding_slice(job, ct, 1)
    until(lambda: slice_label(page) == f"Im {k + 1}/16", what="the click to show the finding's slice")
    shown = pixels_when(page, lambda image: red_pixels(image) > 50, what="the heatmap")
    shot(page, "viewer-ai-heatmap.png")
    assert "demonstration model" in page.locator("[data-ai-model]").inner_text()

    # What H takes away is the heatmap; it lies on the finding the model drew its box around
    # (the finding lies on the true lesion: tests/inference/test_jobs.py).
    page.keyboard.press("h")
    hidden = changed(page, shown)
    heat = np.abs(shown - hidden).max(axis=-1) > 40
    heat[:60] = False  # the "Model attention: ..." label above the image goes with it
    ys, xs = np.nonzero(heat)
    canvas = page.locator(VIEWPORT.format(0)).bounding_box()
    box = page.locator('[data-viewport-index="0"] .viewport-boxes rect').first.bounding_box()
    centre_x, centre_y = canvas["x"] + xs.mean(), canvas["y"] + ys.mean()
    assert box["x"] - 10 <= centre_x <= box["x"] + box["width"] + 10
    assert box["y"] - 10 <= centre_y <= box["y"] + box["height"] + 10
    assert heat.sum() > 50  # a visible heatmap went

    page.keyboard.press("h")
    until(lambda: red_pixels(pixels(page)) >= red_pixels(shown) - 20, what="the heatmap to come back")
    assert browser_errors == []


def test_the_jobs_mask_is_the_editable_labelmap_and_m_toggles_it(page, browser_errors, ct):
    job = _run(_queued_job(ct))
    open_viewer(page, ct.study_uid)
    page.locator("[data-ai-findings] button").first.wait_for(timeout=30_000)
    served = page.request.get(f"/api/v1/inference/jobs/{job.pk}/arrays/mask/").body()
    mask = in_study_order(np.frombuffer(served, np.uint8).reshape(16, 128, 128), job.slice_uids, ct)
    labelmap = page.evaluate(LABELMAP_AS_LISTS)
    for k, dataset in enumerate(ct.datasets):
        assert np.array_equal(np.array(labelmap[dataset.SOPInstanceUID]), mask[k].ravel()), f"slice {k}"

    page.locator('[data-ai-findings] button[data-finding-index="1"]').click()
    k = _finding_slice(job, ct, 1)
    until(lambda: slice_label(page) == f"Im {k + 1}/16", what="the finding's slice")
    page.keyboard.press("h")  # the heatmap off: what remains coloured is the mask
    shown = pixels_when(page, lambda image: tinted_pixels(image) > 100, what="the mask")
    shot(page, "viewer-ai-mask.png")
    page.keyboard.press("m")
    assert tinted_pixels(changed(page, shown)) < tinted_pixels(shown) - 20

    # The AI's SEG and SR are listed, but are not images: a click says so and shows nothing else.
    status = page.locator('[data-viewport-index="0"] .viewport-status')
    for modality, why in (("SEG", "a mask, not an image"), ("SR", "a document, not an image")):
        page.locator(".series-thumb", has=page.locator(".series-modality", has_text=modality)).click()
        until(lambda why=why: why in status.inner_text(), what=f"why the {modality} is not shown")
        assert page.evaluate("() => window.overread.viewer.state().seriesUid") == ct.series_uid
    assert browser_errors == []


def test_a_queued_job_shows_progress_and_its_overlay_appears_when_it_finishes(page, browser_errors, ct):
    job = _queued_job(ct)
    open_viewer(page, ct.study_uid)
    status = page.locator("[data-ai-status]")
    until(lambda: "queued" in status.inner_text(), what="the queued job's status")
    _run(job)  # the viewer polls and picks the result up without a reload
    page.locator("[data-ai-findings] button").first.wait_for(timeout=30_000)
    assert f"{job.findings.count()} finding" in status.inner_text()
    shot(page, "viewer-ai-overlay.png")
    assert browser_errors == []
