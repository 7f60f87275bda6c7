// Entry point of the reading viewer (static/dist/viewer.js), loaded by the study page
// only: mounts the viewer on [data-viewer] and wires the toolbar, the AI panel, the
// dialogs and the keyboard.
//
// The one global: window.overread.viewer, a handle for tests and the review workflow
// (docs/viewer.md): {ready, timings, getLabelmap(seriesUid?), showAiResult(result, arrays),
// state(), review()}. document.body.dataset.viewerReady is "true" once the first image is drawn.
import { startCornerstone } from "./viewer_setup.js";
import { ReadingViewer } from "./viewer_core.js";
import { ViewerTools } from "./viewer_tools.js";
import { MaskEditor } from "./viewer_segmentation.js";
import { AiOverlay } from "./viewer_overlays.js";
import { TagInspector } from "./viewer_tags.js";
import { enableShortcuts, renderShortcutList } from "./viewer_shortcuts.js";
import { ReviewPanel } from "./viewer_review.js";
import { AdjudicationPanel } from "./viewer_adjudication.js";

class ViewerApp {
  constructor(root) {
    this.root = root;
    startCornerstone({ workerUrl: root.dataset.workerUrl, wasmUrl: root.dataset.wasmUrl });
    this.viewer = new ReadingViewer(root);
    this.tools = new ViewerTools(this.viewer);
    this.viewer.tools = this.tools;
    this.masks = new MaskEditor(this.viewer);
    this.overlay = new AiOverlay(this.viewer, this.masks, root.querySelector("[data-ai-panel]"));
    this.tags = new TagInspector(this.viewer, root.querySelector("[data-tags-dialog]"));
    const reviewRoot = root.querySelector("[data-review]");
    this.review = reviewRoot ? new ReviewPanel(this, reviewRoot) : null;
    const adjudicationRoot = root.querySelector("[data-adjudication]");
    this.adjudication = adjudicationRoot ? new AdjudicationPanel(this, adjudicationRoot) : null;
    this.help = root.querySelector("[data-help-dialog]");
    renderShortcutList(this.help.querySelector("[data-help-rows]"));
    this._wireToolbar();
    enableShortcuts(this);
  }

  async start(handle) {
    this.viewer.addEventListener(
      "seriesshown",
      () => {
        handle.timings.firstImageMs = Math.round(performance.now());
      },
      { once: true },
    );
    const loading = this.viewer.setLayout("1x1");
    this.viewer.setActive(0);
    const [first] = await loading;
    if (first?.status === "rejected") this.root.dataset.viewerError = String(first.reason?.message || first.reason);
    handle.timings.readyMs = Math.round(performance.now());
    handle.ready = true;
    document.body.dataset.viewerReady = "true";
    this.overlay.poll();
    await this.review?.start();
    await this.adjudication?.start();
  }

  toggleCine() {
    const fps = Number(this.root.querySelector("[data-cine-fps]")?.value) || 10;
    const playing = this.tools.toggleCine(fps);
    this.root.querySelectorAll('[data-action="cine"]').forEach((b) => {
      b.setAttribute("aria-pressed", String(playing));
      b.textContent = playing ? "■ Stop" : "▶ Cine";
    });
  }

  toggleHelp() {
    if (this.help.open) this.help.close();
    else {
      this.root.querySelectorAll("dialog[open]").forEach((d) => d.close());
      this.help.showModal();
    }
  }

  nextViewport() {
    const enabled = this.viewer.slots.filter((s) => s.enabled);
    const at = enabled.indexOf(this.viewer.activeSlot);
    this.viewer.setActive(enabled[(at + 1) % enabled.length].index);
  }

  /** What a test (or a bug report) wants to know about the active viewport. */
  state() {
    const slot = this.viewer.activeSlot;
    const viewport = this.viewer.viewport(slot);
    if (!viewport || !slot.stackReady) return { layout: this.viewer.layout, seriesUid: null };
    const { voiRange, invert } = viewport.getProperties();
    return {
      layout: this.viewer.layout,
      activeViewport: slot.index,
      seriesUid: slot.seriesUid,
      imageIndex: viewport.getCurrentImageIdIndex(),
      imageCount: viewport.getImageIds().length,
      sopInstanceUid: this.viewer.currentSop(slot),
      voiRange: voiRange ? { ...voiRange } : null,
      invert: Boolean(invert),
      zoom: viewport.getZoom(),
      tool: this.tools.toolName,
      heatmapVisible: this.overlay.heatmapVisible,
      maskVisible: this.masks.visible,
      hiddenSegments: this.masks.hiddenIn(slot),
    };
  }

  _wireToolbar() {
    const root = this.root;
    root.querySelectorAll("[data-layout]").forEach((button) => {
      if (button.tagName === "BUTTON") button.addEventListener("click", () => this.viewer.setLayout(button.dataset.layout));
    });
    root.querySelectorAll("[data-tool]").forEach((button) => {
      button.addEventListener("click", () => this.tools.setTool(button.dataset.tool));
    });
    root.querySelector("[data-preset-select]")?.addEventListener("change", (event) => {
      this.tools.applyPreset(event.target.value);
    });
    root.querySelector("[data-brush-size]")?.addEventListener("input", (event) => {
      this.tools.setBrushSize(Number(event.target.value));
    });
    const actions = {
      invert: () => this.tools.invert(),
      reset: () => this.tools.reset(),
      cine: () => this.toggleCine(),
      undo: () => this.masks.undo(),
      redo: () => this.masks.redo(),
      tags: () => this.tags.toggle(),
      help: () => this.toggleHelp(),
    };
    root.querySelectorAll("[data-action]").forEach((button) => {
      button.addEventListener("click", () => actions[button.dataset.action]?.());
    });
    root.querySelectorAll("[data-dialog-close]").forEach((button) => {
      button.addEventListener("click", () => button.closest("dialog").close());
    });
  }
}

function mount() {
  const root = document.querySelector("[data-viewer]");
  if (!root || root.dataset.viewerMounted) return;
  root.dataset.viewerMounted = "1";
  const app = new ViewerApp(root);
  const handle = {
    ready: false,
    timings: {},
    getLabelmap: (seriesUid) => app.masks.getLabelmap(seriesUid),
    showAiResult: (result, arrays) => app.overlay.show(result, arrays),
    state: () => app.state(),
    review: () => app.review?.state() ?? null,
    leave: () => app.review?.leave(),
    adjudication: () => app.adjudication?.state() ?? null,
  };
  window.overread = Object.assign(window.overread || {}, { viewer: handle });
  app.start(handle).catch((error) => {
    root.dataset.viewerError = String(error?.message || error);
    throw error;
  });
}

mount();
