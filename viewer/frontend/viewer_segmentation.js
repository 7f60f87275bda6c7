// The editable mask: one labelmap segmentation per series (0 background, k finding k),
// shown in every viewport that shows the series, painted with the brush and eraser, with
// undo and redo. The AI mask is loaded into it; `getLabelmap()` hands the edited values
// back per SOP Instance UID (the review workflow saves them; the browser tests read them).
import { cache, imageLoader, utilities as coreUtilities } from "@cornerstonejs/core";
import { Enums as ToolEnums, segmentation } from "@cornerstonejs/tools";

const { SegmentationRepresentations } = ToolEnums;
const LABELMAP = SegmentationRepresentations.Labelmap;

export class MaskEditor {
  constructor(viewer) {
    this.viewer = viewer;
    this.labelmaps = new Map(); // series UID -> {segmentationId, series, imageIdBySource}
    this.hidden = new Map(); // series UID -> Set of segment indices kept but not drawn
    this.visible = true;
    this.outlineOnly = false;
    this.activeSegment = 1;
    viewer.addEventListener("seriesshown", ({ detail }) => this._represent(detail.slot));
    viewer.addEventListener("slotdisabled", ({ detail }) => {
      segmentation.removeSegmentationRepresentations(detail.slot.id, { type: LABELMAP }, true);
    });
    viewer.addEventListener("toolchanged", ({ detail }) => {
      if (detail.name === "Brush" || detail.name === "Eraser") this.ensure(viewer.activeSlot);
    });
    viewer.addEventListener("activechanged", ({ detail }) => {
      if (viewer.tools && ["Brush", "Eraser"].includes(viewer.tools.toolName)) this.ensure(detail.slot);
    });
  }

  /** The labelmap of the series a slot shows, created (empty) on first use. */
  ensure(slot, segments) {
    const series = slot?.series;
    if (!series || !slot.stackReady) return undefined;
    let labelmap = this.labelmaps.get(series.seriesUid);
    if (!labelmap) {
      const segmentationId = `labelmap-${series.seriesUid}`;
      const images = imageLoader.createAndCacheDerivedLabelmapImages(series.imageIds);
      const imageIdBySource = new Map(series.imageIds.map((id, k) => [id, images[k].imageId]));
      segmentation.addSegmentations([
        {
          segmentationId,
          representation: { type: LABELMAP, data: { imageIds: images.map((image) => image.imageId) } },
          config: { label: "Mask", segments: segmentsConfig(segments || [{ index: 1, label: "Finding 1" }]) },
        },
      ]);
      labelmap = { segmentationId, series, imageIdBySource };
      this.labelmaps.set(series.seriesUid, labelmap);
      for (const other of this.viewer.shownSlots()) this._represent(other);
    }
    return labelmap;
  }

  /**
   * Replaces the series' labelmap with `mask` (uint8, slices x rows x columns, C order),
   * whose slice k belongs to the instance `slices[k]`; matched by SOP UID, never by index.
   */
  setMask(slot, { slices, rows, columns, mask, segments }) {
    const labelmap = this.ensure(slot, segments);
    if (!labelmap) return 0;
    const { series } = labelmap;
    const size = rows * columns;
    let placed = 0;
    slices.forEach((sop, k) => {
      const sourceId = series.imageIdsBySop.get(sop)?.[0];
      const image = sourceId && cache.getImage(labelmap.imageIdBySource.get(sourceId));
      if (!image || image.rows * image.columns !== size) return;
      image.voxelManager.setFromScalarData(mask.subarray(k * size, (k + 1) * size));
      placed += 1;
    });
    if (segments?.length) {
      segmentation.updateSegmentations([
        { segmentationId: labelmap.segmentationId, payload: { segments: segmentsConfig(segments) } },
      ]);
    }
    segmentation.triggerSegmentationEvents.triggerSegmentationDataModified(labelmap.segmentationId);
    this._restyle();
    return placed;
  }

  /**
   * The edited labelmap of a series (the active viewport's by default):
   * {sopInstanceUid: Uint8Array(rows * columns)}, copies in row-major order.
   */
  getLabelmap(seriesUid = this.viewer.activeSlot?.seriesUid) {
    const labelmap = this.labelmaps.get(seriesUid);
    if (!labelmap) return {};
    const state = segmentation.state.getSegmentation(labelmap.segmentationId);
    const imageIds = state?.representationData?.[LABELMAP]?.imageIds || [];
    const result = {};
    for (const imageId of imageIds) {
      const image = cache.getImage(imageId);
      const sop = image && labelmap.series.sopByImageId.get(image.referencedImageId);
      if (sop && !(sop in result)) result[sop] = new Uint8Array(image.voxelManager.getScalarData());
    }
    return result;
  }

  /** The slices of a series' labelmap that hold segment `index`: {sopInstanceUid: Uint8Array of 0/1}. */
  segmentSlices(seriesUid, index) {
    const slices = {};
    for (const [sop, values] of Object.entries(this.getLabelmap(seriesUid))) {
      let inside = null;
      for (let i = 0; i < values.length; i += 1) {
        if (values[i] !== index) continue;
        inside ??= new Uint8Array(values.length);
        inside[i] = 1;
      }
      if (inside) slices[sop] = inside;
    }
    return slices;
  }

  /**
   * Makes segment `index` of a series' labelmap exactly `slices` ({sopInstanceUid: bytes,
   * non-zero inside}; slices not given hold none of it), over whatever was there. The series
   * must be shown in a viewport (its labelmap is made on first use). False when it is not.
   */
  paintSegment(seriesUid, index, slices, label) {
    const slot = this.viewer.shownSlots().find((s) => s.seriesUid === seriesUid);
    const labelmap = slot && this.ensure(slot);
    if (!labelmap) return false;
    const { series } = labelmap;
    for (const [sourceId, labelmapId] of labelmap.imageIdBySource) {
      const image = cache.getImage(labelmapId);
      if (!image) continue;
      const wanted = slices[series.sopByImageId.get(sourceId)];
      const values = new Uint8Array(image.voxelManager.getScalarData());
      let changed = false;
      for (let i = 0; i < values.length; i += 1) {
        const inside = Boolean(wanted?.[i]);
        if (inside && values[i] !== index) {
          values[i] = index;
          changed = true;
        } else if (!inside && values[i] === index) {
          values[i] = 0;
          changed = true;
        }
      }
      if (changed) image.voxelManager.setFromScalarData(values);
    }
    if (label) this.nameSegment(seriesUid, index, label);
    segmentation.triggerSegmentationEvents.triggerSegmentationDataModified(labelmap.segmentationId);
    this._renderAll();
    return true;
  }

  /** Gives segment `index` of a series' labelmap a name (shown in Cornerstone's segment state). */
  nameSegment(seriesUid, index, label) {
    const labelmap = this.labelmaps.get(seriesUid);
    if (!labelmap) return;
    segmentation.updateSegmentations([
      { segmentationId: labelmap.segmentationId, payload: { segments: { ...currentSegments(labelmap), ...segmentsConfig([{ index, label }]) } } },
    ]);
  }

  /**
   * Stops drawing segment `index` of a series' labelmap, in every viewport, or draws it again.
   * Its voxels are kept: a hidden segment can be shown, or edited, later.
   */
  setSegmentHidden(seriesUid, index, hidden) {
    const indices = this.hidden.get(seriesUid) ?? new Set();
    if (hidden) indices.add(index);
    else indices.delete(index);
    this.hidden.set(seriesUid, indices);
    for (const slot of this.viewer.shownSlots()) if (slot.seriesUid === seriesUid) this._applyHidden(slot);
    this._renderAll();
  }

  /** The segments Cornerstone does not draw in a slot (the hidden ones), ascending. */
  hiddenIn(slot) {
    const labelmap = slot && this.labelmaps.get(slot.seriesUid);
    if (!labelmap) return [];
    const specifier = { segmentationId: labelmap.segmentationId, type: LABELMAP };
    return [...segmentation.config.visibility.getHiddenSegmentIndices(slot.id, specifier)].sort((a, b) => a - b);
  }

  setActiveSegment(index) {
    this.activeSegment = Math.max(1, Math.min(255, Number(index) || 1));
    for (const { segmentationId } of this.labelmaps.values()) {
      segmentation.segmentIndex.setActiveSegmentIndex(segmentationId, this.activeSegment);
    }
  }

  setVisible(visible) {
    this.visible = Boolean(visible);
    for (const slot of this.viewer.shownSlots()) {
      const labelmap = this.labelmaps.get(slot.seriesUid);
      if (!labelmap) continue;
      segmentation.config.visibility.setSegmentationRepresentationVisibility(
        slot.id,
        { segmentationId: labelmap.segmentationId, type: LABELMAP },
        this.visible,
      );
    }
    this.viewer.dispatchEvent(new CustomEvent("maskvisibility", { detail: { visible: this.visible } }));
  }

  toggleVisible() {
    this.setVisible(!this.visible);
    return this.visible;
  }

  setOutlineOnly(outlineOnly) {
    this.outlineOnly = Boolean(outlineOnly);
    this._restyle();
  }

  /** Ends undo and redo at what is saved: Ctrl+Z never takes back a stroke of a saved mask. */
  forgetHistory() {
    const memo = coreUtilities.HistoryMemo.DefaultHistoryMemo;
    memo.size = memo.size; // the setter empties the ring
  }

  undo() {
    coreUtilities.HistoryMemo.DefaultHistoryMemo.undo();
    this._renderAll();
  }

  redo() {
    coreUtilities.HistoryMemo.DefaultHistoryMemo.redo();
    this._renderAll();
  }

  _represent(slot) {
    const labelmap = slot?.series && this.labelmaps.get(slot.series.seriesUid);
    if (!labelmap || !slot.stackReady) return;
    const shown = segmentation.state
      .getSegmentationRepresentations(slot.id, { segmentationId: labelmap.segmentationId })
      ?.some((r) => r.type === LABELMAP);
    if (!shown) {
      segmentation.addLabelmapRepresentationToViewport(slot.id, [{ segmentationId: labelmap.segmentationId }]);
    }
    segmentation.activeSegmentation.setActiveSegmentation(slot.id, labelmap.segmentationId);
    segmentation.segmentIndex.setActiveSegmentIndex(labelmap.segmentationId, this.activeSegment);
    this._applyHidden(slot);
    this._restyle();
    if (!this.visible) this.setVisible(false);
  }

  _applyHidden(slot) {
    const labelmap = this.labelmaps.get(slot.seriesUid);
    if (!labelmap) return;
    const hidden = this.hidden.get(slot.seriesUid) ?? new Set();
    const specifier = { segmentationId: labelmap.segmentationId, type: LABELMAP };
    const { visibility } = segmentation.config;
    // A viewport's representation lists only the segments known when it was made; Cornerstone
    // adds later ones as they become active, and setSegmentIndexVisibility skips the rest.
    for (const representation of segmentation.state.getSegmentationRepresentations(slot.id, specifier) ?? []) {
      for (const index of hidden) representation.segments[index] ??= { visible: true };
    }
    for (const index of new Set([...Object.keys(currentSegments(labelmap)).map(Number), ...hidden])) {
      const shown = !hidden.has(index);
      if (visibility.getSegmentIndexVisibility(slot.id, specifier, index) !== shown) {
        visibility.setSegmentIndexVisibility(slot.id, specifier, index, shown);
      }
    }
    // Showing a segment shows its whole labelmap: the mask toggle (M) stays as the reader left it.
    if (!this.visible) visibility.setSegmentationRepresentationVisibility(slot.id, specifier, false);
  }

  _restyle() {
    const style = this.outlineOnly
      ? { renderFill: false, renderOutline: true, outlineWidth: 2 }
      : { renderFill: true, fillAlpha: 0.45, renderOutline: true, outlineWidth: 1 };
    segmentation.config.style.setStyle({ type: LABELMAP }, style);
    this._renderAll();
  }

  _renderAll() {
    for (const slot of this.viewer.shownSlots()) this.viewer.viewport(slot)?.render();
  }
}

function segmentsConfig(segments) {
  const config = {};
  for (const { index, label } of segments) {
    config[index] = { segmentIndex: index, label: label || `Finding ${index}`, locked: false, cachedStats: {}, active: false };
  }
  return config;
}

function currentSegments(labelmap) {
  return segmentation.state.getSegmentation(labelmap.segmentationId)?.segments || {};
}
