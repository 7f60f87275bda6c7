// Builds the browser bundle into static/dist/ (git-ignored), served by WhiteNoise.
// Run through `make` (or `npm run build`); takes about a second.
import { build } from "esbuild";
import { copyFile, mkdir } from "node:fs/promises";

const outdir = "static/dist";
await mkdir(outdir, { recursive: true });

await build({
  entryPoints: { overread: "viewer/frontend/index.js" },
  outdir,
  bundle: true,
  format: "esm",
  platform: "browser",
  target: "es2022",
  minify: true,
  sourcemap: true,
  logLevel: "warning",
});

// htmx is served from our own origin, never from a CDN.
await copyFile("node_modules/htmx.org/dist/htmx.min.js", `${outdir}/htmx.min.js`);
