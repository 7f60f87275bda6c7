// Builds the browser bundles into static/dist/ (git-ignored), served by WhiteNoise.
// Run through `make` (or `npm run build`); takes a few seconds.
//
// - overread.js: every page (htmx wiring, keyboard lists, upload). Small.
// - viewer.js: the reading viewer (Cornerstone3D), loaded by the study page only.
// - decodeImageFrameWorker.js: the DICOM image loader's decode worker. The loader
//   starts it as `new URL('./decodeImageFrameWorker.js', import.meta.url)`, which
//   esbuild does not follow, so it is its own entry with exactly that name; the
//   page passes its URL too (data-worker-url), so a hashed name also works.
// - wasm/*.wasm: the codecs' WebAssembly, found through the loader's wasmBasePath
//   (the page passes the URL of one of them, data-wasm-url).
import { build } from "esbuild";
import { copyFile, mkdir, readFile } from "node:fs/promises";

const outdir = "static/dist";
const loader = "node_modules/@cornerstonejs/dicom-image-loader/dist/esm";
const CODEC_WASM = [
  "node_modules/@cornerstonejs/codec-openjpeg/dist/openjpegwasm_decode.wasm",
  "node_modules/@cornerstonejs/codec-charls/dist/charlswasm_decode.wasm",
  "node_modules/@cornerstonejs/codec-libjpeg-turbo-8bit/dist/libjpegturbowasm_decode.wasm",
  "node_modules/@cornerstonejs/codec-openjph/dist/openjphjs.wasm",
  "node_modules/@cornerstonejs/codec-libjxl/dist/jpegxlwasm_decode.wasm",
];

// Node built-ins that dependencies import on their Node code paths only (the codecs'
// Emscripten glue, dicom-parser's zlib, seedrandom's crypto): empty stubs. `events` is
// the exception: xmlbuilder2 declares a class extending EventEmitter when loaded.
const NODE_BUILTINS = /^(node:)?(fs|path|url|events|crypto|module|worker_threads|perf_hooks|os|util|stream|zlib)$/;
const EVENTS_STUB = `class EventEmitter {
  on() { return this; } once() { return this; } off() { return this; } emit() { return false; }
  addListener() { return this; } removeListener() { return this; } removeAllListeners() { return this; }
}
module.exports = EventEmitter;
module.exports.EventEmitter = EventEmitter;`;
const nodeStubs = {
  name: "node-builtins-as-stubs",
  setup(b) {
    b.onResolve({ filter: NODE_BUILTINS }, (args) => ({ path: args.path.replace(/^node:/, ""), namespace: "node-stub" }));
    b.onLoad({ filter: /.*/, namespace: "node-stub" }, (args) => ({
      contents: args.path === "events" ? EVENTS_STUB : "module.exports = {};",
      loader: "js",
    }));
  },
};

// The measurement text boxes of @cornerstonejs/tools set an inline `style` attribute,
// which our Content-Security-Policy (style-src 'self', no 'unsafe-inline') refuses.
// The same declarations set through the CSSOM are allowed: rewrite that one call,
// and fail the build if an upgrade moves it (rather than silently breaking the CSP).
const cspSafeTextBoxes = {
  name: "csp-safe-svg-text-styles",
  setup(b) {
    b.onLoad({ filter: /@cornerstonejs[\\/]tools[\\/].*drawingSvg[\\/]drawTextBox\.js$/ }, async (args) => {
      const source = await readFile(args.path, "utf8");
      const call = "textElement.setAttribute('style', combinedStyle);";
      if (!source.includes(call)) throw new Error(`${args.path}: the inline style call moved; update build_viewer.mjs`);
      return { contents: source.replace(call, "textElement.style.cssText = combinedStyle;"), loader: "js" };
    });
  },
};

const common = {
  outdir,
  bundle: true,
  format: "esm",
  platform: "browser",
  target: "es2022",
  minify: true,
  sourcemap: true,
  logLevel: "warning",
  legalComments: "linked",
  plugins: [nodeStubs, cspSafeTextBoxes],
  define: { "process.env.NODE_ENV": '"production"' },
};

await mkdir(`${outdir}/wasm`, { recursive: true });

const started = Date.now();
const result = await build({
  ...common,
  entryPoints: {
    overread: "viewer/frontend/index.js",
    viewer: "viewer/frontend/viewer.js",
    decodeImageFrameWorker: `${loader}/decodeImageFrameWorker.js`,
  },
  metafile: true,
});

await Promise.all(CODEC_WASM.map((path) => copyFile(path, `${outdir}/wasm/${path.split("/").pop()}`)));
// htmx is served from our own origin, never from a CDN.
await copyFile("node_modules/htmx.org/dist/htmx.min.js", `${outdir}/htmx.min.js`);

const sizes = Object.entries(result.metafile.outputs)
  .filter(([path]) => path.endsWith(".js"))
  .map(([path, output]) => `${path.replace(`${outdir}/`, "")} ${(output.bytes / 1024).toFixed(0)} KiB`);
console.log(`built ${sizes.join(", ")} in ${Date.now() - started} ms`);
