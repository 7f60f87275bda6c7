// What a viewport says about its image: patient, study and series in the corners, the
// slice, window and zoom, and orientation markers (patient directions at the edges).
import { utilities } from "@cornerstonejs/core";
import { firstValue } from "./viewer_dicomweb.js";

const TAG = {
  patientName: "00100010",
  patientId: "00100020",
  studyDate: "00080020",
  studyDescription: "00081030",
  modality: "00080060",
  seriesNumber: "00200011",
  seriesDescription: "0008103E",
  sliceThickness: "00180050",
  sliceLocation: "00201041",
};

export function updateCorners(viewer, slot) {
  const viewport = viewer.viewport(slot);
  if (!viewport || !slot.series) return;
  const index = viewport.getCurrentImageIdIndex();
  const total = viewport.getImageIds().length;
  const sop = slot.series.sopByImageId.get(viewport.getCurrentImageId());
  const meta = slot.series.metadataBySop.get(sop);
  const value = (name) => firstValue(meta, TAG[name]) ?? "";

  setText(slot.corners.tl, [personName(value("patientName")), value("patientId"), formatDate(value("studyDate")), value("studyDescription")]);
  const seriesNumber = value("seriesNumber");
  setText(slot.corners.tr, [
    `${value("modality")}${seriesNumber !== "" ? ` Se ${seriesNumber}` : ""}`,
    value("seriesDescription"),
  ]);
  const { voiRange, invert } = viewport.getProperties();
  const lines = [`Im ${index + 1}/${total}`];
  const location = value("sliceLocation");
  if (location !== "") lines.push(`Loc ${Number(location).toFixed(1)} mm`);
  if (voiRange) {
    const { windowWidth, windowCenter } = utilities.windowLevel.toWindowLevel(voiRange.lower, voiRange.upper);
    lines.push(`W ${Math.round(windowWidth)} L ${Math.round(windowCenter)}${invert ? " inv" : ""}`);
  }
  setText(slot.corners.bl, lines);
  slot.corners.bl.dataset.sliceIndex = String(index);
  const thickness = value("sliceThickness");
  setText(slot.corners.br, [`Zoom ${viewport.getZoom().toFixed(2)}×`, thickness !== "" ? `Thk ${Number(thickness)} mm` : ""]);
  updateMarkers(viewport, slot.markers);
}

function updateMarkers(viewport, markers) {
  const { viewUp, viewPlaneNormal } = viewport.getCamera();
  if (!viewUp || !viewPlaneNormal) return;
  // The camera looks along -viewPlaneNormal; screen right is (-normal) x up.
  const forward = viewPlaneNormal.map((v) => -v);
  const right = cross(forward, viewUp);
  markers.top.textContent = orientation(viewUp);
  markers.bottom.textContent = orientation(viewUp.map((v) => -v));
  markers.right.textContent = orientation(right);
  markers.left.textContent = orientation(right.map((v) => -v));
}

/** Patient directions of an LPS vector, strongest first (e.g. "L", "AR"). */
export function orientation(vector) {
  const letters = [
    ["L", "R"],
    ["P", "A"],
    ["S", "I"],
  ];
  return vector
    .map((v, axis) => ({ size: Math.abs(v), letter: v > 0 ? letters[axis][0] : letters[axis][1] }))
    .filter((c) => c.size > 0.25)
    .sort((a, b) => b.size - a.size)
    .map((c) => c.letter)
    .join("");
}

function cross(a, b) {
  return [a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]];
}

function setText(element, lines) {
  const text = lines.filter((line) => line !== "" && line != null).join("\n");
  if (element.textContent !== text) element.textContent = text;
}

function personName(name) {
  return String(name || "").replace(/\^+$/, "").replaceAll("^", ", ");
}

function formatDate(date) {
  return /^\d{8}$/.test(date) ? `${date.slice(0, 4)}-${date.slice(4, 6)}-${date.slice(6)}` : date;
}
