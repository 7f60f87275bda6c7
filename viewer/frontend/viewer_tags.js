// The DICOM tag inspector: every element of the current image's WADO-RS metadata (the
// DICOM JSON the viewer already holds), with keywords from the page's dictionary
// (json_script "dicom-keywords"), sequences nested, filterable.
const MAX_VALUE_CHARS = 400;

export class TagInspector {
  constructor(viewer, dialog) {
    this.viewer = viewer;
    this.dialog = dialog;
    this.rows = dialog.querySelector("[data-tags-rows]");
    this.filter = dialog.querySelector("[data-tags-filter]");
    this.subtitle = dialog.querySelector("[data-tags-subtitle]");
    const dictionary = document.getElementById("dicom-keywords");
    this.keywords = dictionary ? JSON.parse(dictionary.textContent) : {};
    this.filter.addEventListener("input", () => this._applyFilter());
    viewer.addEventListener("imagechanged", ({ detail }) => {
      if (this.dialog.open && detail.slot === viewer.activeSlot) this.render();
    });
  }

  toggle() {
    if (this.dialog.open) this.dialog.close();
    else this.open();
  }

  open() {
    this.render();
    if (!this.dialog.open) this.dialog.showModal();
    this.filter.focus();
  }

  render() {
    const slot = this.viewer.activeSlot;
    const sop = this.viewer.currentSop(slot);
    const metadata = sop && slot.series.metadataBySop.get(sop);
    this.rows.replaceChildren();
    if (!metadata) {
      this.subtitle.textContent = "No image is shown.";
      return;
    }
    const index = this.viewer.viewport(slot).getCurrentImageIdIndex();
    this.subtitle.textContent = `Image ${index + 1} · SOP Instance UID ${sop}`;
    this._addRows(metadata, 0);
    this._applyFilter();
  }

  _addRows(dataset, depth) {
    for (const tag of Object.keys(dataset).sort()) {
      const element = dataset[tag];
      const row = document.createElement("tr");
      if (depth) row.className = "nested";
      const cells = [
        `${"› ".repeat(depth)}(${tag.slice(0, 4)},${tag.slice(4)})`,
        this.keywords[tag] || (parseInt(tag.slice(0, 4), 16) % 2 ? "(private)" : ""),
        element.vr || "",
        formatValue(element),
      ];
      for (const text of cells) {
        const cell = document.createElement("td");
        cell.textContent = text;
        row.append(cell);
      }
      row.dataset.tag = tag;
      this.rows.append(row);
      if (element.vr === "SQ") {
        (element.Value || []).forEach((item) => {
          if (item && typeof item === "object") this._addRows(item, depth + 1);
        });
      }
    }
  }

  _applyFilter() {
    const needle = this.filter.value.trim().toLowerCase().replace(/[(),]/g, "");
    for (const row of this.rows.children) {
      row.hidden = Boolean(needle) && !row.textContent.toLowerCase().replace(/[(),]/g, "").includes(needle);
    }
  }
}

function formatValue(element) {
  if (element.BulkDataURI) return "(bulk data)";
  if (element.InlineBinary) return `(binary, ${Math.floor((element.InlineBinary.length * 3) / 4)} bytes)`;
  if (element.vr === "SQ") return `${(element.Value || []).length} item(s)`;
  const values = (element.Value || []).map((value) => {
    if (value && typeof value === "object") return value.Alphabetic ?? JSON.stringify(value);
    return String(value);
  });
  const text = values.join("\\");
  return text.length > MAX_VALUE_CHARS ? `${text.slice(0, MAX_VALUE_CHARS)}…` : text;
}
