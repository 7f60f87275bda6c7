// The viewer core: one rendering engine, up to four stack viewports in a 1x1, 1x2 or 2x2
// grid, the series panel (click or drag a series into a viewport), and what each viewport
// shows about itself (corner text, orientation markers, the slice slider).
// Other modules (tools, overlays, segmentation, shortcuts) work through this object and
// listen to its events: "seriesshown" and "imagechanged" ({detail: {slot}}).
import { Enums, RenderingEngine, eventTarget } from "@cornerstonejs/core";
import { utilities as toolUtilities } from "@cornerstonejs/tools";
import { loadSeries } from "./viewer_dicomweb.js";
import { updateCorners } from "./viewer_corners.js";

const ENGINE_ID = "overread";
const LAYOUTS = { "1x1": 1, "1x2": 2, "2x2": 4 };
const SERIES_DRAG_TYPE = "application/x-overread-series";

export class ReadingViewer extends EventTarget {
  constructor(root) {
    super();
    this.root = root;
    this.studyUid = root.dataset.studyUid;
    this.dicomwebRoot = new URL(root.dataset.dicomwebRoot, window.location.href).href.replace(/\/$/, "");
    this.grid = root.querySelector("[data-viewport-grid]");
    this.thumbs = Array.from(root.querySelectorAll("[data-series-uid]"));
    this.engine = new RenderingEngine(ENGINE_ID);
    this.slots = [];
    this.activeIndex = 0;
    this.layout = "1x1";
    this.defaultSeriesUids = this.thumbs.filter((t) => !t.dataset.notViewable).map((t) => t.dataset.seriesUid);
    this._wireSeriesPanel();
    this._observeResize();
    eventTarget.addEventListener(Enums.Events.IMAGE_LOAD_FAILED, (event) => this._imageFailed(event));
  }

  // --- Viewports --------------------------------------------------------------------------
  get activeSlot() {
    return this.slots[this.activeIndex];
  }

  /** The Cornerstone viewport of a slot (the active one by default), or undefined. */
  viewport(slot = this.activeSlot) {
    return slot && slot.enabled ? this.engine.getViewport(slot.id) : undefined;
  }

  /** Slots that show a series (with the Cornerstone viewport ready). */
  shownSlots() {
    return this.slots.filter((slot) => slot.enabled && slot.series && slot.stackReady);
  }

  /** Shows 1, 2 or 4 viewports; resolves (settled) when the series they start showing are drawn. */
  setLayout(name) {
    const count = LAYOUTS[name];
    if (!count) return Promise.resolve([]);
    this.layout = name;
    this.grid.dataset.layout = name;
    this.root.querySelectorAll("[data-layout]").forEach((b) => {
      if (b !== this.grid) b.setAttribute("aria-pressed", String(b.dataset.layout === name));
    });
    for (let i = 0; i < Math.max(count, this.slots.length); i += 1) {
      if (i < count) this._enableSlot(i);
      else this._disableSlot(this.slots[i]);
    }
    this.engine.resize(true, true);
    if (this.activeIndex >= count) this.setActive(0);
    // A viewport that appears shows the next series nobody is looking at yet.
    const loading = [];
    for (const slot of this.slots.slice(0, count)) {
      if (!slot.seriesUid) {
        const uid = slot.lastSeriesUid || this._nextUnshownSeries();
        if (uid) loading.push(this.showSeries(uid, slot.index));
      }
    }
    this._markShownSeries();
    return Promise.allSettled(loading);
  }

  cycleLayout() {
    const names = Object.keys(LAYOUTS);
    return this.setLayout(names[(names.indexOf(this.layout) + 1) % names.length]);
  }

  setActive(index) {
    if (!this.slots[index]?.enabled) return;
    this.activeIndex = index;
    this.slots.forEach((slot) => slot.container.classList.toggle("is-active", slot.index === index));
    this.dispatchEvent(new CustomEvent("activechanged", { detail: { slot: this.activeSlot } }));
  }

  /** Shows a series in a slot (the active one by default); resolves once its first image is drawn. */
  async showSeries(seriesUid, index = this.activeIndex) {
    const slot = this.slots[index];
    if (!slot?.enabled) return;
    slot.seriesUid = seriesUid;
    slot.lastSeriesUid = seriesUid;
    slot.stackReady = false;
    slot.status.textContent = "Loading…";
    this._markShownSeries();
    try {
      const series = await loadSeries({ root: this.dicomwebRoot, studyUid: this.studyUid, seriesUid });
      if (slot.seriesUid !== seriesUid || !slot.enabled) return;
      slot.series = series;
      const viewport = this.viewport(slot);
      toolUtilities.cine.stopClip(slot.element);
      await viewport.setStack(series.imageIds, 0);
      if (slot.seriesUid !== seriesUid) return;
      slot.defaultVoi = { ...viewport.getProperties().voiRange };
      slot.stackReady = true;
      slot.status.textContent = "";
      slot.empty.hidden = true;
      slot.slider.max = String(series.imageIds.length - 1);
      slot.slider.value = "0";
      slot.slider.hidden = series.imageIds.length < 2;
      viewport.render();
      toolUtilities.stackPrefetch.enable(slot.element);
      this.dispatchEvent(new CustomEvent("seriesshown", { detail: { slot } }));
    } catch (error) {
      if (slot.seriesUid === seriesUid) slot.status.textContent = `The series could not be shown: ${error.message || error}`;
      throw error;
    }
  }

  /** Moves the slot's stack by `delta` images (clamped). */
  scroll(delta, slot = this.activeSlot) {
    const viewport = this.viewport(slot);
    if (!viewport || !slot.stackReady) return;
    this.scrollTo(viewport.getCurrentImageIdIndex() + delta, slot);
  }

  scrollTo(index, slot = this.activeSlot) {
    const viewport = this.viewport(slot);
    if (!viewport || !slot.stackReady) return Promise.resolve();
    const last = viewport.getImageIds().length - 1;
    const target = Math.max(0, Math.min(last, Math.round(index)));
    if (target === viewport.getCurrentImageIdIndex()) return Promise.resolve();
    return viewport.setImageIdIndex(target);
  }

  /** The SOP Instance UID of the image a slot shows. */
  currentSop(slot = this.activeSlot) {
    const viewport = this.viewport(slot);
    return viewport && slot.series ? slot.series.sopByImageId.get(viewport.getCurrentImageId()) : undefined;
  }

  // --- Slots --------------------------------------------------------------------------
  _enableSlot(index) {
    let slot = this.slots[index];
    if (!slot) {
      slot = this._createSlot(index);
      this.slots[index] = slot;
    }
    if (slot.enabled) return;
    this.grid.append(slot.container);
    this.engine.enableElement({
      viewportId: slot.id,
      type: Enums.ViewportType.STACK,
      element: slot.element,
      defaultOptions: { background: [0, 0, 0] },
    });
    slot.enabled = true;
    this.dispatchEvent(new CustomEvent("slotenabled", { detail: { slot } }));
  }

  _disableSlot(slot) {
    if (!slot?.enabled) return;
    toolUtilities.cine.stopClip(slot.element);
    this.dispatchEvent(new CustomEvent("slotdisabled", { detail: { slot } }));
    this.engine.disableElement(slot.id);
    slot.enabled = false;
    slot.stackReady = false;
    slot.series = null;
    slot.seriesUid = null;
    slot.container.remove();
  }

  _createSlot(index) {
    const container = document.createElement("div");
    container.className = "viewport";
    container.dataset.viewportIndex = String(index);
    container.tabIndex = -1;
    const element = document.createElement("div");
    element.className = "viewport-canvas";
    element.addEventListener("contextmenu", (event) => event.preventDefault());
    const empty = document.createElement("div");
    empty.className = "viewport-empty";
    empty.textContent = "Drop a series here";
    const overlay = document.createElement("div");
    overlay.className = "viewport-overlay";
    const corners = {};
    for (const corner of ["tl", "tr", "bl", "br"]) {
      corners[corner] = document.createElement("div");
      corners[corner].className = `corner ${corner}`;
      corners[corner].dataset.corner = corner;
      overlay.append(corners[corner]);
    }
    const markers = {};
    for (const side of ["top", "bottom", "left", "right"]) {
      markers[side] = document.createElement("div");
      markers[side].className = `marker ${side}`;
      markers[side].dataset.marker = side;
      overlay.append(markers[side]);
    }
    const status = document.createElement("div");
    status.className = "viewport-status";
    status.setAttribute("role", "status");
    overlay.append(status);
    const slider = document.createElement("input");
    slider.type = "range";
    slider.className = "slice-slider";
    slider.min = "0";
    slider.max = "0";
    slider.value = "0";
    slider.hidden = true;
    slider.setAttribute("aria-label", `Slice of viewport ${index + 1}`);
    container.append(element, empty, overlay, slider);

    const slot = { index, id: `viewport-${index}`, container, element, empty, overlay, corners, markers, status, slider };
    slot.enabled = false;
    slot.series = null;
    slot.seriesUid = null;
    slot.lastSeriesUid = null;
    slider.addEventListener("input", () => this.scrollTo(Number(slider.value), slot));
    container.addEventListener("pointerdown", () => this.setActive(index), true);
    element.addEventListener(Enums.Events.STACK_NEW_IMAGE, () => this._imageChanged(slot));
    element.addEventListener(Enums.Events.IMAGE_RENDERED, () => updateCorners(this, slot));
    this._wireDrop(slot);
    return slot;
  }

  _imageChanged(slot) {
    const viewport = this.viewport(slot);
    if (!viewport) return;
    slot.slider.value = String(viewport.getCurrentImageIdIndex());
    this.dispatchEvent(new CustomEvent("imagechanged", { detail: { slot } }));
  }

  _imageFailed(event) {
    const { imageId, error } = event.detail || {};
    const slot = this.slots.find((s) => s.enabled && s.series?.sopByImageId.has(imageId));
    if (slot) slot.status.textContent = `An image could not be loaded${error?.message ? `: ${error.message}` : ""}`;
  }

  /** A passing note in the active viewport (cleared after a few seconds). */
  _tell(text) {
    const slot = this.activeSlot;
    if (!slot) return;
    slot.status.textContent = text;
    clearTimeout(this.toldTimer);
    this.toldTimer = setTimeout(() => {
      if (slot.status.textContent === text) slot.status.textContent = "";
    }, 5000);
  }

  // --- Series panel and drag and drop -------------------------------------------------------
  _wireSeriesPanel() {
    for (const thumb of this.thumbs) {
      const why = thumb.dataset.notViewable; // an SR or a SEG: nothing to draw on its own
      thumb.addEventListener("click", (event) => {
        event.preventDefault();
        if (why) this._tell(why);
        else this.showSeries(thumb.dataset.seriesUid).catch(() => {});
      });
      if (why) continue;
      thumb.addEventListener("dragstart", (event) => {
        event.dataTransfer.setData(SERIES_DRAG_TYPE, thumb.dataset.seriesUid);
        event.dataTransfer.setData("text/plain", thumb.dataset.seriesUid);
        event.dataTransfer.effectAllowed = "copy";
      });
    }
  }

  _wireDrop(slot) {
    const accepts = (event) => event.dataTransfer && event.dataTransfer.types.includes(SERIES_DRAG_TYPE);
    slot.container.addEventListener("dragover", (event) => {
      if (!accepts(event)) return;
      event.preventDefault();
      event.dataTransfer.dropEffect = "copy";
      slot.container.classList.add("is-drop-target");
    });
    slot.container.addEventListener("dragleave", () => slot.container.classList.remove("is-drop-target"));
    slot.container.addEventListener("drop", (event) => {
      slot.container.classList.remove("is-drop-target");
      if (!accepts(event)) return;
      event.preventDefault();
      this.setActive(slot.index);
      this.showSeries(event.dataTransfer.getData(SERIES_DRAG_TYPE), slot.index).catch(() => {});
    });
  }

  _markShownSeries() {
    const shown = new Set(this.slots.filter((s) => s.enabled && s.seriesUid).map((s) => s.seriesUid));
    this.thumbs.forEach((t) => t.classList.toggle("is-shown", shown.has(t.dataset.seriesUid)));
  }

  _nextUnshownSeries() {
    const shown = new Set(this.slots.filter((s) => s.enabled && s.seriesUid).map((s) => s.seriesUid));
    return this.defaultSeriesUids.find((uid) => !shown.has(uid));
  }

  _observeResize() {
    let pending = false;
    new ResizeObserver(() => {
      if (pending) return;
      pending = true;
      requestAnimationFrame(() => {
        pending = false;
        this.engine.resize(true, true);
      });
    }).observe(this.grid);
  }
}
