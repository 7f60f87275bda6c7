// The upload page: DICOM files, folders and ZIP archives, dropped or chosen, are sent
// one file per request (a few at a time) so that each gets its own progress bar and
// its own result: stored, already stored, or rejected with the reason.
// Configured by data- attributes on the [data-upload] element; when the queue is
// empty it carries data-upload-state="done" (what the browser tests wait for).
import { csrfToken } from "./csrf.js";

const DEFAULT_CONCURRENCY = 3;
const SKIPPED_NAMES = new Set([".DS_Store", "Thumbs.db", "desktop.ini", "DICOMDIR"]);
const STATUS_WORDS = { stored: "stored", duplicate: "already stored", rejected: "rejected", failed: "failed" };

export function enableUpload(root) {
  if (root.dataset.uploadReady) return;
  root.dataset.uploadReady = "1";

  const endpoint = root.dataset.uploadEndpoint;
  const concurrency = Number(root.dataset.uploadConcurrency) || DEFAULT_CONCURRENCY;
  const rows = root.querySelector("[data-upload-rows]");
  const summary = root.querySelector("[data-upload-summary]");
  const dropzone = root.querySelector("[data-upload-dropzone]");
  const fileInput = root.querySelector("[data-upload-files]");
  const folderInput = root.querySelector("[data-upload-folder]");
  const counts = { stored: 0, duplicate: 0, rejected: 0, failed: 0 };
  const queue = [];
  let active = 0;
  let queued = 0;
  let finished = 0;

  function enqueue(items) {
    for (const item of items) {
      item.row = fileRow(item.label);
      rows.append(item.row.element);
      queue.push(item);
      queued += 1;
    }
    if (items.length) root.dataset.uploadState = "busy";
    pump();
  }

  function pump() {
    while (active < concurrency && queue.length) {
      const item = queue.shift();
      active += 1;
      send(item).then(() => {
        active -= 1;
        finished += 1;
        pump();
      });
    }
    showSummary();
    if (!active && !queue.length && queued) root.dataset.uploadState = "done";
  }

  function send(item) {
    return new Promise((resolve) => {
      const request = new XMLHttpRequest();
      request.open("POST", endpoint);
      request.setRequestHeader("X-CSRFToken", csrfToken());
      request.setRequestHeader("Accept", "application/json");
      request.responseType = "json";
      request.upload.addEventListener("progress", (event) => {
        if (event.lengthComputable) item.row.progress.value = event.loaded / event.total;
      });
      request.addEventListener("load", () => {
        item.row.progress.value = 1;
        showResponse(item, request.status, request.response);
        resolve();
      });
      for (const failure of ["error", "abort", "timeout"]) {
        request.addEventListener(failure, () => {
          showFailure(item.row, "the upload was interrupted: check the connection and try again");
          resolve();
        });
      }
      const form = new FormData();
      form.append("file", item.file, item.file.name);
      request.send(form);
    });
  }

  function showResponse(item, status, body) {
    const results = body && Array.isArray(body.results) ? body.results : null;
    if (!results) {
      const detail = body && body.detail ? body.detail : explainStatus(status);
      showFailure(item.row, detail);
      return;
    }
    for (const result of results) counts[result.status] = (counts[result.status] || 0) + 1;
    if (results.length === 1 && results[0].name === item.file.name) {
      setStatus(item.row, results[0].status, results[0].reason);
      return;
    }
    // An archive: the file's row sums it up, a row per entry says what became of it.
    const tally = tallyText(results);
    setStatus(item.row, results.every((r) => r.status === "rejected") ? "rejected" : "stored", "", tally);
    let after = item.row.element;
    for (const result of results) {
      const entry = fileRow(result.name, { entry: true });
      setStatus(entry, result.status, result.reason);
      after.after(entry.element);
      after = entry.element;
    }
  }

  function showFailure(row, reason) {
    counts.failed += 1;
    setStatus(row, "failed", reason);
  }

  function showSummary() {
    const parts = [];
    if (counts.stored) parts.push(`${counts.stored} stored`);
    if (counts.duplicate) parts.push(`${counts.duplicate} already stored`);
    if (counts.rejected) parts.push(`${counts.rejected} rejected`);
    if (counts.failed) parts.push(`${counts.failed} failed`);
    const progress = finished < queued ? `Uploading: ${finished} of ${queued} files done. ` : "";
    summary.textContent = `${progress}${parts.join(", ")}`;
  }

  // --- Choosing and dropping ---------------------------------------------------------
  const chosen = (input) => () => {
    const items = Array.from(input.files)
      .filter((file) => !skipped(file.name))
      .map((file) => ({ file, label: file.webkitRelativePath || file.name }));
    input.value = "";
    enqueue(items);
  };
  fileInput.addEventListener("change", chosen(fileInput));
  folderInput.addEventListener("change", chosen(folderInput));
  dropzone.addEventListener("keydown", (event) => {
    if (event.target !== dropzone || (event.key !== "Enter" && event.key !== " ")) return;
    event.preventDefault();
    fileInput.click();
  });
  dropzone.addEventListener("dragover", (event) => {
    event.preventDefault();
    event.dataTransfer.dropEffect = "copy";
    dropzone.classList.add("is-dragover");
  });
  dropzone.addEventListener("dragleave", () => dropzone.classList.remove("is-dragover"));
  dropzone.addEventListener("drop", (event) => {
    event.preventDefault();
    dropzone.classList.remove("is-dragover");
    droppedFiles(event.dataTransfer).then(enqueue);
  });
}

// Folders arrive as FileSystemEntry trees; the entries must be taken while the drop
// event runs, so they are collected before the first await.
function droppedFiles(dataTransfer) {
  const entries = Array.from(dataTransfer.items || [])
    .map((item) => (item.webkitGetAsEntry ? item.webkitGetAsEntry() : null))
    .filter(Boolean);
  if (!entries.length) {
    const files = Array.from(dataTransfer.files).map((file) => ({ file, label: file.name }));
    return Promise.resolve(files);
  }
  const found = [];
  return entries.reduce((done, entry) => done.then(() => walk(entry, found)), Promise.resolve()).then(() => found);
}

async function walk(entry, found) {
  if (entry.isFile) {
    if (skipped(entry.name)) return;
    const file = await new Promise((resolve, reject) => entry.file(resolve, reject));
    found.push({ file, label: entry.fullPath.replace(/^\//, "") });
    return;
  }
  if (!entry.isDirectory) return;
  const reader = entry.createReader();
  for (;;) {
    const batch = await new Promise((resolve, reject) => reader.readEntries(resolve, reject));
    if (!batch.length) return;
    for (const child of batch) await walk(child, found);
  }
}

function skipped(name) {
  return SKIPPED_NAMES.has(name) || name.startsWith(".");
}

// --- Rows --------------------------------------------------------------------------
function fileRow(label, { entry = false } = {}) {
  const element = document.createElement("tr");
  element.className = entry ? "upload-result entry" : "upload-result";
  element.dataset.status = "uploading";
  const file = cell(element, "file", label);
  file.title = label;
  const progressCell = cell(element, "progress-column", "");
  const progress = document.createElement("progress");
  progress.max = 1;
  progress.value = 0;
  progress.setAttribute("aria-label", `upload progress of ${label}`);
  if (!entry) progressCell.append(progress);
  const status = cell(element, "status", entry ? "" : "waiting");
  const reason = cell(element, "reason", "");
  return { element, progress, status, reason };
}

function cell(row, className, text) {
  const element = document.createElement("td");
  element.className = className;
  element.textContent = text;
  row.append(element);
  return element;
}

function setStatus(row, status, reason, statusText) {
  row.element.dataset.status = status;
  row.status.textContent = statusText || STATUS_WORDS[status] || status;
  row.reason.textContent = status === "rejected" || status === "failed" ? reason : "";
}

function tallyText(results) {
  const tally = {};
  for (const result of results) tally[result.status] = (tally[result.status] || 0) + 1;
  const words = Object.entries(tally).map(([status, n]) => `${n} ${STATUS_WORDS[status] || status}`);
  return `${results.length} files: ${words.join(", ")}`;
}

function explainStatus(status) {
  if (status === 403) return "you may not upload studies, or your session ended: reload the page";
  if (status === 413) return "the file is larger than the upload limit";
  if (status === 0 || status >= 500) return "the server could not take the file; try again later";
  return `the server answered ${status}; reload the page and sign in again`;
}
