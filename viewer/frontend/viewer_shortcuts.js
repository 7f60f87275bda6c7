// Keyboard shortcuts: one table drives both the key handling and the `?` overlay, so the
// overlay always lists what the keys really do. Keys typed into a form field (the review
// form in the side panel, the tag filter) are left alone.

/** [keys, what it does, action(app, event)]; "Ctrl+" also means Cmd on a Mac. */
export const SHORTCUTS = [
  [["ArrowDown", "ArrowRight"], "Next image", (app) => app.viewer.scroll(1)],
  [["ArrowUp", "ArrowLeft"], "Previous image", (app) => app.viewer.scroll(-1)],
  [["PageDown"], "10 images on", (app) => app.viewer.scroll(10)],
  [["PageUp"], "10 images back", (app) => app.viewer.scroll(-10)],
  [["Home"], "First image", (app) => app.viewer.scroll(-Infinity)],
  [["End"], "Last image", (app) => app.viewer.scroll(Infinity)],
  [[" "], "Play or stop cine", (app) => app.toggleCine()],
  [["w"], "Window/level tool (drag)", (app) => app.tools.setTool("WindowLevel")],
  [["s"], "Scroll tool (drag)", (app) => app.tools.setTool("StackScroll")],
  [["z"], "Zoom tool", (app) => app.tools.setTool("Zoom")],
  [["p"], "Pan tool", (app) => app.tools.setTool("Pan")],
  [["l"], "Length measurement", (app) => app.tools.setTool("Length")],
  [["e"], "Ellipse ROI (mean, SD)", (app) => app.tools.setTool("EllipticalROI")],
  [["b"], "Brush (paint the mask)", (app) => app.tools.setTool("Brush")],
  [["x"], "Eraser", (app) => app.tools.setTool("Eraser")],
  [["["], "Smaller brush", (app) => app.tools.setBrushSize(app.tools.brushSize - 1)],
  [["]"], "Larger brush", (app) => app.tools.setBrushSize(app.tools.brushSize + 1)],
  [["0"], "Series default window", (app) => app.tools.applyPreset("default")],
  [["1"], "Lung window", (app) => app.tools.applyPreset("lung")],
  [["2"], "Mediastinum window", (app) => app.tools.applyPreset("mediastinum")],
  [["3"], "Bone window", (app) => app.tools.applyPreset("bone")],
  [["4"], "Brain window", (app) => app.tools.applyPreset("brain")],
  [["5"], "Abdomen window", (app) => app.tools.applyPreset("abdomen")],
  [["i"], "Invert", (app) => app.tools.invert()],
  [["r"], "Reset the viewport", (app) => app.tools.reset()],
  [["h"], "Show or hide the attention map", (app) => app.overlay.toggleHeatmap()],
  [["m"], "Show or hide the mask", (app) => app.overlay.toggleMask()],
  [["g"], "Next layout (1×1, 1×2, 2×2)", (app) => app.viewer.cycleLayout()],
  [["v"], "Next viewport", (app) => app.nextViewport()],
  [["t"], "DICOM tags of the image", (app) => app.tags.toggle()],
  [["Ctrl+z"], "Undo", (app) => app.masks.undo()],
  [["Ctrl+y", "Ctrl+Shift+z"], "Redo", (app) => app.masks.redo()],
  [["j"], "Reading: next AI finding", (app) => app.review?.step(1)],
  [["k"], "Reading: previous AI finding", (app) => app.review?.step(-1)],
  [["a"], "Reading: accept the AI finding", (app) => app.review?.accept()],
  [["c"], "Reading: correct (edit) the AI finding with the brush", (app) => app.review?.edit()],
  [["o"], "Reading: override the AI finding, with a reason", (app) => app.review?.override()],
  [["n"], "Reading: paint a new finding", (app) => app.review?.addFinding()],
  [["Enter"], "Reading: save the finding being painted", (app) => app.review?.saveEditing()],
  [["Ctrl+Enter"], "Reading: lock the unaided read, or submit", (app) => app.review?.finishStep()],
  [["?"], "This list", (app) => app.toggleHelp()],
  [["Escape"], "Close a dialog; stop painting a finding", (app) => app.review?.cancelEditing()],
];

const NAMES = { " ": "Space", ArrowDown: "↓", ArrowRight: "→", ArrowUp: "↑", ArrowLeft: "←" };

export function enableShortcuts(app) {
  const table = new Map();
  for (const [keys, , action] of SHORTCUTS) for (const key of keys) table.set(key, action);
  document.addEventListener("keydown", (event) => {
    const target = event.target instanceof Element ? event.target : null;
    if (leftToTheControl(target, event) || event.altKey || event.isComposing) return;
    const dialogOpen = app.root.querySelector("dialog[open]");
    if (dialogOpen && event.key !== "?" && !(event.key === "t" && dialogOpen === app.tags.dialog)) return;
    const action = table.get(keyName(event));
    if (!action) return;
    event.preventDefault();
    action(app, event);
  });
}

const TYPING = "textarea, select, [contenteditable], input:not([type=range], [type=checkbox], [type=radio], [type=button])";
const NAVIGATION = new Set(["ArrowUp", "ArrowDown", "ArrowLeft", "ArrowRight", "PageUp", "PageDown", "Home", "End"]);

// Keys the focused control handles itself: everything typed into a text field (but Ctrl+Enter,
// which locks or submits the read whose impression is being typed), the arrows on a slider or
// in a group of radio buttons (the override's reasons), Space and Enter on buttons, links and
// check boxes.
function leftToTheControl(target, event) {
  if (!target) return false;
  const key = event.key;
  if (target.closest(TYPING)) return !(key === "Enter" && (event.ctrlKey || event.metaKey));
  if (NAVIGATION.has(key) && target.closest("input[type=range]")) return true;
  if (key.startsWith("Arrow") && target.closest("input[type=radio]")) return true;
  const pressable = "button, a, summary, input[type=checkbox], input[type=radio], input[type=button]";
  return (key === " " || key === "Enter") && Boolean(target.closest(pressable));
}

function keyName(event) {
  const key = event.key.length === 1 ? event.key.toLowerCase() : event.key;
  if (event.ctrlKey || event.metaKey) return `Ctrl+${event.shiftKey ? "Shift+" : ""}${key}`;
  return key;
}

/** Fills the help overlay's list from SHORTCUTS. */
export function renderShortcutList(list) {
  list.replaceChildren(
    ...SHORTCUTS.map(([keys, label]) => {
      const row = document.createElement("div");
      row.className = "shortcut";
      const keyCell = document.createElement("span");
      keyCell.className = "keys";
      for (const key of keys) {
        const kbd = document.createElement("kbd");
        kbd.textContent = displayKey(key);
        keyCell.append(kbd);
      }
      const labelCell = document.createElement("span");
      labelCell.textContent = label;
      row.append(keyCell, labelCell);
      return row;
    }),
  );
}

function displayKey(key) {
  if (NAMES[key]) return NAMES[key];
  const parts = key.split("+");
  const last = parts.pop();
  return [...parts, last.length === 1 ? last.toUpperCase() : last].join("+");
}
