// AI results over the images: the model's attention (heatmap) as a colour-mapped fusion
// layer, its mask as the editable labelmap, a box per finding, and the findings list.
//
// Contract (docs/viewer.md): GET data-ai-url gives {status, progress, stage, job, model,
// series_uid, slices, rows, columns, heatmap_url, mask_url, findings}. The arrays are
// uint8, slices x rows x columns in C order; slice k belongs to the instance slices[k]
// (matched by SOP Instance UID, never by position in the stack). While the job is queued
// or running the url is polled every 2 s. `show(result, arrays)` is all the rendering
// needs, so tests can feed it directly.
import { Enums, metaData } from "@cornerstonejs/core";
import { segmentation } from "@cornerstonejs/tools";
import vtkColorTransferFunction from "@kitware/vtk.js/Rendering/Core/ColorTransferFunction";
import vtkPiecewiseFunction from "@kitware/vtk.js/Common/DataModel/PiecewiseFunction";
import vtkDataArray from "@kitware/vtk.js/Common/Core/DataArray";
import vtkImageData from "@kitware/vtk.js/Common/DataModel/ImageData";

const POLL_MS = 2000;
const RUNNING = new Set(["queued", "running"]);
const HEATMAP_ACTOR = "ai-heatmap";
const SVG = "http://www.w3.org/2000/svg";
// Probability -> colour (blue, cyan, green, yellow, red); the colour bar draws the same.
const COLORMAP = [
  [0.0, [0, 0, 1]],
  [0.35, [0, 1, 1]],
  [0.5, [0, 1, 0]],
  [0.65, [1, 1, 0]],
  [1.0, [1, 0, 0]],
];
// Below this probability the map is fully transparent, then opacity ramps up to the slider's.
const TRANSPARENT_BELOW = 0.15;
const REJECTED_COLOUR = "#8a8f98";

const DECISION_TITLES = { accepted: "Accepted", edited: "Edited", overridden: "Overridden" };

export class AiOverlay {
  constructor(viewer, masks, panel) {
    this.viewer = viewer;
    this.masks = masks;
    this.panel = panel;
    this.url = viewer.root.dataset.aiUrl || "";
    this.result = null;
    this.arrays = null;
    this.sliceBySop = new Map();
    this.heatmapVisible = true;
    this.boxesVisible = true;
    this.rejected = new Set(); // indices of findings the reader overrode: drawn muted
    this.decided = new Map(); // index -> the reader's decision on it ("accepted", "edited", ...)
    this.opacity = 0.6;
    this.layers = new Map(); // slot id -> {actor, imageData, scalars}
    this.timer = null;
    this.$ = (name) => panel?.querySelector(`[data-ai-${name}]`);
    this._wirePanel();
    viewer.addEventListener("seriesshown", ({ detail }) => this._sync(detail.slot));
    viewer.addEventListener("imagechanged", ({ detail }) => this._updateSlice(detail.slot));
    viewer.addEventListener("slotdisabled", ({ detail }) => this.layers.delete(detail.slot.id));
    viewer.addEventListener("slotenabled", ({ detail }) => this._boxesLayer(detail.slot));
    document.addEventListener("click", (event) => this._findingClicked(event));
    // The review partials can ask for a fresh look (e.g. after starting a job):
    // an htmx response header `HX-Trigger: overread:ai-refresh` does it.
    document.addEventListener("overread:ai-refresh", () => this.poll());
  }

  /** Fetches the AI state, shows it, and keeps polling while the job is queued or running. */
  async poll() {
    if (!this.url) return;
    clearTimeout(this.timer);
    let result;
    try {
      const response = await fetch(this.url, { headers: { Accept: "application/json" }, credentials: "same-origin" });
      if (!response.ok) throw new Error(`HTTP ${response.status}`);
      result = await response.json();
    } catch (error) {
      this._status(`The AI results could not be read (${error.message}).`, "failed");
      return;
    }
    if (RUNNING.has(result.status)) {
      this._showProgress(result);
      this.timer = setTimeout(() => this.poll(), POLL_MS);
      return;
    }
    if (result.status === "succeeded") {
      if (this.result && this.result.job === result.job && this.result.job != null) return;
      try {
        await this.show(result, await fetchArrays(result));
      } catch (error) {
        this._status(`The AI overlay could not be loaded (${error.message}).`, "failed");
      }
      return;
    }
    this._showFinal(result);
  }

  /** Stops following the study's newest result (the reading panel shows the job its reading revealed). */
  stopPolling() {
    this.url = "";
    clearTimeout(this.timer);
  }

  /**
   * Shows a succeeded result: `arrays` = {heatmap, mask} (Uint8Array, slices*rows*columns;
   * either may be missing). Brings the result's series into view if no viewport shows it.
   */
  async show(result, arrays = {}) {
    for (const slot of this.viewer.shownSlots()) {
      if (this.layers.has(slot.id)) this.viewer.viewport(slot).removeActors([HEATMAP_ACTOR]);
    }
    this.layers.clear();
    this.result = result;
    this.arrays = arrays;
    this.sliceBySop = new Map(result.slices.map((sop, k) => [sop, k]));
    this.panel.hidden = false;
    this.$("progress").hidden = true;
    this.$("controls").hidden = false;
    const count = result.findings.length;
    this._status(count ? `${count} finding${count === 1 ? "" : "s"}` : "No findings.", "succeeded");
    this._showModel(result.model);
    this._renderFindings(result.findings);
    this._drawColorbar();
    let slot = this.viewer.shownSlots().find((s) => s.seriesUid === result.series_uid);
    if (!slot && this.viewer.thumbs.some((t) => t.dataset.seriesUid === result.series_uid)) {
      await this.viewer.showSeries(result.series_uid, 0);
      slot = this.viewer.slots[0];
    }
    for (const shown of this.viewer.shownSlots()) this._sync(shown);
    this.viewer.dispatchEvent(new CustomEvent("aishown", { detail: { result } }));
  }

  toggleHeatmap(visible = !this.heatmapVisible) {
    this.heatmapVisible = visible;
    const toggle = this.$("heatmap-toggle");
    if (toggle) toggle.checked = visible;
    for (const slot of this.viewer.shownSlots()) this._updateSlice(slot);
    return visible;
  }

  toggleMask(visible = !this.masks.visible) {
    this.masks.setVisible(visible);
    const toggle = this.$("mask-toggle");
    if (toggle) toggle.checked = visible;
    return visible;
  }

  setOpacity(opacity) {
    this.opacity = Math.max(0, Math.min(1, opacity));
    for (const layer of this.layers.values()) layer.actor.getProperty().setPiecewiseFunction(0, opacityRamp(this.opacity));
    for (const slot of this.viewer.shownSlots()) this.viewer.viewport(slot)?.render();
  }

  /** Shows finding `index` (1-based): its slice (or `slice`) in a viewport, centred on it. */
  async jumpTo(index, slice) {
    const finding = this.result?.findings.find((f) => f.index === Number(index));
    if (!finding) return;
    const k = Number.isInteger(slice) ? slice : Math.round(finding.centroid_voxel[0]);
    const sop = this.result.slices[k];
    let slot = [this.viewer.activeSlot, ...this.viewer.shownSlots()].find(
      (s) => s?.stackReady && s.seriesUid === this.result.series_uid,
    );
    if (!slot) {
      await this.viewer.showSeries(this.result.series_uid);
      slot = this.viewer.activeSlot;
    }
    const imageIndex = slot.series.indexOfSop(sop);
    if (imageIndex < 0) return;
    this.viewer.setActive(slot.index);
    await this.viewer.scrollTo(imageIndex, slot);
    const [, y, x] = finding.centroid_voxel;
    const world = voxelToWorld(slot.series.imageIds[imageIndex], x, y);
    if (world) centreOn(this.viewer.viewport(slot), world);
    this.masks.setActiveSegment(finding.index);
    this.panel.querySelectorAll("[data-finding-index]").forEach((b) => {
      b.setAttribute("aria-current", String(Number(b.dataset.findingIndex) === finding.index));
    });
  }

  // --- Per viewport --------------------------------------------------------------------
  _sync(slot) {
    const viewport = this.viewer.viewport(slot);
    if (!viewport) return;
    const ours = this.result && slot.seriesUid === this.result.series_uid;
    if (!ours) {
      if (this.layers.has(slot.id)) {
        viewport.removeActors([HEATMAP_ACTOR]);
        this.layers.delete(slot.id);
      }
      this._drawBoxes(slot);
      return;
    }
    if (this.arrays.mask) {
      const segments = this.result.findings.map((f) => ({ index: f.index, label: f.label }));
      const { slices, rows, columns } = this.result;
      if (this.maskLoadedFor !== this.result) {
        this.masks.setMask(slot, { slices, rows, columns, mask: this.arrays.mask, segments });
        this.maskLoadedFor = this.result;
      } else {
        this.masks.ensure(slot);
      }
    }
    if (this.arrays.heatmap && !this.layers.has(slot.id)) this._addHeatmapLayer(slot, viewport);
    this._updateSlice(slot);
  }

  _addHeatmapLayer(slot, viewport) {
    const { rows, columns } = this.result;
    const imageData = vtkImageData.newInstance();
    const shown = viewport.getImageData();
    imageData.setDimensions(columns, rows, 1);
    imageData.setSpacing(shown.spacing[0], shown.spacing[1], 1);
    imageData.setDirection(shown.direction);
    imageData.setOrigin(shown.origin);
    const scalars = vtkDataArray.newInstance({ numberOfComponents: 1, values: new Float32Array(rows * columns) });
    imageData.getPointData().setScalars(scalars);
    const actor = viewport.createActorMapper(imageData);
    const property = actor.getProperty();
    property.setRGBTransferFunction(0, colorTransfer());
    property.setUseLookupTableScalarRange(true);
    property.setPiecewiseFunction(0, opacityRamp(this.opacity));
    property.setInterpolationTypeToLinear();
    actor.setForceTranslucent(true);
    viewport.addActor({ uid: HEATMAP_ACTOR, actor });
    this.layers.set(slot.id, { actor, imageData, scalars });
  }

  _updateSlice(slot) {
    const viewport = this.viewer.viewport(slot);
    if (!viewport || !slot.series) return;
    const layer = this.layers.get(slot.id);
    if (layer) {
      const sop = slot.series.sopByImageId.get(viewport.getCurrentImageId());
      const k = this.sliceBySop.get(sop);
      const { rows, columns } = this.result;
      const shown = viewport.getImageData();
      const fits = k !== undefined && shown.dimensions[0] === columns && shown.dimensions[1] === rows;
      if (fits) {
        const size = rows * columns;
        const values = layer.scalars.getData();
        const slice = this.arrays.heatmap.subarray(k * size, (k + 1) * size);
        for (let i = 0; i < size; i += 1) values[i] = slice[i] / 255;
        layer.scalars.modified();
        layer.imageData.setOrigin(shown.origin);
        layer.imageData.modified();
      }
      layer.actor.setVisibility(Boolean(fits && this.heatmapVisible));
      viewport.render();
    }
    this._drawBoxes(slot);
    this._label(slot);
  }

  _boxesLayer(slot) {
    if (!slot.boxes) {
      slot.boxes = document.createElementNS(SVG, "svg");
      slot.boxes.setAttribute("class", "viewport-boxes");
      slot.overlay.prepend(slot.boxes);
      slot.aiLabel = document.createElement("div");
      slot.aiLabel.className = "ai-label";
      slot.overlay.append(slot.aiLabel);
      slot.element.addEventListener(Enums.Events.IMAGE_RENDERED, () => this._drawBoxes(slot));
    }
    return slot.boxes;
  }

  _drawBoxes(slot) {
    const svg = this._boxesLayer(slot);
    svg.replaceChildren();
    const viewport = this.viewer.viewport(slot);
    if (!this.boxesVisible || !this.result || !viewport || slot.seriesUid !== this.result.series_uid) return;
    const imageId = viewport.getCurrentImageId();
    const k = this.sliceBySop.get(slot.series?.sopByImageId.get(imageId));
    if (k === undefined) return;
    for (const finding of this.result.findings) {
      const [[z0, z1], [y0, y1], [x0, x1]] = finding.bbox;
      if (k < z0 || k >= z1) continue;
      // Voxel centres are at integer indices: the box's edges lie half a voxel outside them.
      const corners = [
        [x0 - 0.5, y0 - 0.5],
        [x1 - 0.5, y1 - 0.5],
      ].map(([x, y]) => voxelToWorld(imageId, x, y));
      if (corners.some((c) => !c)) continue;
      const [a, b] = corners.map((c) => viewport.worldToCanvas(c));
      const rejected = this.rejected.has(finding.index);
      const colour = rejected ? REJECTED_COLOUR : this._colour(slot, finding.index);
      const rect = document.createElementNS(SVG, "rect");
      rect.setAttribute("x", String(Math.min(a[0], b[0])));
      rect.setAttribute("y", String(Math.min(a[1], b[1])));
      rect.setAttribute("width", String(Math.abs(b[0] - a[0])));
      rect.setAttribute("height", String(Math.abs(b[1] - a[1])));
      rect.setAttribute("fill", "none");
      rect.setAttribute("stroke", colour);
      rect.setAttribute("stroke-width", "1.5");
      rect.setAttribute("stroke-dasharray", rejected ? "2 4" : "4 3");
      rect.dataset.findingIndex = String(finding.index);
      if (rejected) rect.dataset.rejected = "true";
      const text = document.createElementNS(SVG, "text");
      text.setAttribute("x", String(Math.min(a[0], b[0])));
      text.setAttribute("y", String(Math.min(a[1], b[1]) - 4));
      text.setAttribute("fill", colour);
      text.setAttribute("class", "box-label");
      text.textContent = rejected
        ? `${finding.index} overridden`
        : `${finding.index} ${finding.label} ${Math.round(finding.max_probability * 100)}%`;
      svg.append(rect, text);
    }
  }

  /** AI finding `index`'s mask as the job wrote it: {sopInstanceUid: Uint8Array of 0/1}. */
  findingSlices(index) {
    const slices = {};
    const mask = this.arrays?.mask;
    if (!mask) return slices;
    const size = this.result.rows * this.result.columns;
    this.result.slices.forEach((sop, k) => {
      const plane = mask.subarray(k * size, (k + 1) * size);
      if (!plane.includes(index)) return;
      slices[sop] = plane.map((value) => (value === index ? 1 : 0));
    });
    return slices;
  }

  /** Marks the findings the reader overrode: their boxes are drawn muted, their masks hidden. */
  setRejected(indices) {
    this.rejected = new Set(indices);
    for (const slot of this.viewer.shownSlots()) this._drawBoxes(slot);
    this._markDecisions();
  }

  /** The reader's decision on each finding (index -> kind), shown in the findings list. */
  setDecided(decided) {
    this.decided = new Map(decided);
    this._markDecisions();
  }

  /** The findings list says what the reader decided: overridden ones struck through, as their
   * boxes are muted; accepted and edited ones marked. */
  _markDecisions() {
    this.$("findings").querySelectorAll("[data-finding-index]").forEach((button) => {
      const index = Number(button.dataset.findingIndex);
      const rejected = this.rejected.has(index);
      const item = button.closest("li");
      item.classList.toggle("is-overridden", rejected);
      item.dataset.decision = rejected ? "overridden" : this.decided.get(index) || "";
      button.title = item.dataset.decision ? `${DECISION_TITLES[item.dataset.decision] || item.dataset.decision} by the reader` : "";
    });
  }

  _label(slot) {
    if (!slot.aiLabel) return;
    const ours = this.result && slot.seriesUid === this.result.series_uid && this.heatmapVisible && this.arrays?.heatmap;
    slot.aiLabel.textContent = ours ? modelLabel(this.result.model) : "";
  }

  _colour(slot, index) {
    const labelmap = this.masks.labelmaps.get(slot.seriesUid);
    const colour = labelmap && segmentation.config.color.getSegmentIndexColor(slot.id, labelmap.segmentationId, index);
    return colour ? `rgb(${colour[0]}, ${colour[1]}, ${colour[2]})` : "#f2c14e";
  }

  // --- Panel -------------------------------------------------------------------------
  _wirePanel() {
    if (!this.panel) return;
    this.$("heatmap-toggle")?.addEventListener("change", (e) => this.toggleHeatmap(e.target.checked));
    this.$("mask-toggle")?.addEventListener("change", (e) => this.toggleMask(e.target.checked));
    this.$("mask-outline")?.addEventListener("change", (e) => this.masks.setOutlineOnly(e.target.checked));
    this.$("boxes-toggle")?.addEventListener("change", (e) => {
      this.boxesVisible = e.target.checked;
      for (const slot of this.viewer.shownSlots()) this._drawBoxes(slot);
    });
    this.$("opacity")?.addEventListener("input", (e) => this.setOpacity(Number(e.target.value) / 100));
    this.viewer.addEventListener("maskvisibility", ({ detail }) => {
      const toggle = this.$("mask-toggle");
      if (toggle) toggle.checked = detail.visible;
    });
  }

  _findingClicked(event) {
    const target = event.target instanceof Element ? event.target.closest("[data-finding-index]") : null;
    if (!target || target.closest(".viewport-boxes")) return;
    event.preventDefault();
    const slice = target.dataset.slice !== undefined && target.dataset.slice !== "" ? Number(target.dataset.slice) : undefined;
    this.jumpTo(Number(target.dataset.findingIndex), slice);
  }

  _status(text, state) {
    if (!this.panel) return;
    this.panel.hidden = false;
    const status = this.$("status");
    status.textContent = text;
    status.className = `ai-status ${state || ""}`.trim();
    this.panel.dataset.aiState = state || "";
  }

  _showProgress(result) {
    const progress = this.$("progress");
    progress.hidden = false;
    progress.value = Number(result.progress) || 0;
    const stage = result.stage ? `: ${result.stage}` : "";
    this._status(`AI analysis ${result.status}${stage} (${progress.value}%)`, result.status);
  }

  _showFinal(result) {
    this.$("progress").hidden = true;
    const words = {
      none: "No AI analysis for this study yet.",
      failed: `The AI analysis failed${result.error ? `: ${result.error}` : result.stage ? ` (${result.stage})` : "."}`,
      cancelled: "The AI analysis was cancelled.",
    };
    this._status(words[result.status] || `AI status: ${result.status}`, result.status);
  }

  _showModel(model) {
    const element = this.$("model");
    element.textContent = modelLabel(model, { withDemonstration: false });
    if (model?.demonstration) {
      const badge = document.createElement("span");
      badge.className = "demo";
      badge.textContent = "demonstration model";
      element.append(badge);
    }
  }

  _renderFindings(findings) {
    const list = this.$("findings");
    list.replaceChildren(
      ...findings.map((finding) => {
        const item = document.createElement("li");
        const button = document.createElement("button");
        button.type = "button";
        button.dataset.findingIndex = String(finding.index);
        button.dataset.slice = String(Math.round(finding.centroid_voxel[0]));
        const name = document.createElement("span");
        const volume = Number.isFinite(finding.volume_mm3) ? ` · ${Math.round(finding.volume_mm3)} mm³` : "";
        name.textContent = `${finding.index}. ${finding.label}${volume}`;
        const probability = document.createElement("span");
        probability.className = "probability";
        probability.textContent = `${Math.round(finding.max_probability * 100)}%`;
        button.append(name, probability);
        item.append(button);
        return item;
      }),
    );
    this._markDecisions();
  }

  _drawColorbar() {
    const canvas = this.$("colorbar");
    const context = canvas?.getContext("2d");
    if (!context) return;
    const ctf = colorTransfer();
    const rgb = [0, 0, 0];
    for (let x = 0; x < canvas.width; x += 1) {
      ctf.getColor(x / (canvas.width - 1), rgb);
      context.fillStyle = `rgb(${rgb.map((v) => Math.round(v * 255)).join(",")})`;
      context.fillRect(x, 0, 1, canvas.height);
    }
  }
}

export async function fetchArrays(result) {
  const expected = [result.slices.length, result.rows, result.columns];
  const load = async (url) => {
    if (!url) return undefined;
    const response = await fetch(url, { credentials: "same-origin" });
    if (!response.ok) throw new Error(`HTTP ${response.status} for ${url}`);
    const shape = (response.headers.get("X-Array-Shape") || "").split(",").map(Number);
    const array = new Uint8Array(await response.arrayBuffer());
    const size = expected[0] * expected[1] * expected[2];
    if (array.length !== size || (shape.length === 3 && shape.some((n, i) => n !== expected[i]))) {
      throw new Error(`the array is ${shape.join("x") || array.length} where ${expected.join("x")} was expected`);
    }
    return array;
  };
  const [heatmap, mask] = await Promise.all([load(result.heatmap_url), load(result.mask_url)]);
  return { heatmap, mask };
}

function colorTransfer() {
  const ctf = vtkColorTransferFunction.newInstance();
  for (const [value, [r, g, b]] of COLORMAP) ctf.addRGBPoint(value, r, g, b);
  return ctf;
}

function opacityRamp(opacity) {
  const ramp = vtkPiecewiseFunction.newInstance();
  ramp.addPoint(0, 0);
  ramp.addPoint(TRANSPARENT_BELOW, 0);
  ramp.addPoint(0.5, opacity * 0.7);
  ramp.addPoint(1, opacity);
  return ramp;
}

function modelLabel(model, { withDemonstration = true } = {}) {
  if (!model) return "Model attention";
  const version = model.version ? ` ${model.version}` : "";
  const demonstration = withDemonstration && model.demonstration ? " (demonstration model)" : "";
  return `Model attention: ${model.name || "model"}${version}${demonstration}`;
}

/** The patient (world) position of voxel (x, y) of an image, from its plane metadata. */
export function voxelToWorld(imageId, x, y) {
  const plane = metaData.get("imagePlaneModule", imageId);
  if (!plane?.imagePositionPatient || !plane.rowCosines || !plane.columnCosines) return undefined;
  const { imagePositionPatient: p, rowCosines: r, columnCosines: c } = plane;
  const dx = x * (plane.columnPixelSpacing || 1);
  const dy = y * (plane.rowPixelSpacing || 1);
  return [0, 1, 2].map((i) => p[i] + dx * r[i] + dy * c[i]);
}

function centreOn(viewport, world) {
  const camera = viewport.getCamera();
  const normal = camera.viewPlaneNormal;
  const delta = world.map((v, i) => v - camera.focalPoint[i]);
  const along = delta[0] * normal[0] + delta[1] * normal[1] + delta[2] * normal[2];
  const shift = delta.map((v, i) => v - along * normal[i]);
  viewport.setCamera({
    focalPoint: camera.focalPoint.map((v, i) => v + shift[i]),
    position: camera.position.map((v, i) => v + shift[i]),
  });
  viewport.render();
}
