"""A radiologist reads a study in the viewer: what they see, checked by pixels.

The study is a synthetic CT (fixtures/synthetic.py) ingested like any import; the
viewer fetches it over DICOMweb and renders it with Cornerstone3D in the system
Chromium (software WebGL). Tests wait on the viewer's own ready flag, never on
sleeps, and save screenshots under var/test/screenshots/ (look at them).
"""

from __future__ import annotations

import io
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image
from pydicom.data import get_testdata_file
from scipy import ndimage

from fixtures.synthetic import SyntheticStudy, make_ct_study
from tests.browser.conftest import ingest_study
from tests.factories import PASSWORD
from viewer.ingest.service import ingest_file

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

SCREENSHOTS = Path(__file__).resolve().parents[2] / "var" / "test" / "screenshots"
READY = "body[data-viewer-ready='true']"
VIEWPORT = '[data-viewport-index="{}"] .viewport-canvas'
J2K_LOSSLESS = "1.2.840.10008.1.2.4.90"


# --- Helpers ----------------------------------------------------------------------------
def sign_in(page: Any, username: str = "rita") -> None:
    page.goto("/login/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url("**/")


def open_viewer(page: Any, study_uid: str) -> dict[str, Any]:
    """Signs Rita in, opens the study, waits for the viewer's ready flag; returns its timings."""
    sign_in(page)
    page.goto(f"/studies/{study_uid}/")
    page.locator(READY).wait_for(state="attached", timeout=60_000)
    timings: dict[str, Any] = page.evaluate("() => window.overread.viewer.timings")
    return timings


def viewer_state(page: Any) -> dict[str, Any]:
    state: dict[str, Any] = page.evaluate("() => window.overread.viewer.state()")
    return state


def pixels(page: Any, index: int = 0) -> np.ndarray:
    """The viewport's pixels as a person sees them (RGB, overlays included)."""
    png = page.locator(VIEWPORT.format(index)).screenshot()
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(np.int16)


def until(condition: Callable[[], Any], *, timeout: float = 15.0, what: str = "the condition") -> Any:
    """Polls `condition` (renders are asynchronous) until it is truthy; returns its value."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value is not None and (isinstance(value, np.ndarray) or value):
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def pixels_when(page: Any, test: Callable[[np.ndarray], bool], *, what: str, index: int = 0) -> np.ndarray:
    """The viewport's pixels once `test` holds for them."""
    return until(lambda: image if test(image := pixels(page, index)) else None, what=what)


def changed(page: Any, before: np.ndarray, index: int = 0) -> np.ndarray:
    """The viewport's pixels once they differ from `before`."""
    return until(lambda: _differs(pixels(page, index), before), what="the viewport to change")


def _differs(after: np.ndarray, before: np.ndarray) -> np.ndarray | None:
    if after.shape != before.shape:
        return after
    moved = (np.abs(after - before).max(axis=-1) > 24).sum()
    return after if moved > 50 else None


def shot(page: Any, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / name
    page.screenshot(path=path)
    return path


def slice_label(page: Any, index: int = 0) -> str:
    text: str = page.locator(f'[data-viewport-index="{index}"] [data-corner="bl"]').inner_text()
    return (text.splitlines() or [""])[0]


def centre_of(page: Any, index: int = 0) -> tuple[float, float]:
    box = page.locator(VIEWPORT.format(index)).bounding_box()
    return box["x"] + box["width"] / 2, box["y"] + box["height"] / 2


def red_pixels(image: np.ndarray) -> int:
    """Pixels the heatmap's top colours paint (grey images and the yellow markers have none)."""
    r, g, b = image[..., 0], image[..., 1], image[..., 2]
    return int(((r > 170) & (g < 110) & (b < 110)).sum())


def tinted_pixels(image: np.ndarray) -> int:
    """Pixels that are not grey (a coloured overlay over the CT)."""
    return int(((image.max(axis=-1) - image.min(axis=-1)) > 40).sum())


PREFETCHED = """() => new Set(performance.getEntriesByType("resource")
  .map((entry) => entry.name).filter((name) => name.includes("/frames/"))).size"""
METADATA_REQUESTS = """() => performance.getEntriesByType("resource")
  .filter((entry) => entry.name.endsWith("/metadata")).length"""


# --- Rendering ------------------------------------------------------------------------------
def test_the_first_image_renders_with_the_body_visible(page, browser_errors, ct):
    timings = open_viewer(page, ct.study_uid)
    image = pixels(page)
    shot(page, "viewer-first-image.png")
    height, width, _ = image.shape
    centre = image[height // 3 : 2 * height // 3, width // 3 : 2 * width // 3].mean()
    corner = image[: height // 10, width // 3 : 2 * width // 3].mean()
    assert centre > 60, "the body (soft tissue at W400/L40) should be mid-grey or brighter"
    assert corner < 15, "the air around the body should be black"
    assert slice_label(page) == "Im 1/16"
    assert page.locator('[data-marker="left"]').inner_text() == "R"
    assert page.locator('[data-marker="top"]').inner_text() == "A"
    assert "SYNTHETIC, CASE0011" in page.locator('[data-corner="tl"]').inner_text()
    assert timings["firstImageMs"] < 30_000
    print(f"\nviewer timings (ms since navigation): {timings}")
    # The first image came alone; the rest of the stack is prefetched without scrolling.
    until(lambda: page.evaluate(PREFETCHED) == 16, what="the other slices to be prefetched")
    assert browser_errors == []


def test_a_jpeg_2000_image_is_decoded_in_the_worker_and_rendered(page, browser_errors, rita):
    outcome = ingest_file(
        source=Path(get_testdata_file("MR_small_jp2klossless.dcm")), name="mr.dcm", origin="import"
    )
    assert outcome.status == "stored", outcome.reason
    frames: list[Any] = []
    page.on("response", lambda response: "/frames/" in response.url and frames.append(response))
    open_viewer(page, outcome.study_uid)
    image = pixels(page)
    shot(page, "viewer-jpeg2000.png")
    # The frame travelled compressed (the server did not transcode): the worker decoded it.
    assert frames
    assert all(f"transfer-syntax={J2K_LOSSLESS}".encode() in r.body() for r in frames)
    assert image.mean() > 20, "the MR should not be black"
    assert image.std() > 20, "the MR should show structure, not a flat field"
    assert browser_errors == []


# --- Scrolling ------------------------------------------------------------------------------
def test_the_wheel_and_the_arrow_keys_change_the_slice(page, browser_errors, ct):
    open_viewer(page, ct.study_uid)
    first = pixels(page)
    page.mouse.move(*centre_of(page))
    page.mouse.wheel(0, 120)
    until(lambda: slice_label(page) == "Im 2/16", what="the wheel to show image 2")
    second = changed(page, first)
    page.keyboard.press("ArrowDown")
    page.keyboard.press("ArrowDown")
    until(lambda: slice_label(page) == "Im 4/16", what="two arrow presses to show image 4")
    fourth = changed(page, second)
    page.keyboard.press("ArrowUp")
    until(lambda: slice_label(page) == "Im 3/16", what="arrow up to show image 3")
    page.keyboard.press("End")
    until(lambda: slice_label(page) == "Im 16/16", what="End to show the last image")
    assert np.abs(fourth - first).mean() > 0.5
    assert viewer_state(page)["sopInstanceUid"] == ct.datasets[15].SOPInstanceUID
    assert page.evaluate(METADATA_REQUESTS) == 1, "the series' metadata is fetched once"
    assert browser_errors == []


def test_the_slice_slider_and_cine_move_through_the_stack(page, browser_errors, ct):
    open_viewer(page, ct.study_uid)
    page.locator('[data-viewport-index="0"] .slice-slider').fill("7")
    until(lambda: slice_label(page) == "Im 8/16", what="the slider to show image 8")
    page.keyboard.press("Space")
    until(lambda: slice_label(page) not in {"Im 8/16"}, what="cine to move on")
    page.keyboard.press("Space")
    page.wait_for_timeout(250)  # a frame already requested may still land
    stopped = slice_label(page)
    page.wait_for_timeout(400)
    assert slice_label(page) == stopped, "cine should have stopped"
    assert browser_errors == []


# --- Window/level -----------------------------------------------------------------------------
def test_a_window_preset_and_a_drag_change_the_pixels(page, browser_errors, ct):
    open_viewer(page, ct.study_uid)
    soft_tissue = pixels(page)
    page.keyboard.press("1")  # lung window: W1500 L-600
    lung = changed(page, soft_tissue)
    assert "W 1500 L -600" in page.locator('[data-corner="bl"]').inner_text()
    height, width, _ = lung.shape
    body = (slice(height // 3, 2 * height // 3), slice(width // 3, 2 * width // 3))
    assert lung[body].mean() > soft_tissue[body].mean() + 20, "the lung window shows soft tissue near white"
    shot(page, "viewer-lung-window.png")

    x, y = centre_of(page)
    page.mouse.move(x, y)
    page.mouse.down()
    page.mouse.move(x + 120, y + 60, steps=8)
    page.mouse.up()
    dragged = changed(page, lung)
    assert viewer_state(page)["voiRange"] != {"lower": -1350.0, "upper": 149.0}
    page.keyboard.press("0")
    back = changed(page, dragged)
    assert np.abs(back - soft_tissue).mean() < 1.0, "0 restores the series' own window"
    page.keyboard.press("i")
    inverted = changed(page, back)
    assert np.abs((255 - back[body]) - inverted[body]).mean() < 3
    assert browser_errors == []


# --- Measurements ------------------------------------------------------------------------------
def test_length_and_ellipse_roi_measurements(page, browser_errors, ct):
    open_viewer(page, ct.study_uid)
    x, y = centre_of(page)
    page.keyboard.press("l")
    page.mouse.move(x - 100, y - 100)
    page.mouse.down()
    page.mouse.move(x + 100, y - 100, steps=6)
    page.mouse.up()
    page.keyboard.press("e")
    page.mouse.move(x - 40, y + 60)
    page.mouse.down()
    page.mouse.move(x + 20, y + 90, steps=6)
    page.mouse.up()
    texts = page.locator('[data-viewport-index="0"] svg text')
    read = lambda: " ".join(texts.evaluate_all("nodes => nodes.map((n) => n.textContent)"))  # noqa: E731
    until(lambda: "Mean" in read(), what="the ROI statistics")
    stats = read()
    shot(page, "viewer-ellipse-roi.png")
    assert "Std Dev" in stats, stats
    assert "HU" in stats, stats
    length = next(part for part in stats.split() if part.replace(".", "").isdigit())
    assert float(length) > 10, stats
    assert " mm" in stats, stats
    assert browser_errors == [], "the text boxes must obey the CSP (no inline style attributes)"


# --- Editing the mask ------------------------------------------------------------------------
LABELMAP_AS_LISTS = """() => Object.fromEntries(
  Object.entries(window.overread.viewer.getLabelmap()).map(([sop, values]) => [sop, Array.from(values)]))"""
LABELMAP_COUNT = """() => {
  const labelmap = window.overread.viewer.getLabelmap();
  return Object.values(labelmap).reduce((n, a) => n + a.reduce((s, v) => s + (v > 0 ? 1 : 0), 0), 0);
}"""


def test_a_brush_stroke_changes_the_labelmap_and_undo_takes_it_back(page, browser_errors, ct):
    open_viewer(page, ct.study_uid)
    before = pixels(page)
    page.keyboard.press("b")
    x, y = centre_of(page)
    page.mouse.move(x - 60, y)
    page.mouse.down()
    page.mouse.move(x + 60, y, steps=12)
    page.mouse.up()
    painted = until(lambda: page.evaluate(LABELMAP_COUNT), what="the brush to paint")
    after = changed(page, before)
    shot(page, "viewer-brush.png")
    assert tinted_pixels(after) > tinted_pixels(before) + 200, "the painted mask is visible"
    labelmap = page.evaluate(
        "() => Object.fromEntries(Object.entries(window.overread.viewer.getLabelmap())"
        ".map(([sop, a]) => [sop, a.reduce((s, v) => s + (v > 0 ? 1 : 0), 0)]))"
    )
    assert labelmap[ct.datasets[0].SOPInstanceUID] == painted, "only the shown slice is painted"
    assert len(labelmap) == 16

    page.keyboard.press("Control+z")
    until(lambda: page.evaluate(LABELMAP_COUNT) == 0, what="undo to clear the stroke")
    page.keyboard.press("Control+y")
    until(lambda: page.evaluate(LABELMAP_COUNT) == painted, what="redo to restore it")
    assert browser_errors == []


def test_a_click_made_just_before_the_brush_is_chosen_paints_nothing(page, browser_errors, ct):
    """Cornerstone hands a single click to the tools up to 400 ms late (double-click detection);
    a click with the window tool followed at once by B must not become a brush dab."""
    open_viewer(page, ct.study_uid)
    x, y = centre_of(page)
    page.mouse.click(x - 60, y - 60)  # the window tool: a click changes nothing
    page.keyboard.press("b")
    page.mouse.move(x - 30, y + 40)
    page.mouse.down()
    page.mouse.move(x + 30, y + 40, steps=8)
    page.mouse.up()
    until(lambda: page.evaluate(LABELMAP_COUNT), what="the brush to paint")
    page.wait_for_timeout(600)  # past Cornerstone's double-click window
    labelmap = page.evaluate(LABELMAP_AS_LISTS)
    first = np.array(labelmap[ct.datasets[0].SOPInstanceUID], dtype=np.uint8).reshape(128, 128)
    _, parts = ndimage.label(first)
    assert parts == 1, "only the stroke is painted, not the click before the brush"
    assert browser_errors == []


# --- Information -----------------------------------------------------------------------------
def test_the_tag_inspector_shows_the_current_images_tags(page, browser_errors, ct):
    open_viewer(page, ct.study_uid)
    page.keyboard.press("ArrowDown")
    until(lambda: slice_label(page) == "Im 2/16", what="image 2")
    page.keyboard.press("t")
    dialog = page.locator("[data-tags-dialog]")
    dialog.wait_for(state="visible")
    patient_id = dialog.locator('tr[data-tag="00100020"]')
    assert patient_id.locator("td").nth(1).inner_text() == "PatientID"
    assert patient_id.locator("td").nth(3).inner_text() == ct.patient_id
    sop = dialog.locator('tr[data-tag="00080018"] td').nth(3).inner_text()
    assert sop == ct.datasets[1].SOPInstanceUID
    dialog.locator("[data-tags-filter]").fill("0028,1050")
    assert dialog.locator("tbody tr:visible").count() == 1
    shot(page, "viewer-tags.png")
    page.keyboard.press("Escape")
    dialog.wait_for(state="hidden")
    assert browser_errors == []


def test_question_mark_lists_the_shortcuts(page, browser_errors, ct):
    open_viewer(page, ct.study_uid)
    page.keyboard.press("?")
    dialog = page.locator("[data-help-dialog]")
    dialog.wait_for(state="visible")
    text = dialog.inner_text()
    for what in ("Lung window", "Brush", "Undo", "Show or hide the attention map", "DICOM tags"):
        assert what in text
    shot(page, "viewer-shortcuts.png")
    page.keyboard.press("?")
    dialog.wait_for(state="hidden")
    assert browser_errors == []


# --- Layout and series ------------------------------------------------------------------------
def test_layouts_and_dragging_a_series_into_a_viewport(page, browser_errors, ct, tmp_path):
    series = make_ct_study(
        seed=12,
        slices=8,
        study_uid=ct.study_uid,
        patient_id=ct.patient_id,
        patient_name="SYNTHETIC^CASE0011",
        lesions=0,
    )
    second = ingest_study(tmp_path, series)
    open_viewer(page, ct.study_uid)
    page.locator('button[data-layout="2x2"]').click()
    until(lambda: page.locator(".viewport").count() == 4, what="four viewports")
    until(lambda: pixels(page, 1).mean() > 20, what="the second series in viewport 2")
    assert pixels(page, 2).mean() < 5, "no third series: viewport 3 waits for one"
    thumb = page.locator(f'[data-series-uid="{second.series_uid}"]')
    thumb.drag_to(page.locator('[data-viewport-index="2"]'))
    until(lambda: pixels(page, 2).mean() > 20, what="the dropped series in viewport 3")
    assert slice_label(page, 2) == "Im 1/8"
    shot(page, "viewer-2x2.png")
    page.locator(f'[data-series-uid="{ct.series_uid}"]').click()  # into the active viewport, 3
    until(lambda: slice_label(page, 2) == "Im 1/16", what="the clicked series in viewport 3")
    page.keyboard.press("g")  # back to 1x1
    until(lambda: page.locator(".viewport").count() == 1, what="one viewport")
    assert browser_errors == []


# --- AI overlays (the data-ai-url contract, served here by the test) ---------------------------
def findings_of(study: SyntheticStudy) -> list[dict[str, Any]]:
    findings = []
    for index in range(1, int(study.mask.max()) + 1):
        z, y, x = np.nonzero(study.mask == index)
        findings.append(
            {
                "index": index,
                "label": "lesion",
                "max_probability": 0.9 - 0.1 * index,
                "bbox": [
                    [int(z.min()), int(z.max()) + 1],
                    [int(y.min()), int(y.max()) + 1],
                    [int(x.min()), int(x.max()) + 1],
                ],
                "centroid_voxel": [float(z.mean()), float(y.mean()), float(x.mean())],
                "volume_mm3": float(len(z) * np.prod(study.spacing)),
            }
        )
    return findings


def attention(mask: np.ndarray) -> np.ndarray:
    """A smooth 0..1 map peaking on the lesions, as a model's attention would look."""
    heat = (mask > 0).astype(np.float32)
    for _ in range(6):  # a few box blurs within each slice
        heat = sum(np.roll(heat, (dy, dx), axis=(1, 2)) for dy in (-1, 0, 1) for dx in (-1, 0, 1)) / 9
    peak: np.ndarray = heat / max(float(heat.max()), 1e-6)
    return peak


def lesion_slice(study: SyntheticStudy, index: int = 1) -> int:
    return round(float(np.nonzero(study.mask == index)[0].mean()))


def test_the_handle_renders_an_ai_result_fed_to_it_directly(page, browser_errors, ct):
    open_viewer(page, ct.study_uid)
    result = {
        "status": "succeeded",
        "job": None,
        "model": {"name": "demo-unet", "version": "0.1", "demonstration": True},
        "series_uid": ct.series_uid,
        "slices": [d.SOPInstanceUID for d in ct.datasets],
        "rows": 128,
        "columns": 128,
        "findings": findings_of(ct),
    }
    heat = (attention(ct.mask) * 255).astype(np.uint8)
    page.evaluate(
        """([result, heatmap, mask]) => window.overread.viewer.showAiResult(result,
             {heatmap: new Uint8Array(heatmap), mask: new Uint8Array(mask)})""",
        [result, heat.ravel().tolist(), ct.mask.astype(np.uint8).ravel().tolist()],
    )
    assert page.evaluate(LABELMAP_COUNT) == int((ct.mask > 0).sum())
    page.locator('[data-ai-findings] button[data-finding-index="1"]').click()
    k = lesion_slice(ct, 1)
    until(lambda: slice_label(page) == f"Im {k + 1}/16", what="the finding's slice")
    pixels_when(page, lambda image: red_pixels(image) > 200, what="the heatmap")
    assert browser_errors == []
