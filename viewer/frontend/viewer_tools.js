// Mouse tools, window presets, invert, reset and cine, shared by every viewport through
// one tool group. The left button runs the chosen tool; the wheel always scrolls the
// stack, the middle button pans and the right button zooms (as in OHIF).
import { utilities as coreUtilities } from "@cornerstonejs/core";
import {
  BrushTool,
  EllipticalROITool,
  Enums as ToolEnums,
  LengthTool,
  PanTool,
  StackScrollTool,
  ToolGroupManager,
  WindowLevelTool,
  ZoomTool,
  addTool,
  utilities as toolUtilities,
} from "@cornerstonejs/tools";

const { MouseBindings, Events: ToolEvents } = ToolEnums;
const TOOL_GROUP_ID = "overread-tools";

/** Names the toolbar and shortcuts use, and the Cornerstone tool (instance) behind each. */
export const TOOLS = {
  WindowLevel: WindowLevelTool.toolName,
  StackScroll: StackScrollTool.toolName,
  Zoom: ZoomTool.toolName,
  Pan: PanTool.toolName,
  Length: LengthTool.toolName,
  EllipticalROI: EllipticalROITool.toolName,
  Brush: "Brush",
  Eraser: "Eraser",
};

/** Window presets in HU: [width, centre]. */
export const PRESETS = {
  lung: [1500, -600],
  mediastinum: [350, 40],
  bone: [2000, 500],
  brain: [80, 40],
  abdomen: [400, 50],
};

const ALWAYS = {
  [PanTool.toolName]: [{ mouseButton: MouseBindings.Auxiliary }],
  [ZoomTool.toolName]: [{ mouseButton: MouseBindings.Secondary }],
  [StackScrollTool.toolName]: [{ mouseButton: MouseBindings.Wheel }],
};

export class ViewerTools {
  constructor(viewer) {
    this.viewer = viewer;
    this.primary = null;
    this.brushSize = 5;
    for (const tool of [WindowLevelTool, StackScrollTool, ZoomTool, PanTool, LengthTool, EllipticalROITool, BrushTool]) {
      addTool(tool);
    }
    const group = ToolGroupManager.createToolGroup(TOOL_GROUP_ID);
    this.group = group;
    for (const name of [TOOLS.WindowLevel, TOOLS.StackScroll, TOOLS.Zoom, TOOLS.Pan, TOOLS.Length, TOOLS.EllipticalROI]) {
      group.addTool(name);
    }
    group.addToolInstance(TOOLS.Brush, BrushTool.toolName, { activeStrategy: "FILL_INSIDE_CIRCLE" });
    group.addToolInstance(TOOLS.Eraser, BrushTool.toolName, { activeStrategy: "ERASE_INSIDE_CIRCLE" });
    for (const [name, bindings] of Object.entries(ALWAYS)) group.setToolActive(name, { bindings });
    group.setToolPassive(TOOLS.Length);
    group.setToolPassive(TOOLS.EllipticalROI);
    group.setToolDisabled(TOOLS.Brush);
    group.setToolDisabled(TOOLS.Eraser);
    this.setTool("WindowLevel");

    // Cornerstone hands a single click's mouse-down to the tools up to 400 ms late (it waits
    // to tell it from a double click). A press made before the tool changed must not reach the
    // new tool: a click with the window tool, then N, would leave a brush dab in the finding.
    for (const type of [ToolEvents.MOUSE_DOWN, ToolEvents.MOUSE_DOWN_ACTIVATE]) {
      viewer.root.addEventListener(type, (event) => this._dropIfPressedBefore(event), true);
    }

    viewer.addEventListener("slotenabled", ({ detail }) => group.addViewport(detail.slot.id, viewer.engine.id));
    viewer.addEventListener("slotdisabled", ({ detail }) => group.removeViewports(viewer.engine.id, detail.slot.id));
  }

  /** Makes `name` (a key of TOOLS) the left-button tool. */
  setTool(name) {
    const tool = TOOLS[name];
    if (!tool || tool === this.primary) return;
    const group = this.group;
    if (this.primary) {
      if (this.primary === TOOLS.Brush || this.primary === TOOLS.Eraser) group.setToolDisabled(this.primary);
      else group.setToolPassive(this.primary);
    }
    group.setToolActive(tool, { bindings: [{ mouseButton: MouseBindings.Primary }] });
    this.primary = tool;
    this.changedAt = performance.now(); // the clock of Event.timeStamp
    this.viewer.root.querySelectorAll("[data-tool]").forEach((button) => {
      button.setAttribute("aria-pressed", String(button.dataset.tool === name));
    });
    if (tool === TOOLS.Brush || tool === TOOLS.Eraser) this.setBrushSize(this.brushSize);
    this.viewer.dispatchEvent(new CustomEvent("toolchanged", { detail: { name } }));
  }

  _dropIfPressedBefore(event) {
    const pressed = event.detail?.event?.timeStamp;
    if (pressed !== undefined && pressed < this.changedAt) event.stopImmediatePropagation();
  }

  get toolName() {
    return Object.keys(TOOLS).find((name) => TOOLS[name] === this.primary);
  }

  setBrushSize(size) {
    this.brushSize = Math.max(1, Math.min(50, Math.round(size)));
    toolUtilities.segmentation.setBrushSizeForToolGroup(TOOL_GROUP_ID, this.brushSize);
    this.viewer.root.querySelectorAll("[data-brush-size]").forEach((input) => {
      input.value = String(this.brushSize);
    });
    this.viewer.root.querySelectorAll("[data-brush-size-value]").forEach((output) => {
      output.textContent = String(this.brushSize);
    });
  }

  /** Applies a preset ("default" is the series' own window) to the active viewport. */
  applyPreset(name) {
    const slot = this.viewer.activeSlot;
    const viewport = this.viewer.viewport(slot);
    if (!viewport || !slot.stackReady) return;
    let voiRange;
    if (name === "default") voiRange = slot.defaultVoi;
    else if (PRESETS[name]) {
      const [width, centre] = PRESETS[name];
      voiRange = coreUtilities.windowLevel.toLowHighRange(width, centre);
    }
    if (!voiRange) return;
    viewport.setProperties({ voiRange: { ...voiRange } });
    viewport.render();
    this.viewer.root.querySelectorAll("[data-preset-select]").forEach((select) => {
      select.value = name;
    });
  }

  invert() {
    const viewport = this.viewer.viewport();
    if (!viewport) return;
    viewport.setProperties({ invert: !viewport.getProperties().invert });
    viewport.render();
  }

  reset() {
    const slot = this.viewer.activeSlot;
    const viewport = this.viewer.viewport(slot);
    if (!viewport || !slot.stackReady) return;
    viewport.resetCamera();
    viewport.resetProperties();
    if (slot.defaultVoi) viewport.setProperties({ voiRange: { ...slot.defaultVoi } });
    viewport.render();
    this.viewer.root.querySelectorAll("[data-preset-select]").forEach((select) => {
      select.value = "default";
    });
  }

  /** Starts or stops cine in the active viewport; returns whether it now plays. */
  toggleCine(framesPerSecond) {
    const slot = this.viewer.activeSlot;
    if (!slot?.stackReady) return false;
    const playing = Boolean(toolUtilities.cine.getToolState(slot.element)?.intervalId);
    if (playing) toolUtilities.cine.stopClip(slot.element);
    else toolUtilities.cine.playClip(slot.element, { framesPerSecond, loop: true });
    slot.cine = !playing;
    this.viewer.dispatchEvent(new CustomEvent("cinechanged", { detail: { slot, playing: !playing } }));
    return !playing;
  }
}
