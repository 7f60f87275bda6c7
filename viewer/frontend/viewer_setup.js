// Starts Cornerstone3D once per page: the renderer, the tools, and the DICOM image loader
// with its decode worker and codec WebAssembly at the URLs the page gives (so that hashed
// static file names in production work as well as the plain names in development).
import { getWebWorkerManager, init as initCore } from "@cornerstonejs/core";
import { init as initTools } from "@cornerstonejs/tools";
import { internal, wadors } from "@cornerstonejs/dicom-image-loader";

const WORKER_NAME = "dicomImageLoader"; // the name the loader's decode tasks ask for

let started = false;

/**
 * @param {{workerUrl: string, wasmUrl: string}} urls  the decode worker's URL, and the URL of
 *   one codec .wasm file (the others lie beside it).
 */
export function startCornerstone({ workerUrl, wasmUrl }) {
  if (started) return;
  started = true;
  // Two WebGL contexts are plenty for four viewports and spare software renderers.
  initCore({ rendering: { webGlContextCount: 2 } });
  initTools();

  const wasmBasePath = new URL(".", new URL(wasmUrl, window.location.href)).href;
  // What the loader's own init() does, except that the worker comes from our URL.
  internal.setOptions({ wasmBasePath, strict: false });
  wadors.register({});
  const workers = Math.max(1, Math.min(4, Math.floor((navigator.hardwareConcurrency || 2) / 2)));
  getWebWorkerManager().registerWorker(WORKER_NAME, () => new Worker(workerUrl, { type: "module" }), {
    maxWorkerInstances: workers,
  });
}
