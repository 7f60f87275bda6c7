// Series over DICOMweb: one WADO-RS metadata request per series (cached), turned into
// `wadors:` image ids (one per frame) in reading order, with the metadata registered
// for the image loader. Frames are then fetched one by one as they are shown.
import { wadors } from "@cornerstonejs/dicom-image-loader";

const SOP_INSTANCE_UID = "00080018";
const INSTANCE_NUMBER = "00200013";
const NUMBER_OF_FRAMES = "00280008";
const IMAGE_POSITION = "00200032";
const IMAGE_ORIENTATION = "00200037";

/** The first value of a DICOM JSON element (PN as its alphabetic form), or undefined. */
export function firstValue(dataset, tag) {
  const value = dataset?.[tag]?.Value?.[0];
  if (value && typeof value === "object" && "Alphabetic" in value) return value.Alphabetic;
  return value;
}

export function allValues(dataset, tag) {
  return dataset?.[tag]?.Value || [];
}

export class DicomwebSeries {
  constructor({ root, studyUid, seriesUid, instances }) {
    this.studyUid = studyUid;
    this.seriesUid = seriesUid;
    this.instances = orderInstances(instances);
    this.imageIds = [];
    this.sopByImageId = new Map();
    this.metadataBySop = new Map();
    this.imageIdsBySop = new Map();
    const base = `wadors:${root}/studies/${studyUid}/series/${seriesUid}/instances`;
    for (const instance of this.instances) {
      const sop = firstValue(instance, SOP_INSTANCE_UID);
      const frames = Number(firstValue(instance, NUMBER_OF_FRAMES)) || 1;
      this.metadataBySop.set(sop, instance);
      const ids = [];
      for (let frame = 1; frame <= frames; frame += 1) {
        const imageId = `${base}/${sop}/frames/${frame}`;
        wadors.metaDataManager.add(imageId, instance);
        ids.push(imageId);
        this.sopByImageId.set(imageId, sop);
      }
      this.imageIdsBySop.set(sop, ids);
      this.imageIds.push(...ids);
    }
  }

  /** The image id index of an instance's first frame, or -1. */
  indexOfSop(sop) {
    const ids = this.imageIdsBySop.get(sop);
    return ids ? this.imageIds.indexOf(ids[0]) : -1;
  }
}

const cache = new Map();

/** The series, its metadata fetched once per page. */
export function loadSeries({ root, studyUid, seriesUid }) {
  const key = `${studyUid}/${seriesUid}`;
  if (!cache.has(key)) {
    const url = `${root}/studies/${studyUid}/series/${seriesUid}/metadata`;
    const promise = fetch(url, { headers: { Accept: "application/dicom+json" }, credentials: "same-origin" })
      .then((response) => {
        if (!response.ok) throw new Error(`the series metadata could not be read (HTTP ${response.status})`);
        return response.json();
      })
      .then((instances) => new DicomwebSeries({ root, studyUid, seriesUid, instances }));
    promise.catch(() => cache.delete(key));
    cache.set(key, promise);
  }
  return cache.get(key);
}

// Reading order: Instance Number where every instance has a distinct one (as the
// modality meant it, slice 1 at the top), else the position along the slice normal.
function orderInstances(instances) {
  const numbers = instances.map((i) => Number(firstValue(i, INSTANCE_NUMBER)));
  const distinct = numbers.every(Number.isFinite) && new Set(numbers).size === numbers.length;
  const keyed = instances.map((instance, k) => ({ instance, number: numbers[k], along: alongNormal(instance) }));
  keyed.sort((a, b) => (distinct ? a.number - b.number : b.along - a.along || a.number - b.number));
  return keyed.map((k) => k.instance);
}

function alongNormal(instance) {
  const position = allValues(instance, IMAGE_POSITION).map(Number);
  const orientation = allValues(instance, IMAGE_ORIENTATION).map(Number);
  if (position.length !== 3 || orientation.length !== 6) return 0;
  const [a, b, c, d, e, f] = orientation;
  const normal = [b * f - c * e, c * d - a * f, a * e - b * d];
  return position[0] * normal[0] + position[1] * normal[1] + position[2] * normal[2];
}
