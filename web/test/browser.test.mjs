// Browser tests: the demo page and the npm package in Debian's headless Chromium, with WebGPU
// (SwiftShader) and without it (the CPU fallback).
//
// The page: its predictions must equal native `softmoe classify --json` for the same 64 samples
// (`--cpu`, the same f64 reference, for the CPU fallback), the probabilities within TOL_WEBGPU /
// TOL_CPU (derived below; tight enough that f16 expert weights fail them, which is checked against
// native `--f16`); an uploaded colour PNG is classified as native `softmoe classify` classifies the
// same file (and as the sample it shows), and the page shows it; drawing classifies.
//
// The model picker, with WebGPU, is driven through all four shipped models (Soft MoE, dense, Tokens
// Choice, Experts Choice): every answer from WebGPU, predictions against native classify of each, the
// routing picture of each kind, and the live batch-effect panel (bit-identical for Soft MoE and dense,
// changed for both sparse routers).
//
// The npm package, in both browsers: every example of its README, type-checked with `tsc --noEmit
// --strict` and run; the bare layer (`loadLayer`, against SPEC §1's vmoe test vectors) and every
// error path — bad config or weights, HTTP 404s, bad options, `backend: 'webgpu'` without an
// adapter, wrong image types and sizes, bad layer input, a disposed model — each rejecting with the
// typed error of its kind (class, `code`, fields) and a message that names what is wrong; `backend:
// 'auto'` choosing the CPU path on SwiftShader (a fallback adapter); load progress and warm-up (the
// load→first-result time, cold and from the cache); the Cache API copy (a second load without the
// network, a corrupted entry evicted and fetched again); recovery after `device.destroy()` (the call
// in flight rejects with DeviceLostError, the next one runs on a new device, or on the CPU when no
// device can be had, with the events); the Web Worker (the default; results equal to the page's,
// the page's main thread free while a batch runs).
//
// env: SITE (the built site, target/web), NATIVE (native JSON lines of soft-moe-vit), NATIVE_DIR
//      (native JSON lines per model, <name>.jsonl, and soft-moe-vit.{cpu,f16}.jsonl from `--cpu` and
//      `--f16`; the test writes upload.png there), SOFTMOE
//      (the native binary, default NATIVE_DIR/../release/softmoe), SHOTS (screenshot folder),
//      CHROMIUM (default /usr/bin/chromium), TSC (TypeScript's tsc, default
//      ../tools/node_modules/.bin/tsc), ONLY (comma-separated parts to run: page, models, readme,
//      api, load, recovery, worker, train, analysis; default all)
//
// The browser trainer (train.mjs): createTrainer's loss falls, its export loads back (page and
// native CLI), its typed errors, WebGpuUnavailableError without WebGPU, and the demo's Train panel.
//
// The Analysis view (analysis.js): opened on the Soft MoE model, its four figures are drawn from the
// shipped analysis.json (non-blank canvases), the current image's per-slot values are placed on
// them, and it follows the block tabs; the dense model, which has no report, hides it.
import { chromium } from 'playwright-core';
import http from 'node:http';
import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import os from 'node:os';
import { execFileSync } from 'node:child_process';
import { runTrain } from './train.mjs';

const SITE = process.env.SITE;
const NATIVE = process.env.NATIVE;
const NATIVE_DIR = process.env.NATIVE_DIR ?? path.dirname(NATIVE);
const SOFTMOE = process.env.SOFTMOE ?? path.join(NATIVE_DIR, '..', 'release', 'softmoe');
const SHOTS = process.env.SHOTS ?? path.join(SITE, '..');
const TSC = process.env.TSC ?? path.join(import.meta.dirname, '..', 'tools', 'node_modules', '.bin', 'tsc');
const ONLY = process.env.ONLY ? new Set(process.env.ONLY.split(',')) : null;
const part = (name) => !ONLY || ONLY.has(name);

// Tolerances on |p_page - p_native| per probability (values in [0, 1]; f32's ulp is 6e-8 just below
// 1 and 2^-24 = 6e-8 relative), each against the native run of the same arithmetic:
// - WebGPU, against native `softmoe classify` (the WGSL kernels in f32 on lavapipe): the page runs the
//   same WGSL kernels, in the same reduction order, in f32 on SwiftShader. The two software GPUs
//   differ only where they round differently (FMA contraction, the ulp error of exp and tanh), which
//   the 4 blocks carry to a few ulps of the probabilities: measured at most 1.9e-7 over the 64 samples
//   and the four models. TOL_WEBGPU = 1.5e-6, about 8x that.
// - CPU fallback, against native `softmoe classify --cpu`: both run the same f64 reference
//   (`reference::vit_forward`), round the logits to f32 and take the softmax in f32; only libm's last
//   bits differ (Rust's libm in wasm, glibc natively), so they agree to about an ulp of the result:
//   measured at most 2.8e-8. TOL_CPU = 3e-7, about 10x. (Against the f32 GPU program the CPU fallback
//   differs by that program's own round-off, 1.1e-6.)
// f16 expert weights (`softmoe classify --f16`: 11 significant bits, relative error up to 2^-12 per
// weight, in two blocks) move the probabilities by 4.7e-7 to 9.1e-5: past TOL_CPU on every sample
// and past TOL_WEBGPU on most, checked below (F16), so weights swapped for f16 ones fail.
const TOL_WEBGPU = 1.5e-6;
const TOL_CPU = 3e-7;
const tolFor = (backend) => (backend === 'webgpu' ? TOL_WEBGPU : TOL_CPU);
let passed = 0, failed = 0;

function check(cond, what) {
  if (cond) { passed++; } else { failed++; console.error(`FAIL: ${what}`); }
}

const maxDiff = (a, b) => (a.length !== b.length ? Infinity : Math.max(...Array.from(a, (v, i) => Math.abs(v - b[i]))));
const readJsonl = (file) => fs.readFileSync(file, 'utf8').trim().split('\n').map((l) => JSON.parse(l));

// ---- safetensors and PNG, written and read here ----------------------------------------------
function readSafetensors(file) {
  const buf = fs.readFileSync(file);
  const len = Number(buf.readBigUInt64LE(0));
  const header = JSON.parse(buf.subarray(8, 8 + len).toString('utf8'));
  const out = {};
  for (const [name, t] of Object.entries(header)) {
    if (name === '__metadata__') continue;
    const [a, b] = t.data_offsets;
    const bytes = buf.subarray(8 + len + a, 8 + len + b);
    out[name] = { shape: t.shape, data: new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.length)) };
  }
  return out;
}

/** f32 tensors [[name, shape, values]] to safetensors bytes (header padded to 8 bytes). */
function writeSafetensors(tensors) {
  const header = {};
  let offset = 0;
  for (const [name, shape, values] of tensors) {
    header[name] = { dtype: 'F32', shape, data_offsets: [offset, offset + 4 * values.length] };
    offset += 4 * values.length;
  }
  let json = JSON.stringify(header);
  while (json.length % 8) json += ' ';
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(json.length));
  const data = Buffer.concat(tensors.map(([, , v]) => Buffer.from(Float32Array.from(v).buffer)));
  return Buffer.concat([len, Buffer.from(json), data]);
}

const CRC = Array.from({ length: 256 }, (_, n) => { let c = n; for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1; return c >>> 0; });
function crc32(buf) {
  let c = 0xffffffff;
  for (const b of buf) c = CRC[(c ^ b) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

/** An 8-bit RGB PNG (no colour chunks) of width w, height h from rgb(x, y) → [r, g, b]. */
function writePng(w, h, rgb) {
  const chunk = (type, data) => {
    const len = Buffer.alloc(4); len.writeUInt32BE(data.length);
    const body = Buffer.concat([Buffer.from(type, 'ascii'), data]);
    const crc = Buffer.alloc(4); crc.writeUInt32BE(crc32(body));
    return Buffer.concat([len, body, crc]);
  };
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(w, 0); ihdr.writeUInt32BE(h, 4); ihdr[8] = 8; ihdr[9] = 2; // 8 bits, RGB
  const raw = Buffer.alloc(h * (1 + 3 * w));
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) raw.set(rgb(x, y), y * (1 + 3 * w) + 1 + 3 * x);
  return Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), chunk('IHDR', ihdr), chunk('IDAT', zlib.deflateSync(raw)), chunk('IEND', Buffer.alloc(0))]);
}

const MIME = { '.html': 'text/html', '.js': 'text/javascript', '.css': 'text/css', '.wasm': 'application/wasm', '.json': 'application/json', '.ts': 'text/plain' };
// Pages and files the test adds to the site: path → string (HTML) or { type, body }.
const extraPages = {};
// Requests per path, so tests can tell a load from the cache from one over the network.
const requests = {};

function serve() {
  const server = http.createServer((req, res) => {
    const url = new URL(req.url, 'http://x');
    requests[url.pathname] = (requests[url.pathname] ?? 0) + 1;
    const extra = extraPages[url.pathname];
    if (extra !== undefined) {
      const { type, body } = typeof extra === 'string' ? { type: 'text/html', body: extra } : extra;
      res.writeHead(200, { 'content-type': type });
      res.end(body);
      return;
    }
    const rel = url.pathname.endsWith('/') ? url.pathname + 'index.html' : url.pathname;
    const file = path.join(SITE, path.normalize(rel).replace(/^(\.\.[/\\])+/, ''));
    fs.readFile(file, (err, body) => {
      if (err) { res.writeHead(404); res.end('not found'); return; }
      res.writeHead(200, { 'content-type': MIME[path.extname(file)] ?? 'application/octet-stream' });
      res.end(body);
    });
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server)));
}

async function launch(webgpu) {
  const args = ['--headless=new', '--no-sandbox', '--disable-background-networking', '--disable-component-update', '--no-first-run', '--disable-dev-shm-usage'];
  if (webgpu) args.push('--enable-unsafe-webgpu', '--enable-features=Vulkan', '--use-angle=swiftshader', '--use-webgpu-adapter=swiftshader');
  return chromium.launch({ executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium', args, headless: true });
}

function watchErrors(page, errors) {
  page.on('console', (m) => { if (m.type() === 'error') errors.push(m.text()); });
  page.on('pageerror', (e) => errors.push(String(e)));
}

async function waitReady(page) {
  await page.waitForFunction(() => {
    const s = document.querySelector('[data-testid=status]')?.textContent ?? '';
    if (s.startsWith('error')) throw new Error(s);
    return s === 'ready';
  }, null, { timeout: 180_000, polling: 100 });
}

const native = readJsonl(NATIVE);
const nativeCpu = readJsonl(path.join(NATIVE_DIR, 'soft-moe-vit.cpu.jsonl'));
// The reference of each path of the page: the GPU program for WebGPU, the f64 reference for the CPU.
const reference = (backend) => (backend === 'webgpu' ? native : nativeCpu);
const samples = readSafetensors(path.join(SITE, 'models/samples.safetensors'));
const measured = {}; // largest probability differences, printed at the end

// ---- f16 weights: how far they move the probabilities, so the tolerances are shown to catch them ----
{
  const f16 = readJsonl(path.join(NATIVE_DIR, 'soft-moe-vit.f16.jsonl'));
  for (const backend of ['webgpu', 'cpu']) {
    const moved = f16.map((r, k) => maxDiff(r.probs, reference(backend)[k].probs));
    const caught = moved.filter((d) => d > tolFor(backend)).length;
    measured[`f16 vs ${backend} reference`] = `max ${Math.max(...moved).toExponential(2)}, min ${Math.min(...moved).toExponential(2)}; ${caught} of ${moved.length} samples beyond ${tolFor(backend)}`;
    // f16 weights would fail the page's comparison on most samples, not on one by luck.
    check(f16.length === native.length && caught > moved.length / 2,
      `F16: the ${backend} tolerance must tell f16 expert weights from f32 ones: ${measured[`f16 vs ${backend} reference`]}`);
  }
}

// ---- the upload: a colour PNG of a sample at twice its size, classified natively from the same file ----
const UPLOAD_SAMPLE = 3;
const upload = (() => {
  const side = 28, k = UPLOAD_SAMPLE;
  const v = (x, y) => Math.round(255 * samples.images.data[k * side * side + (y >> 1) * side + (x >> 1)]);
  // A warm tint, so the page's colour-to-gray conversion is exercised (and must match the CLI's).
  const png = writePng(2 * side, 2 * side, (x, y) => [v(x, y), Math.round(0.8 * v(x, y)), Math.round(0.55 * v(x, y))]);
  const file = path.join(NATIVE_DIR, 'upload.png');
  fs.writeFileSync(file, png);
  const classify = (extra) => JSON.parse(execFileSync(SOFTMOE, ['classify', '--model', path.join(SITE, 'models/soft-moe-vit'), '--images', file, '--json', ...extra], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim());
  return { png, label: samples.labels.data[k], native: { webgpu: classify([]), cpu: classify(['--cpu']) } };
})();
check(upload.native.webgpu.label === upload.label && upload.native.cpu.label === upload.label,
  `native classify of upload.png gives ${upload.native.webgpu.label} (${upload.native.webgpu.class}), --cpu ${upload.native.cpu.label}; the sample's label is ${upload.label}`);

async function runPage(base, webgpu, indices) {
  const browser = await launch(webgpu);
  const page = await browser.newPage({ viewport: { width: 1360, height: 1400 } });
  const errors = [];
  watchErrors(page, errors);
  const mode = webgpu ? 'webgpu' : 'cpu';
  const tol = tolFor(mode);
  // SwiftShader is a fallback adapter, on which 'auto' picks the CPU path: the WebGPU run asks for it.
  await page.goto(`${base}/?sample=0${webgpu ? '&backend=webgpu' : ''}`);
  await waitReady(page);
  const backend = await page.textContent('[data-testid=backend]');
  check(backend === mode, `${mode} run: backend badge reads "${backend}"`);
  // The page asks for precision 'auto': f16 expert weights only where the adapter has shader-f16.
  const precision = await page.textContent('[data-testid=precision]');
  const shaderF16 = webgpu && (await page.evaluate(async () => (await navigator.gpu.requestAdapter())?.features.has('shader-f16') ?? false));
  check(precision === (webgpu ? (shaderF16 ? 'f16' : 'f32') : 'f64'), `${mode} run: precision badge reads "${precision}" (shader-f16: ${shaderF16})`);
  const nativeF16 = readJsonl(path.join(NATIVE_DIR, 'soft-moe-vit.f16.jsonl'));
  const thread = await page.textContent('[data-testid=thread]');
  check(thread === 'a Web Worker' && page.workers().length === 1, `${mode} run: the page's model runs in "${thread}" (${page.workers().length} workers)`);
  let worst = 0, mismatched = 0;
  for (const k of indices) {
    const got = await page.evaluate((k) => window.softmoeSelect(k), k);
    const want = (precision === 'f16' ? nativeF16 : reference(mode))[k];
    const shown = await page.textContent('[data-testid=prediction]');
    const err = maxDiff(got.probs, want.probs);
    worst = Math.max(worst, err);
    if (got.label !== want.label || shown !== want.class || !(err <= tol) || got.backend !== mode) {
      mismatched++;
      console.error(`sample ${k}: page ${got.label} "${shown}" (${got.backend}) vs native ${want.label} "${want.class}", max |dp| ${err}`);
    }
  }
  check(mismatched === 0, `${mode} run: ${mismatched} of ${indices.length} samples disagree with native classify (tolerance ${tol})`);
  measured[`${mode} page`] = worst;
  console.log(`${mode}: ${indices.length} samples, largest probability difference from native ${worst.toExponential(2)} (tolerance ${tol})`);
  // Heat maps: every slot canvas and the combine map hold more than one colour.
  const blank = await page.evaluate(() => {
    const canvases = [...document.querySelectorAll('.slot canvas'), document.getElementById('combine')];
    return canvases.filter((c) => {
      const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
      for (let i = 4; i < d.length; i += 4) if (d[i] !== d[0] || d[i + 1] !== d[1] || d[i + 2] !== d[2]) return false;
      return true;
    }).length + (canvases.length < 2 ? 1000 : 0);
  });
  check(blank === 0, `${mode} run: ${blank} heat-map canvases are blank`);
  const last = await page.evaluate(() => window.softmoeLast);
  check(last && typeof last.ms === 'number' && last.probs.length === 10 && last.backend === mode, `${mode} run: window.softmoeLast is complete`);
  // Upload: the page classifies the PNG as native `softmoe classify` classifies the same file, and shows it.
  // The current result is marked (waitForFunction gets arguments by value, never the same object),
  // so the wait ends on the next result, not on this one.
  await page.evaluate(() => { window.softmoeLast.stale = true; });
  await page.setInputFiles('#upload', { name: 'upload.png', mimeType: 'image/png', buffer: upload.png });
  await page.waitForFunction(() => !window.softmoeLast.stale && document.querySelector('[data-testid=status]').textContent === 'ready', null, { timeout: 60_000 });
  const up = await page.evaluate(() => ({
    last: window.softmoeLast,
    status: document.querySelector('[data-testid=status]').textContent,
    shown: document.querySelector('[data-testid=prediction]').textContent,
    truth: document.getElementById('truth').textContent,
  }));
  const upWant = upload.native[mode];
  const upErr = maxDiff(up.last.probs, upWant.probs);
  // The upload's native answer is f32's; f16 weights move it by up to ~1e-4 (measured above).
  check(up.last.label === upWant.label && upErr <= (precision === 'f16' ? 1e-3 : tol) && up.last.backend === mode,
    `${mode} run: upload classified as ${up.last.label} (${up.last.backend}), native ${upWant.label}, max |dp| ${upErr} (tolerance ${tol})`);
  check(up.status === 'ready' && up.shown === upWant.class && up.truth === 'your image',
    `${mode} run: upload shown as ${JSON.stringify(up)}, native class ${upWant.class}`);
  measured[`${mode} upload`] = upErr;
  if (webgpu) {
    // Drawing with the mouse classifies what it shows.
    await page.evaluate(() => { window.softmoeLast.stale = true; });
    await page.click('#clear');
    const box = await page.locator('#draw').boundingBox();
    await page.mouse.move(box.x + box.width * 0.3, box.y + box.height * 0.2);
    await page.mouse.down();
    await page.mouse.move(box.x + box.width * 0.7, box.y + box.height * 0.2, { steps: 8 });
    await page.mouse.move(box.x + box.width * 0.5, box.y + box.height * 0.85, { steps: 8 });
    await page.mouse.up();
    await page.waitForFunction(() => !window.softmoeLast.stale && document.querySelector('[data-testid=status]').textContent === 'ready', null, { timeout: 60_000 });
    const drawn = await page.evaluate(() => ({ last: window.softmoeLast, truth: document.getElementById('truth').textContent }));
    check(drawn.last.probs.length === 10 && drawn.truth === 'your image', `drawing was classified: ${JSON.stringify(drawn.truth)}`);
    await page.evaluate(() => window.softmoeSelect(0));
    await page.hover('.slot');
    await page.screenshot({ path: path.join(SHOTS, 'demo-webgpu.png'), fullPage: true });
    await page.setViewportSize({ width: 390, height: 844 });
    await page.screenshot({ path: path.join(SHOTS, 'demo-phone.png'), fullPage: false });
  }
  check(errors.length === 0, `${mode} run: console errors: ${errors.join(' | ')}`);
  await browser.close();
}

// Canvases under `selector` that hold a single colour (nothing drawn), and how many there are.
async function blankCanvases(page, selector) {
  return page.evaluate((sel) => {
    const canvases = [...document.querySelectorAll(sel)];
    const blank = canvases.filter((c) => {
      const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
      let ink = 0;
      for (let i = 4; i < d.length; i += 4) if (d[i] !== d[0] || d[i + 1] !== d[1] || d[i + 2] !== d[2]) ink++;
      return ink < d.length / 4 / 20; // less than 5 % of the pixels differ from the first
    }).length;
    return { count: canvases.length, blank };
  }, selector);
}

async function runAnalysis(base) {
  const browser = await launch(false);
  const page = await browser.newPage({ viewport: { width: 1360, height: 1400 } });
  const errors = [];
  watchErrors(page, errors);
  await page.goto(`${base}/?sample=0`);
  await waitReady(page);
  check(await page.isVisible('#analysis summary'), 'analysis: the Analysis view is offered for soft-moe-vit');
  check(await page.evaluate(() => document.querySelectorAll('#analysis canvas').length) === 0, 'analysis: nothing is drawn before the view is opened');
  await page.click('#analysis summary');
  await page.waitForSelector('[data-testid=analysis-similarity]', { timeout: 30_000 });
  const figs = ['analysis-maps', 'analysis-entropy', 'analysis-classes', 'analysis-similarity'];
  const drawn = await blankCanvases(page, figs.map((f) => `[data-testid=${f}]`).join(','));
  check(drawn.count === 4 && drawn.blank === 0, `analysis: ${drawn.count} figures, ${drawn.blank} blank`);
  const note = await page.textContent('.analysis-note');
  check(/block 3, 10,000 test images/.test(note), `analysis: the view names its block and data set: "${note}"`);
  // The current image's values are on the histograms: one label per slot with its entropy and percentile.
  const notes = await page.textContent('[data-testid=analysis-notes]');
  check(notes.length > 20 && /slot|No slot/.test(notes), `analysis: the image's slots are placed on the distributions: "${notes}"`);
  await page.click('#layers button:first-child');
  const other = await page.textContent('.analysis-note');
  const again = await blankCanvases(page, '#analysis canvas');
  check(/block 2,/.test(other) && again.count === 4 && again.blank === 0, `analysis: block 2's figures after its tab: "${other}", ${JSON.stringify(again)}`);
  await page.locator('#analysis').screenshot({ path: path.join(SHOTS, 'demo-analysis.png') });
  await page.evaluate(() => window.softmoeModel('dense-vit'));
  check(await page.evaluate(() => document.getElementById('analysis').hidden), 'analysis: hidden for the dense model (no analysis.json)');
  check(errors.length === 0, `analysis: console errors: ${errors.join(' | ')}`);
  await browser.close();
}

const MODELS = { 'soft-moe-vit': 'soft', 'dense-vit': 'dense', 'tokens-choice-vit': 'tokens_choice', 'experts-choice-vit': 'experts_choice' };

async function runModels(base) {
  // Launched with WebGPU: every answer here must come from it, not from the CPU fallback.
  const browser = await launch(true);
  const page = await browser.newPage({ viewport: { width: 1360, height: 1400 } });
  const errors = [];
  watchErrors(page, errors);
  await page.goto(`${base}/?sample=0&backend=webgpu`);
  await waitReady(page);
  for (const [name, kind] of Object.entries(MODELS)) {
    const want = readJsonl(path.join(NATIVE_DIR, `${name}.jsonl`));
    await page.evaluate((n) => window.softmoeModel(n), name);
    const badge = await page.textContent('[data-testid=backend]');
    check(badge === 'webgpu', `${name}: backend badge reads "${badge}"`);
    let mismatched = 0, worst = 0;
    const backends = new Set();
    for (let k = 0; k < 8; k++) {
      const got = await page.evaluate((k) => window.softmoeSelect(k), k);
      const err = maxDiff(got.probs, want[k].probs);
      worst = Math.max(worst, err);
      backends.add(got.backend);
      if (got.label !== want[k].label || !(err <= TOL_WEBGPU)) {
        mismatched++;
        console.error(`${name} sample ${k}: page ${got.label} vs native ${want[k].label}, max |dp| ${err}`);
      }
    }
    check(mismatched === 0, `${name}: ${mismatched} of 8 samples disagree with native classify (tolerance ${TOL_WEBGPU})`);
    check(backends.size === 1 && backends.has('webgpu'), `${name}: results came from ${JSON.stringify([...backends])}, not only webgpu`);
    measured[`webgpu ${name}`] = worst;
    const last = await page.evaluate(() => window.softmoeLast);
    const kinds = [...new Set(last.layers.map((l) => l.kind))];
    check(kind === 'dense' ? kinds.length === 0 : kinds.length === 1 && kinds[0] === kind, `${name}: routing layers are ${JSON.stringify(kinds)}`);
    const shown = await page.evaluate(() => ({
      kind: document.getElementById('routing').dataset.kind,
      cards: document.querySelectorAll('#slots .slot').length,
      dropped: document.querySelector('#slots .slot:last-child')?.dataset.dropped,
    }));
    check(shown.kind === kind, `${name}: routing panel shows kind ${shown.kind}`);
    const config = await page.evaluate(() => JSON.parse(window.softmoeConfig()));
    if (kind === 'soft') {
      check(shown.cards === config.num_experts * config.slots_per_expert, `${name}: ${shown.cards} slot cards`);
    } else if (kind !== 'dense') {
      // One card per expert and one for the dropped patches, which counts the last block's drops.
      check(shown.cards === config.num_experts + 1, `${name}: ${shown.cards} expert cards`);
      check(Number(shown.dropped) === last.layers[last.layers.length - 1].dropped, `${name}: dropped card says ${shown.dropped}`);
    }
    const effect = await page.evaluate(() => window.softmoeBatchEffect());
    const panel = await page.evaluate(() => ({ text: document.querySelector('[data-testid=batch-effect]').textContent, identical: document.querySelector('[data-testid=batch-effect]').dataset.identical }));
    if (kind === 'soft' || kind === 'dense') {
      check(effect.identical && effect.maxDiff === 0, `${name}: output changed inside a batch: ${JSON.stringify(effect)}`);
      check(panel.identical === 'true' && panel.text.startsWith('Identical to the bit'), `${name}: batch-effect panel says ${JSON.stringify(panel)}`);
    } else {
      // The README: an image's logits change with the other images of its routing group.
      check(!effect.identical && effect.maxDiff > 0, `${name}: output did not change inside a batch: ${JSON.stringify(effect)}`);
      check(panel.identical === 'false' && panel.text.startsWith('Changed: max |Δlogit|') && panel.text.includes('Dropped patches'), `${name}: batch-effect panel says ${JSON.stringify(panel)}`);
    }
    console.log(`${name}: batch effect ${JSON.stringify(effect)}`);
    if (kind === 'tokens_choice') {
      await page.screenshot({ path: path.join(SHOTS, 'demo-tokens-choice.png'), fullPage: true });
    }
  }
  check(errors.length === 0, `model picker: console errors: ${errors.join(' | ')}`);
  await browser.close();
}

// ---- the npm README: every ```ts example type-checked (tsc --noEmit --strict), compiled, and run --
const README_EXAMPLES = (() => {
  const readme = fs.readFileSync(path.join(SITE, 'pkg/README.md'), 'utf8');
  const blocks = [...readme.matchAll(/```ts\n([\s\S]*?)```/g)].map((m) => m[1]);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'softmoe-readme-'));
  const files = blocks.map((code, i) => { const f = path.join(dir, `example${i}.ts`); fs.writeFileSync(f, code); return f; });
  const tsconfig = {
    compilerOptions: {
      target: 'ES2022', module: 'ES2022', moduleResolution: 'bundler', lib: ['ES2022', 'DOM', 'ESNext.Disposable'],
      strict: true, noEmitOnError: true, skipLibCheck: false, outDir: path.join(dir, 'js'),
      // 'softmoe' is the built package, as an installed one would resolve.
      paths: { softmoe: [path.join(SITE, 'pkg/index.d.ts')] },
    },
    files,
  };
  fs.writeFileSync(path.join(dir, 'tsconfig.json'), JSON.stringify(tsconfig, null, 1));
  const tsc = (args) => { try { execFileSync(TSC, args, { cwd: dir, encoding: 'utf8', stdio: 'pipe' }); return ''; } catch (e) { return `${e.stdout ?? ''}${e.stderr ?? ''}`.trim() || String(e); } };
  const typeErrors = tsc(['--noEmit', '--strict', '-p', dir]);
  const emitErrors = typeErrors ? 'not emitted' : tsc(['-p', dir]);
  const js = emitErrors ? [] : blocks.map((_, i) => fs.readFileSync(path.join(dir, 'js', `example${i}.js`), 'utf8'));
  return { count: blocks.length, typeErrors, emitErrors, js };
})();
check(README_EXAMPLES.count >= 7, `the npm README has ${README_EXAMPLES.count} TypeScript examples`);
check(README_EXAMPLES.typeErrors === '', `tsc --noEmit --strict on the README's examples: ${README_EXAMPLES.typeErrors}`);
check(README_EXAMPLES.emitErrors === '', `tsc emitting the README's examples: ${README_EXAMPLES.emitErrors}`);
README_EXAMPLES.js.forEach((code, i) => { extraPages[`/readme/example${i}.js`] = { type: 'text/javascript', body: code }; });
extraPages['/readme.html'] = '<!doctype html><link rel="icon" href="data:,"><script type="importmap">{"imports":{"softmoe":"/pkg/index.js"}}</script><title>readme</title>';

async function runReadme(base, webgpu) {
  const mode = webgpu ? 'webgpu' : 'cpu';
  const browser = await launch(webgpu);
  const page = await browser.newPage();
  const errors = [], logs = [];
  watchErrors(page, errors);
  page.on('console', (m) => { if (m.type() !== 'error') logs.push(m.text()); });
  await page.goto(`${base}/readme.html`);
  const ran = [];
  for (let i = 0; i < README_EXAMPLES.js.length; i++) {
    const from = logs.length;
    const r = await page.evaluate(async (i) => { try { await import(`/readme/example${i}.js`); return 'ok'; } catch (e) { return `threw ${e.name}: ${e.message}`; } }, i);
    ran.push({ result: r, logs: logs.slice(from) });
  }
  const pre = `README (${mode} browser)`;
  const log = (i, re) => ran[i]?.logs.some((l) => re.test(l));
  check(ran.every((r) => r.result === 'ok'), `${pre}: examples ran: ${JSON.stringify(ran.map((r) => r.result))}`);
  // The first: auto picks the CPU path on SwiftShader (a fallback adapter) and without WebGPU.
  check(log(0, /^backend: cpu \(CPU \(f64 reference in wasm\)\) /) && log(0, webgpu ? /software fallback adapter/ : /no GPU adapter/), `${pre}: example 0 logged ${JSON.stringify(ran[0]?.logs)}`);
  check(log(0, /^fetch \d+\/1501437$/) && log(0, /^ready 1501437\/1501437$/) && log(0, /^8×2 slots, 784 dispatch and 784 combine weights$/) && log(0, / in \d+\.\d ms$/),
    `${pre}: example 0's progress and maps: ${JSON.stringify(ran[0]?.logs)}`);
  check(log(1, /model\.safetensors 1500608 from the cache/) && log(1, /^ready in \d+ ms/) && log(1, /^runs in a worker$/), `${pre}: example 1 logged ${JSON.stringify(ran[1]?.logs)}`);
  check(log(2, /^label \d; after the block: DISPOSED$/), `${pre}: example 2 (worker, using, DisposedError) logged ${JSON.stringify(ran[2]?.logs)}`);
  check(log(3, /^2 entries removed; loaded 829 \+ 1500608 bytes from the network$/), `${pre}: example 3 (cache) logged ${JSON.stringify(ran[3]?.logs)}`);
  const errorsLog = ran[4]?.logs.join('\n') ?? '';
  check(/INPUT: expected shape \[b,28,28\]/.test(errorsLog) && /FETCH: http:\/\/127\.0\.0\.1:\d+\/models\/no-such-model\/config\.json answered 404/.test(errorsLog)
    && /WEIGHTS: model\.safetensors/.test(errorsLog) && (webgpu || /WEBGPU_UNAVAILABLE: no GPU adapter found/.test(errorsLog)), `${pre}: example 4 (errors) logged ${JSON.stringify(errorsLog)}`);
  check(log(5, /^d = 2: y\[0\] = 0\.300419, D\[0, 0\] = 0\.444579$/), `${pre}: example 5 (layer) logged ${JSON.stringify(ran[5]?.logs)}`);
  // The trainer: fine-tunes on WebGPU (SwiftShader), refused with the typed error without it.
  check(webgpu ? log(6, /^step 2: loss \d\.\d{3} at lr 0\.001$/) && log(6, /^accuracy [\d.]+ on 4; reloaded after 2 steps: \S/) : log(6, /^no trainer: no GPU adapter found/),
    `${pre}: example 6 (trainer) logged ${JSON.stringify(ran[6]?.logs)}`);
  // The 404s the error example asks for (both files of the missing folder), nothing else.
  const is404 = (e) => e.startsWith('Failed to load resource: the server responded with a status of 404');
  check(errors.filter(is404).length === 2 && errors.every(is404), `${pre}: console errors: ${errors.join(' | ')}`);
  await browser.close();
}

// ---- SPEC §1's test vectors (computed with the official vmoe code, f32) as layer files ----------
const SMALL_TENSORS = [
  ['Router/mu', [2, 2, 1], [1, 0, 0, 1]],
  ['Router/scale', [], [1]],
  ['Mlp/Dense_0/kernel', [2, 2, 3], [1, 0, -1, 0, 1, 1, 2, 0, 0, 0, -1, 1]],
  ['Mlp/Dense_0/bias', [2, 3], [0, 0.1, 0, 0, 0, -0.1]],
  ['Mlp/Dense_1/kernel', [2, 3, 2], [1, 0, 0, 1, 1, 1, 0.5, 0, 0, 0.5, -1, 1]],
  ['Mlp/Dense_1/bias', [2, 2], [0, 0, 0.1, -0.1]],
];
const SPEC_SMALL = {
  file: writeSafetensors(SMALL_TENSORS),
  x: [1, 0, 0, 1, 1, 1, -1, 0],
  dispatch: [0.4445793, 0.1482273, 0.1635518, 0.4029233, 0.3317016, 0.3006219, 0.0601674, 0.1482273],
  combine0: [0.7310584, 0.2689416], combine2: [0.5, 0.5],
  y: [0.3004188, 0.3167834, 0.0344004, 0.2770616, 0.1674096, 0.2969225, 0.0344004, 0.2770616],
};
const fill = (len, f) => Array.from({ length: len }, (_, t) => f(t));
const SPEC_MEDIUM = {
  file: writeSafetensors([
    ['Router/mu', [8, 4, 2], fill(64, (t) => Math.cos(0.23 * t))],
    ['Router/scale', [], [2]],
    ['Mlp/Dense_0/kernel', [4, 8, 16], fill(512, (t) => 0.3 * Math.sin(0.11 * t + 0.5))],
    ['Mlp/Dense_0/bias', [4, 16], fill(64, (t) => 0.05 * Math.cos(0.7 * t))],
    ['Mlp/Dense_1/kernel', [4, 16, 8], fill(512, (t) => 0.3 * Math.cos(0.13 * t + 0.2))],
    ['Mlp/Dense_1/bias', [4, 8], fill(32, (t) => 0.05 * Math.sin(0.9 * t))],
  ]),
  x: fill(2 * 16 * 8, (t) => Math.sin(0.37 * t + 0.1)),
  row: [0.027438, 0.020500, -0.001984, -0.023410, -0.027964, -0.012589, 0.010712, 0.023965],
  sum: 0.5160407, sumAbs: 4.7418078,
};
// Layer tolerances: SPEC prints the small vector to 7 decimals (half a unit: 5e-8) and the medium
// row to 6 (5e-7); vmoe's own f32 round-off and ours at these sizes (values below 1, sums of at most
// 16 terms) add a few ulps of 3e-8 to 6e-8: 2e-7 on top. Measured 6.5e-8 (small) and 4.5e-7 (row),
// on WebGPU and on the f64 CPU path alike. SPEC gives its sums ±1e-6 (measured 5e-8). Exact erf GELU
// instead of tanh would move the small Y by 5.4e-5 (SPEC): far outside.
const TOL_LAYER_SMALL = 5e-8 + 2e-7;
const TOL_LAYER_ROW = 5e-7 + 2e-7;
extraPages['/blank.html'] = '<!doctype html><link rel="icon" href="data:,"><title>api</title>';
extraPages['/layers/small.safetensors'] = { type: 'application/octet-stream', body: SPEC_SMALL.file };
extraPages['/layers/medium.safetensors'] = { type: 'application/octet-stream', body: SPEC_MEDIUM.file };
// SPEC's small layer with one tensor more, which the layer does not use: refused unless allowUnused.
extraPages['/layers/small-extra.safetensors'] = {
  type: 'application/octet-stream',
  body: writeSafetensors([
    ['Router/mu', [2, 2, 1], [1, 0, 0, 1]],
    ['Router/scale', [], [1]],
    ['Router/bias', [2], [5, 5]],
    ['Mlp/Dense_0/kernel', [2, 2, 3], [1, 0, -1, 0, 1, 1, 2, 0, 0, 0, -1, 1]],
    ['Mlp/Dense_0/bias', [2, 3], [0, 0.1, 0, 0, 0, -0.1]],
    ['Mlp/Dense_1/kernel', [2, 3, 2], [1, 0, 0, 1, 1, 1, 0.5, 0, 0, 0.5, -1, 1]],
    ['Mlp/Dense_1/bias', [2, 2], [0, 0, 0.1, -0.1]],
  ]),
};
// The small layer with a tensor it does not use: refused unless allowUnused.
extraPages['/layers/extra.safetensors'] = { type: 'application/octet-stream', body: writeSafetensors([...SMALL_TENSORS, ['Extra/unused', [2], [1, 2]]]) };
extraPages['/only-config/config.json'] = { type: 'application/json', body: fs.readFileSync(path.join(SITE, 'models/soft-moe-vit/config.json')) };

async function runApi(base, webgpu) {
  const mode = webgpu ? 'webgpu' : 'cpu';
  const browser = await launch(webgpu);
  const page = await browser.newPage();
  const errors = [];
  watchErrors(page, errors);
  await page.goto(`${base}/blank.html`);
  const k = 5;
  const r = await page.evaluate(async ({ k, small, medium, webgpu }) => {
    const api = await import('/pkg/index.js');
    // A rejection as data: its class, code, fields and message.
    const fail = async (f) => {
      try { await f(); return { message: 'resolved' }; } catch (e) {
        const { name, code, file, tensor, key, url, status, expected, expectedShape, reason } = e;
        return { cls: e.constructor.name, name, code, message: String(e.message ?? e), file, tensor, key, url, status, expected, expectedShape, reason, typed: e instanceof api.SoftMoeError && e instanceof Error };
      }
    };
    const errs = {};
    const reason = async (f, as) => { const r = await fail(f); if (as) errs[as] = r; return r.message; };
    const attempt = async (f) => { try { return await f(); } catch (e) { return `rejected: ${e.message ?? e}`; } };
    const out = {};
    const model = await api.loadModel('./models/soft-moe-vit', { backend: webgpu ? 'webgpu' : 'auto' });
    out.backend = model.backend;
    out.fallbackReason = model.fallbackReason;
    out.worker = model.worker;
    out.configObject = { type: typeof model.config, imageSize: model.config.image_size, moeType: model.config.moe_type, names: model.classNames.length };
    const auto = await api.loadModel('./models/soft-moe-vit');
    out.auto = `${auto.backend}: ${auto.fallbackReason}`;
    auto.dispose();
    // Loading.
    out.config = await reason(() => api.loadModelFromBytes('{"image_size": 28}', new Uint8Array([1, 2, 3])), 'config');
    out.weights = await reason(() => api.loadModelFromBytes(JSON.stringify(model.config), new Uint8Array(16)), 'weights');
    out.configType = await reason(() => api.loadModelFromBytes(model.config, new Uint8Array(16)), 'configType');
    out.missingConfig = await reason(() => api.loadModel('./models/no-such-model'), 'missingConfig');
    out.missingWeights = await reason(() => api.loadModel('./only-config/'));
    out.badBackend = await reason(() => api.loadModel('./models/soft-moe-vit', { backend: 'gpu' }), 'badBackend');
    out.backendType = await reason(() => api.loadModel('./models/soft-moe-vit', { backend: 1 }));
    out.unknownOption = await reason(() => api.loadModel('./models/soft-moe-vit', { workers: true }), 'unknownOption');
    out.optionType = await reason(() => api.loadModel('./models/soft-moe-vit', { cache: 'no' }));
    out.classifyOption = await reason(() => model.classify(new Float32Array(784), { map: true }));
    out.asWebgpu = await attempt(async () => (await api.loadModel('./models/soft-moe-vit', { backend: 'webgpu' })).backend);
    errs.asWebgpu = await fail(() => api.loadModel('./models/soft-moe-vit', { backend: 'webgpu' }));
    const cpuModel = await attempt(() => api.loadModel('./models/soft-moe-vit', { backend: 'cpu' }));
    out.asCpu = typeof cpuModel === 'string' ? cpuModel : `${cpuModel.backend}: ${cpuModel.fallbackReason}`;
    // Images: what classify accepts gives the same answer; what it does not is named.
    const samples = await (await fetch('./models/samples.safetensors')).arrayBuffer();
    const len = Number(new DataView(samples).getBigUint64(0, true));
    const header = JSON.parse(new TextDecoder().decode(new Uint8Array(samples, 8, len)));
    const [a] = header.images.data_offsets;
    const pixels = new Float32Array(samples.slice(8 + len + a + 4 * 784 * k, 8 + len + a + 4 * 784 * (k + 1)));
    const imageData = new ImageData(28, 28);
    pixels.forEach((v, i) => imageData.data.set([Math.round(255 * v), Math.round(255 * v), Math.round(255 * v), 255], 4 * i));
    const canvas = Object.assign(document.createElement('canvas'), { width: 28, height: 28 });
    canvas.getContext('2d').putImageData(imageData, 0, 0);
    const big = Object.assign(document.createElement('canvas'), { width: 56, height: 56 });
    big.getContext('2d').imageSmoothingEnabled = false;
    big.getContext('2d').drawImage(canvas, 0, 0, 56, 56);
    const probs = async (image) => attempt(async () => Array.from((await model.classify(image)).probs));
    out.probs = { float32: await probs(pixels), array: await probs(Array.from(pixels)), imageData: await probs(imageData), canvas: await probs(canvas), big: await probs(big) };
    out.label = (await model.classify(pixels)).label;
    out.cpuProbs = await attempt(async () => Array.from((await cpuModel.classify(pixels)).probs));
    // Precision: f32 by default; 'auto' takes f16 expert weights where the adapter has shader-f16.
    out.precision = model.precision;
    out.shaderF16 = webgpu ? (await navigator.gpu.requestAdapter())?.features.has('shader-f16') ?? false : false;
    const autoF16 = await api.loadModel('./models/soft-moe-vit', { backend: webgpu ? 'webgpu' : 'auto', precision: 'auto' });
    out.autoPrecision = autoF16.precision;
    out.autoProbs = Array.from((await autoF16.classify(pixels)).probs);
    out.f32Probs = Array.from((await model.classify(pixels)).probs);
    autoF16.dispose();
    errs.f16Dense = await fail(() => api.loadModel('./models/dense-vit', { backend: webgpu ? 'webgpu' : 'auto', precision: 'f16' }));
    out.precisionType = await reason(() => api.loadModel('./models/soft-moe-vit', { precision: 'half' }));
    out.string = await reason(() => model.classify('shirt.png'), 'string');
    out.number = await reason(() => model.classify(7));
    out.null = await reason(() => model.classify(null));
    out.int32 = await reason(() => model.classify(new Int32Array(784)));
    out.emptyCanvas = await reason(() => model.classify(Object.assign(document.createElement('canvas'), { width: 0, height: 0 })));
    out.batchInt32 = await reason(() => model.classifyBatch(new Int32Array(784)));
    out.batchArray = await reason(() => model.classifyBatch(Array.from(pixels)));
    // The wasm's own check, below the package: wasm-bindgen would convert an Int32Array silently.
    const wasm = await import('/pkg/softmoe_wasm.js');
    await wasm.default();
    const configText = await (await fetch('./models/soft-moe-vit/config.json')).text();
    const weightBytes = new Uint8Array(await (await fetch('./models/soft-moe-vit/model.safetensors')).arrayBuffer());
    const raw = await wasm.Model.load(configText, weightBytes, { backend: 'cpu' });
    out.wasmInt32 = await reason(() => raw.classify(new Int32Array(784), false));
    out.wasmOptions = await reason(() => wasm.Model.load(configText, weightBytes, { backend: 'cpu', bogus: 1 }));
    raw.free();
    out.nan = await reason(() => model.classify(new Float32Array(784).fill(NaN)));
    out.range = await reason(() => model.classify(new Float32Array(784).fill(255)));
    out.size = await reason(() => model.classify(new Float32Array(700)), 'size');
    out.arraySize = await reason(() => model.classify(new Array(783).fill(0)));
    out.batchSize = await reason(() => model.classifyBatch(new Float32Array(784 * 2 + 1)));
    // The bare layer, on SPEC §1's vectors, from a URL and from bytes, on the default backend and the CPU.
    const smallBytes = new Uint8Array(await (await fetch('/layers/small.safetensors')).arrayBuffer());
    const run = async (layer, x, b, m) => { const o = await layer.forward(new Float32Array(x), b, m); return { backend: layer.backend, y: Array.from(o.y), dispatch: Array.from(o.dispatch), combine: Array.from(o.combine) }; };
    const layerBackend = { backend: webgpu ? 'webgpu' : 'auto' };
    const layer = await api.loadLayer('/layers/small.safetensors', layerBackend);
    out.small = await run(layer, small, 1, 4);
    out.smallBytesCpu = await run(await api.loadLayer(smallBytes, { backend: 'cpu' }), small, 1, 4);
    out.medium = await run(await api.loadLayer('/layers/medium.safetensors', layerBackend), medium, 2, 16);
    out.mediumCpu = await run(await api.loadLayer('/layers/medium.safetensors', { backend: 'cpu' }), medium, 2, 16);
    out.layerAsWebgpu = await attempt(async () => (await api.loadLayer(smallBytes, { backend: 'webgpu' })).backend);
    out.layer404 = await reason(() => api.loadLayer('/layers/no-such-layer.safetensors'));
    out.layerBytes = await reason(() => api.loadLayer(new Uint8Array(16)));
    out.layerType = await reason(() => api.loadLayer(42));
    out.layerBackend = await reason(() => api.loadLayer(smallBytes, { backend: 'GPU' }));
    out.layerUnused = await reason(() => api.loadLayer('/layers/small-extra.safetensors'));
    out.layerUnusedAllowed = await run(await api.loadLayer('/layers/small-extra.safetensors', { allowUnused: true }), small, 1, 4);
    out.allowUnusedType = await reason(() => api.loadLayer(smallBytes, { allowUnused: 'yes' }));
    out.modelUnusedType = await reason(() => api.loadModel('./models/soft-moe-vit', { allowUnused: 1 }));
    // Without Router/mu: the header names it nowhere else.
    const text = new TextDecoder().decode(smallBytes.subarray(8, 8 + Number(new DataView(smallBytes.buffer).getBigUint64(0, true))));
    const noMu = new TextEncoder().encode(text.replace('"Router/mu"', '"Router/nu"'));
    out.layerMissing = await reason(() => api.loadLayer(new Uint8Array([...smallBytes.subarray(0, 8), ...noMu, ...smallBytes.subarray(8 + noMu.length)])), 'layerMissing');
    out.forwardSize = await reason(() => layer.forward(new Float32Array(7), 1, 4), 'forwardSize');
    out.forwardInt32 = await reason(() => layer.forward(new Int32Array(8), 1, 4));
    out.forwardArray = await reason(() => layer.forward(small, 1, 4));
    errs.unused = await fail(() => api.loadLayer('/layers/extra.safetensors', { backend: 'cpu' }));
    out.allowUnused = await attempt(async () => Array.from((await (await api.loadLayer('/layers/extra.safetensors', { backend: 'cpu', allowUnused: true })).forward(new Float32Array(small), 1, 4)).y));
    // Disposal: later calls, and one in flight, reject with DisposedError; Symbol.dispose disposes.
    layer.dispose();
    out.layerDisposed = await reason(() => layer.forward(new Float32Array(8), 1, 4), 'layerDisposed');
    const batch = new Float32Array(784 * 32);
    const inFlight = fail(() => model.classifyBatch(batch));
    model.dispose();
    const settle = (p) => Promise.race([p, new Promise((res) => setTimeout(() => res({ message: 'still pending after 30 s' }), 30_000))]);
    errs.inFlight = await settle(inFlight);
    errs.disposed = await fail(() => model.classify(pixels));
    errs.disposedPixels = await fail(() => model.pixels(imageData));
    out.disposedFlag = model.disposed;
    cpuModel[Symbol.dispose]();
    errs.symbolDisposed = await fail(() => cpuModel.classify(pixels));
    out.errs = errs;
    return out;
  }, { k, small: SPEC_SMALL.x, medium: SPEC_MEDIUM.x, webgpu });

  const pre = `api (${mode} browser)`;
  // The backend: auto picks WebGPU where there is an adapter, else the CPU and says why.
  check(r.backend === mode && (webgpu ? r.fallbackReason === null : /no GPU adapter/.test(r.fallbackReason ?? '')) && r.worker === true, `${pre}: gives ${r.backend} (${r.fallbackReason}), worker ${r.worker}`);
  // 'auto' on SwiftShader (isFallbackAdapter) prefers the CPU path, and says why.
  check(webgpu ? /^cpu: the WebGPU adapter is a software fallback adapter \(isFallbackAdapter/.test(r.auto) : /^cpu: no GPU adapter found/.test(r.auto), `${pre}: backend 'auto' gives ${r.auto}`);
  check(r.configObject.type === 'object' && r.configObject.imageSize === 28 && r.configObject.moeType === 'soft' && r.configObject.names === 10, `${pre}: config as an object: ${JSON.stringify(r.configObject)}`);
  // Typed errors: the class of each kind, its code, and the fields that say what is wrong.
  const e = r.errs;
  const typed = (x, cls, code) => x && x.typed && x.cls === cls && x.name === cls && x.code === code;
  check(typed(e.config, 'ConfigError', 'CONFIG') && e.config.file === 'config.json' && typeof e.config.key === 'string' && e.config.key.length > 0, `${pre}: bad config: ${JSON.stringify(e.config)}`);
  check(typed(e.weights, 'WeightsError', 'WEIGHTS') && e.weights.file === 'model.safetensors' && e.weights.tensor === null, `${pre}: bad weights: ${JSON.stringify(e.weights)}`);
  check(typed(e.layerMissing, 'WeightsError', 'WEIGHTS') && e.layerMissing.file === 'layer.safetensors' && e.layerMissing.tensor === 'Router/mu', `${pre}: layer without Router/mu: ${JSON.stringify(e.layerMissing)}`);
  check(typed(e.missingConfig, 'FetchError', 'FETCH') && e.missingConfig.status === 404 && e.missingConfig.url === `${base}/models/no-such-model/config.json`, `${pre}: 404: ${JSON.stringify(e.missingConfig)}`);
  check(typed(e.configType, 'InputError', 'INPUT') && typed(e.badBackend, 'InputError', 'INPUT') && typed(e.string, 'InputError', 'INPUT') && typed(e.unknownOption, 'InputError', 'INPUT'), `${pre}: input errors: ${JSON.stringify([e.configType, e.badBackend, e.string, e.unknownOption])}`);
  check(typed(e.size, 'InputError', 'INPUT') && JSON.stringify(e.size.expectedShape) === '["b",28,28]' && e.size.expected === 'b·784 values', `${pre}: wrong image size names the shape: ${JSON.stringify(e.size)}`);
  check(typed(e.forwardSize, 'InputError', 'INPUT') && JSON.stringify(e.forwardSize.expectedShape) === '[1,4,2]', `${pre}: wrong layer input names the shape: ${JSON.stringify(e.forwardSize)}`);
  check(typed(e.unused, 'WeightsError', 'WEIGHTS') && e.unused.tensor === 'Extra/unused' && e.unused.file === '/layers/extra.safetensors' && /allowUnused/.test(e.unused.message),
    `${pre}: a layer file with a tensor it does not use: ${JSON.stringify(e.unused)}`);
  check(Array.isArray(r.allowUnused) && maxDiff(r.allowUnused, SPEC_SMALL.y) <= TOL_LAYER_SMALL, `${pre}: ... loaded with allowUnused: ${JSON.stringify(r.allowUnused)}`);
  check(r.unknownOption.includes('no option `workers`') && r.optionType.includes('cache must be true or false, got a string') && r.classifyOption.includes('no option `map`'), `${pre}: options checked: ${r.unknownOption} | ${r.optionType} | ${r.classifyOption}`);
  check(r.wasmOptions.includes('load options') && r.wasmOptions.includes('bogus'), `${pre}: the wasm's load options checked: ${r.wasmOptions}`);
  if (!webgpu) check(typed(e.asWebgpu, 'WebGpuUnavailableError', 'WEBGPU_UNAVAILABLE') && /no GPU adapter found/.test(e.asWebgpu.reason), `${pre}: backend 'webgpu' without an adapter: ${JSON.stringify(e.asWebgpu)}`);
  check(typed(e.inFlight, 'DisposedError', 'DISPOSED') && typed(e.disposed, 'DisposedError', 'DISPOSED') && typed(e.disposedPixels, 'DisposedError', 'DISPOSED') && r.disposedFlag === true,
    `${pre}: a disposed model refuses calls (one in flight included): ${JSON.stringify([e.inFlight, e.disposed, e.disposedPixels])}`);
  check(typed(e.layerDisposed, 'DisposedError', 'DISPOSED') && typed(e.symbolDisposed, 'DisposedError', 'DISPOSED'), `${pre}: disposed layer and Symbol.dispose: ${JSON.stringify([e.layerDisposed, e.symbolDisposed])}`);
  check(r.asCpu.startsWith('cpu: ') && r.asCpu.includes('requested'), `${pre}: backend 'cpu' gives ${r.asCpu}`);
  // f16 expert weights: only where asked ('auto') and the adapter can; they move the probabilities a little, not by nothing.
  const autoMoved = maxDiff(r.autoProbs, r.f32Probs);
  measured[`precision 'auto' (${mode}, ${r.autoPrecision}) vs f32`] = autoMoved.toExponential(2);
  check(r.precision === (webgpu ? 'f32' : 'f64'), `${pre}: default precision is ${r.precision}`);
  check(r.autoPrecision === (webgpu ? (r.shaderF16 ? 'f16' : 'f32') : 'f64'), `${pre}: precision 'auto' gives ${r.autoPrecision} (shader-f16: ${r.shaderF16})`);
  check(r.autoPrecision === 'f16' ? autoMoved > 0 && autoMoved <= 1e-3 : autoMoved === 0, `${pre}: precision ${r.autoPrecision} moves the probabilities by ${autoMoved}`);
  check(typed(e.f16Dense, 'ConfigError', 'CONFIG') && e.f16Dense.key === 'precision' && e.f16Dense.message.includes('no Soft MoE block'), `${pre}: precision 'f16' for a dense model: ${JSON.stringify(e.f16Dense)}`);
  check(r.precisionType.includes('precision must be one of f32, f16, auto') && r.precisionType.includes('`half`'), `${pre}: a bad precision: ${r.precisionType}`);
  if (webgpu) check(r.asWebgpu === 'webgpu', `${pre}: backend 'webgpu' gives ${r.asWebgpu}`);
  else check(r.asWebgpu.startsWith('rejected: ') && r.asWebgpu.includes('`webgpu` was requested') && r.asWebgpu.includes('no WebGPU adapter'), `${pre}: backend 'webgpu' without an adapter must reject, not fall back: ${r.asWebgpu}`);
  // Loading errors name the file, the URL and status, the option and its allowed values.
  check(r.config.includes('config.json'), `${pre}: bad config rejected: ${r.config}`);
  check(r.weights.includes('safetensors'), `${pre}: bad weights rejected: ${r.weights}`);
  check(r.configType.includes('config.json as a string') && r.configType.includes('Object'), `${pre}: config object rejected: ${r.configType}`);
  check(r.missingConfig.includes('./models/no-such-model/config.json') && r.missingConfig.includes('HTTP 404'), `${pre}: missing model folder: ${r.missingConfig}`);
  check(r.missingWeights.includes('./only-config/model.safetensors') && r.missingWeights.includes('HTTP 404'), `${pre}: missing weights: ${r.missingWeights}`);
  check(r.badBackend.includes('`gpu`') && r.badBackend.includes('auto, webgpu, cpu'), `${pre}: bad backend string: ${r.badBackend}`);
  check(r.backendType.includes('auto, webgpu, cpu') && r.backendType.includes('a number'), `${pre}: non-string backend: ${r.backendType}`);
  // Images: a Float32Array, an array, a 28×28 ImageData or canvas of the same pixels give the same
  // answer bit for bit, and native's within tolerance; a 56×56 canvas is resized and classified alike.
  const want = reference(mode)[k];
  const same = ['array', 'imageData', 'canvas'].filter((f) => JSON.stringify(r.probs[f]) !== JSON.stringify(r.probs.float32));
  check(Array.isArray(r.probs.float32) && same.length === 0, `${pre}: ${same.join(', ')} give other probabilities than the Float32Array: ${JSON.stringify(r.probs)}`);
  check(r.label === want.label && maxDiff(r.probs.float32, want.probs) <= tolFor(mode), `${pre}: sample ${k} gives ${r.label}, native ${want.label}, max |dp| ${maxDiff(r.probs.float32, want.probs)}`);
  check(Array.isArray(r.cpuProbs) && maxDiff(r.cpuProbs, nativeCpu[k].probs) <= TOL_CPU, `${pre}: sample ${k} on backend 'cpu': max |dp| from native --cpu ${maxDiff(r.cpuProbs, nativeCpu[k].probs)}`);
  check(Array.isArray(r.probs.big) && r.probs.big.indexOf(Math.max(...r.probs.big)) === want.label, `${pre}: a 56×56 canvas of the sample: ${JSON.stringify(r.probs.big)}`);
  const imageMsg = 'a Float32Array or array of 28·28 values in [0, 1], an ImageData or a canvas';
  check(r.string.includes(imageMsg) && r.string.endsWith('got a string'), `${pre}: string image: ${r.string}`);
  check(r.number.includes(imageMsg) && r.number.endsWith('got a number'), `${pre}: number image: ${r.number}`);
  check(r.null.includes(imageMsg) && r.null.endsWith('got null'), `${pre}: null image: ${r.null}`);
  check(r.int32.includes(imageMsg) && r.int32.endsWith('got Int32Array'), `${pre}: Int32Array image: ${r.int32}`);
  check(r.emptyCanvas.includes('canvas is empty (0×0)'), `${pre}: empty canvas: ${r.emptyCanvas}`);
  check(r.batchInt32.includes('classifyBatch takes a Float32Array of b·28·28 values') && r.batchInt32.endsWith('got Int32Array'), `${pre}: classifyBatch of an Int32Array: ${r.batchInt32}`);
  check(r.batchArray.includes('classifyBatch takes a Float32Array') && r.batchArray.endsWith('got Array'), `${pre}: classifyBatch of an array: ${r.batchArray}`);
  check(r.wasmInt32.includes('pixels (b·784 grayscale values in [0, 1]) must be a Float32Array, got Int32Array'), `${pre}: the wasm's classify of an Int32Array: ${r.wasmInt32}`);
  check(r.nan.includes('pixel 0 is NaN'), `${pre}: NaN pixels rejected: ${r.nan}`);
  check(r.range.includes('pixel 0 is 255, outside [0, 1]'), `${pre}: 0..255 pixels rejected: ${r.range}`);
  check(r.size.includes('700 values') && r.size.includes('784'), `${pre}: wrong image size rejected: ${r.size}`);
  check(r.arraySize.includes('783 values') && r.arraySize.includes('784'), `${pre}: wrong array length rejected: ${r.arraySize}`);
  check(r.batchSize.includes('1569 values') && r.batchSize.includes('784'), `${pre}: a batch that is not whole images rejected: ${r.batchSize}`);
  // The layer against vmoe's numbers, on this browser's default backend and on the CPU (f64 reference).
  for (const [name, o, backend] of [['small', r.small, mode], ['small, bytes, cpu', r.smallBytesCpu, 'cpu']]) {
    const err = Math.max(maxDiff(o.y, SPEC_SMALL.y), maxDiff(o.dispatch, SPEC_SMALL.dispatch), maxDiff(o.combine.slice(0, 2), SPEC_SMALL.combine0), maxDiff(o.combine.slice(4, 6), SPEC_SMALL.combine2));
    measured[`layer ${name} (${mode} browser)`] = err;
    check(o.backend === backend && o.combine.length === 8 && err <= TOL_LAYER_SMALL, `${pre}: layer ${name} on ${o.backend}: max difference from SPEC's small vector ${err} (tolerance ${TOL_LAYER_SMALL})`);
  }
  for (const [name, o, backend] of [['medium', r.medium, mode], ['medium, cpu', r.mediumCpu, 'cpu']]) {
    const err = maxDiff(o.y.slice(0, 8), SPEC_MEDIUM.row);
    const sum = o.y.reduce((s, v) => s + v, 0), sumAbs = o.y.reduce((s, v) => s + Math.abs(v), 0);
    measured[`layer ${name} (${mode} browser)`] = `row ${err.toExponential(2)}, sum ${Math.abs(sum - SPEC_MEDIUM.sum).toExponential(2)}, sum|.| ${Math.abs(sumAbs - SPEC_MEDIUM.sumAbs).toExponential(2)}`;
    check(o.backend === backend && o.y.length === 256 && o.dispatch.length === 256 && err <= TOL_LAYER_ROW && Math.abs(sum - SPEC_MEDIUM.sum) <= 1e-6 && Math.abs(sumAbs - SPEC_MEDIUM.sumAbs) <= 1e-6,
      `${pre}: layer ${name} on ${o.backend}: Y[0,0,:] off by ${err}, sum(Y) ${sum}, sum(|Y|) ${sumAbs}`);
  }
  if (webgpu) check(r.layerAsWebgpu === 'webgpu', `${pre}: layer with backend 'webgpu' gives ${r.layerAsWebgpu}`);
  else check(r.layerAsWebgpu.startsWith('rejected: ') && r.layerAsWebgpu.includes('no WebGPU adapter'), `${pre}: layer with backend 'webgpu' without an adapter: ${r.layerAsWebgpu}`);
  check(r.layer404.includes('/layers/no-such-layer.safetensors') && r.layer404.includes('HTTP 404'), `${pre}: missing layer file: ${r.layer404}`);
  check(r.layerBytes.includes('layer.safetensors') && r.layerBytes.includes('not a valid safetensors file'), `${pre}: bad layer bytes: ${r.layerBytes}`);
  check(r.layerType.includes('a URL or a Uint8Array') && r.layerType.endsWith('got a number'), `${pre}: layer from a number: ${r.layerType}`);
  check(r.layerBackend.includes('`GPU`') && r.layerBackend.includes('auto, webgpu, cpu'), `${pre}: layer with a bad backend: ${r.layerBackend}`);
  check(r.layerMissing.includes('Router/mu'), `${pre}: layer without Router/mu: ${r.layerMissing}`);
  // A tensor the layer does not use: named, and loaded (without it) only when allowed.
  check(r.layerUnused.includes('tensor `Router/bias` is not used by the config') && r.layerUnused.includes('allowUnused'), `${pre}: layer with an unused tensor: ${r.layerUnused}`);
  check(maxDiff(r.layerUnusedAllowed.y, SPEC_SMALL.y) <= TOL_LAYER_SMALL, `${pre}: layer with an unused tensor, allowed: ${JSON.stringify(r.layerUnusedAllowed.y)}`);
  check(r.allowUnusedType.includes('allowUnused must be true or false') && r.allowUnusedType.endsWith('got a string'), `${pre}: a non-boolean allowUnused: ${r.allowUnusedType}`);
  check(r.modelUnusedType.includes('allowUnused must be true or false') && r.modelUnusedType.endsWith('got a number'), `${pre}: a non-boolean allowUnused for a model: ${r.modelUnusedType}`);
  check(r.forwardSize.includes('tensor of shape [1, 4, 2]: expected 8 values, found 7 values'), `${pre}: layer input of the wrong size: ${r.forwardSize}`);
  check(r.forwardInt32.includes('x (batch·tokens·2 values) must be a Float32Array, got Int32Array'), `${pre}: layer input as Int32Array: ${r.forwardInt32}`);
  check(r.forwardArray.includes('must be a Float32Array, got Array'), `${pre}: layer input as an array: ${r.forwardArray}`);
  // Chromium logs each failed fetch; the four 404s asked for above (model folder: both files; the
  // folder without weights; the layer) are expected, nothing else.
  const is404 = (e) => e.startsWith('Failed to load resource: the server responded with a status of 404');
  check(errors.filter(is404).length === 4 && errors.every(is404), `${pre}: console errors: ${errors.join(' | ')}`);
  await browser.close();
}

// ---- load progress, warm-up and the Cache API ----------------------------------------------------
// In the page: sample k's pixels from samples.safetensors.
const SAMPLE_PIXELS = async (k) => {
  const buf = await (await fetch('./models/samples.safetensors')).arrayBuffer();
  const len = Number(new DataView(buf).getBigUint64(0, true));
  const header = JSON.parse(new TextDecoder().decode(new Uint8Array(buf, 8, len)));
  const [a] = header.images.data_offsets;
  return new Float32Array(buf.slice(8 + len + a + 4 * 784 * k, 8 + len + a + 4 * 784 * (k + 1)));
};
const WEIGHTS_PATH = '/models/soft-moe-vit/model.safetensors';
const WEIGHTS_BYTES = fs.statSync(path.join(SITE, 'models/soft-moe-vit/model.safetensors')).size;
const CONFIG_BYTES = fs.statSync(path.join(SITE, 'models/soft-moe-vit/config.json')).size;
const median = (v) => [...v].sort((a, b) => a - b)[Math.floor(v.length / 2)];

async function runLoad(base, webgpu) {
  const mode = webgpu ? 'webgpu' : 'cpu';
  const pre = `load (${mode} browser)`;
  const browser = await launch(webgpu);
  const page = await browser.newPage();
  const errors = [];
  watchErrors(page, errors);
  await page.goto(`${base}/blank.html`);
  await page.evaluate(`window.samplePixels = ${SAMPLE_PIXELS}`);
  const k = 5;
  const want = reference(mode)[k];
  const weightFetches = () => requests[WEIGHTS_PATH] ?? 0;
  // Load, then classify sample k: the events, the report, and load→first-result.
  const loadOnce = (opts) => page.evaluate(async ({ opts, k }) => {
    const api = await import('/pkg/index.js');
    const px = await window.samplePixels(k);
    const events = [];
    const t0 = performance.now();
    const model = await api.loadModel('./models/soft-moe-vit', { ...opts, onProgress: (p) => events.push(p) });
    const tLoaded = performance.now();
    const first = await model.classify(px);
    const tFirst = performance.now();
    const rest = [];
    for (let i = 0; i < 5; i++) { const t = performance.now(); await model.classify(px); rest.push(performance.now() - t); }
    const out = { events, report: model.loadReport, backend: model.backend, loadMs: tLoaded - t0, firstMs: tFirst - tLoaded, loadToFirst: tFirst - t0, rest, probs: Array.from(first.probs), label: first.label };
    model.dispose();
    return out;
  }, { opts, k });
  const backend = webgpu ? 'webgpu' : 'auto';
  const removed = await page.evaluate(async () => (await import('/pkg/index.js')).clearCache());
  const before = weightFetches();
  const cold = await loadOnce({ backend });
  const afterCold = weightFetches();
  const cached = await loadOnce({ backend });
  const afterCached = weightFetches();
  check(removed === 0 && afterCold === before + 1 && cold.report.files.every((f) => !f.fromCache && f.evicted === null && f.notCached === null),
    `${pre}: a cold load fetches the weights once: ${afterCold - before} fetches, ${JSON.stringify(cold.report.files)}`);
  check(afterCached === afterCold && cached.report.files.every((f) => f.fromCache) && cached.report.files[1].bytes === WEIGHTS_BYTES,
    `${pre}: the second load reads the Cache API, not the network: ${afterCached - afterCold} fetches, ${JSON.stringify(cached.report.files)}`);
  for (const [name, r] of [['cold', cold], ['cached', cached]]) {
    check(r.backend === mode && r.label === want.label && maxDiff(r.probs, want.probs) <= tolFor(mode), `${pre}: ${name} load classifies sample ${k} as ${r.label} on ${r.backend}, max |dp| ${maxDiff(r.probs, want.probs)}`);
  }
  // Progress: the bytes rise to config + weights with the total known, then every stage in order.
  const stages = [...new Set(cold.events.map((e) => e.stage))];
  const wantStages = webgpu ? ['fetch', 'parse', 'device', 'upload', 'compile', 'warmup', 'ready'] : ['fetch', 'parse', 'device', 'warmup', 'ready'];
  const bytes = cold.events.filter((e) => e.stage === 'fetch').map((e) => e.bytesLoaded);
  const last = cold.events[cold.events.length - 1];
  check(JSON.stringify(stages) === JSON.stringify(wantStages) && bytes.length >= 3 && bytes.every((b, i) => i === 0 || b >= bytes[i - 1])
    && last.bytesLoaded === WEIGHTS_BYTES + CONFIG_BYTES && last.bytesTotal === WEIGHTS_BYTES + CONFIG_BYTES,
    `${pre}: progress: stages ${JSON.stringify(stages)}, ${bytes.length} byte reports ending ${bytes[bytes.length - 1]}, last ${JSON.stringify(last)}`);
  check(wantStages.slice(1, -1).every((st) => typeof cold.report.timings[st] === 'number') && cold.report.timings.total > 0, `${pre}: stage timings ${JSON.stringify(cold.report.timings)}`);
  // Warm-up: the first classify after the load is not the slow one. On WebGPU, without warm-up it
  // pays for compiling every pipeline (seconds on SwiftShader): with it, it must take under a fifth
  // of that; and on both paths it stays within 4× + 50 ms of the classifies after it (loose: this
  // shared 2-core host stalls for a few hundred ms now and then).
  const steady = median(cold.rest);
  const cold2 = await loadOnce({ backend, warmup: false });
  const noWarmStages = [...new Set(cold2.events.map((e) => e.stage))];
  check(!noWarmStages.includes('warmup') && !noWarmStages.includes('compile'), `${pre}: warmup: false skips the warm-up: ${JSON.stringify(noWarmStages)}`);
  check(cold.firstMs <= 4 * steady + 50 && cached.firstMs <= 4 * median(cached.rest) + 50 && (!webgpu || Math.max(cold.firstMs, cached.firstMs) < cold2.firstMs / 5),
    `${pre}: the first classify after the load takes ${cold.firstMs.toFixed(1)} ms (cached: ${cached.firstMs.toFixed(1)}), the next ones ${steady.toFixed(1)}; without warm-up the first takes ${cold2.firstMs.toFixed(0)} ms`);
  measured[`${pre}: load→first result`] = `cold ${cold.loadToFirst.toFixed(0)} ms (load ${cold.loadMs.toFixed(0)} + first ${cold.firstMs.toFixed(1)}), cached ${cached.loadToFirst.toFixed(0)} ms (load ${cached.loadMs.toFixed(0)} + first ${cached.firstMs.toFixed(1)}); steady ${steady.toFixed(1)} ms/image; without warm-up the first takes ${cold2.firstMs.toFixed(0)} ms; stages ${JSON.stringify(Object.fromEntries(Object.entries(cold.report.timings).map(([k, v]) => [k, Math.round(v)])))}`;
  // A corrupted entry (one byte flipped, or cut short, under the stored size and hash) is found,
  // evicted and fetched again, and the model is the same; then the fresh copy is cached again.
  const corrupt = (how) => page.evaluate(async ({ how, url }) => {
    const api = await import('/pkg/index.js');
    const cache = await caches.open(api.CACHE_NAME);
    const res = await cache.match(url);
    if (!res) return 'no cached entry';
    const body = new Uint8Array(await res.arrayBuffer());
    const bad = how === 'flip' ? body : body.subarray(0, body.length - 100);
    if (how === 'flip') bad[body.length >> 1] ^= 0x40;
    await cache.put(url, new Response(bad, { headers: res.headers }));
    return 'corrupted';
  }, { how, url: `${base}${WEIGHTS_PATH}` });
  for (const [how, evicted] of [['flip', /^SHA-256 mismatch$/], ['truncate', new RegExp(`^size ${WEIGHTS_BYTES - 100} ≠ ${WEIGHTS_BYTES} bytes$`)]]) {
    const done = await corrupt(how);
    const n0 = weightFetches();
    const r = await loadOnce({ backend });
    const n1 = weightFetches();
    const again = await loadOnce({ backend });
    const w = r.report.files[1];
    check(done === 'corrupted' && evicted.test(w.evicted ?? '') && !w.fromCache && n1 === n0 + 1 && weightFetches() === n1 && again.report.files[1].fromCache,
      `${pre}: cache entry (${how}): ${done}, report ${JSON.stringify(w)}, ${n1 - n0} fetches, then ${again.report.files[1].fromCache ? 'cached' : 'not cached'}`);
    check(JSON.stringify(r.probs) === JSON.stringify(cold.probs), `${pre}: the model loaded after evicting the ${how}ed entry gives other probabilities`);
  }
  const n0 = weightFetches();
  const off = await loadOnce({ backend, cache: false });
  check(weightFetches() === n0 + 1 && off.report.files.every((f) => !f.fromCache && /cache: false/.test(f.notCached ?? '')), `${pre}: cache: false fetches: ${JSON.stringify(off.report.files)}`);
  check(errors.length === 0, `${pre}: console errors: ${errors.join(' | ')}`);
  await browser.close();
}

// ---- recovery after the GPU device is lost (device.destroy()), on the page and in the worker ------
// Makes every GPUDevice that records commands reachable as self.__devices, in the scope it runs in.
const CAPTURE_DEVICES = () => {
  const orig = GPUDevice.prototype.createCommandEncoder;
  self.__devices = new Set();
  GPUDevice.prototype.createCommandEncoder = function (...args) { self.__devices.add(this); return orig.apply(this, args); };
};
const DESTROY_DEVICES = () => { const n = self.__devices.size; for (const d of self.__devices) d.destroy(); self.__devices.clear(); return n; };
const NO_ADAPTER = () => { navigator.gpu.requestAdapter = async () => null; };

async function runRecovery(base, inWorker) {
  const pre = `recovery (${inWorker ? 'worker' : 'page'})`;
  const browser = await launch(true);
  const page = await browser.newPage();
  const errors = [];
  watchErrors(page, errors);
  await page.goto(`${base}/blank.html`);
  await page.evaluate(`window.samplePixels = ${SAMPLE_PIXELS}`);
  if (!inWorker) await page.evaluate(CAPTURE_DEVICES);
  const k = 5;
  const loaded = await page.evaluate(async ({ inWorker, k }) => {
    const api = await import('/pkg/index.js');
    window.api = api;
    window.px = await window.samplePixels(k);
    window.events = [];
    const model = await api.loadModel('./models/soft-moe-vit', { backend: 'webgpu', worker: inWorker });
    for (const type of ['devicelost', 'backendchange']) model.addEventListener(type, (ev) => window.events.push({ type, ...ev.detail, at: performance.now() }));
    window.model = model;
    return { backend: model.backend, worker: model.worker };
  }, { inWorker, k });
  const scope = inWorker ? page.workers()[0] : page;
  if (inWorker) await scope.evaluate(CAPTURE_DEVICES);
  const settle = (what, p, ms = 60_000) => Promise.race([p, new Promise((res) => setTimeout(() => res({ hung: `${what}: still pending after ${ms / 1000} s` }), ms))]);
  // Classify to capture the device, start a batch of 64, destroy the device while it runs.
  const killDuringCall = async () => {
    await page.evaluate(() => window.model.classify(window.px));
    await page.evaluate(() => { window.inFlight = window.model.classifyBatch(new Float32Array(64 * 784).fill(0.5)).then(() => ({ resolved: true }), (e) => ({ cls: e.constructor.name, code: e.code, reason: e.reason, message: e.message })); });
    await new Promise((r) => setTimeout(r, 150));
    const destroyed = await scope.evaluate(DESTROY_DEVICES);
    const inFlight = await settle('the call in flight', page.evaluate(() => window.inFlight));
    const t0 = Date.now();
    const next = await settle('the next call', page.evaluate(async () => { try { const r = await window.model.classify(window.px); return { backend: r.backend, probs: Array.from(r.probs), label: r.label, model: { backend: window.model.backend, fallbackReason: window.model.fallbackReason } }; } catch (e) { return { error: `${e.constructor.name}: ${e.message}` }; } }));
    return { destroyed, inFlight, next, nextMs: Date.now() - t0, events: await page.evaluate(() => window.events.splice(0)) };
  };
  check(loaded.backend === 'webgpu' && loaded.worker === inWorker, `${pre}: loaded on ${loaded.backend}, worker ${loaded.worker}`);
  const first = await killDuringCall();
  check(first.destroyed === 1 && first.inFlight.cls === 'DeviceLostError' && first.inFlight.code === 'DEVICE_LOST' && /Destroyed/.test(first.inFlight.reason ?? ''),
    `${pre}: the call in flight when the device died: ${JSON.stringify(first.inFlight)} (${first.destroyed} devices destroyed)`);
  check(first.next.backend === 'webgpu' && first.next.model?.backend === 'webgpu' && first.next.label === native[k].label && maxDiff(first.next.probs, native[k].probs) <= TOL_WEBGPU,
    `${pre}: the next call runs on a new device with the weights uploaded again: ${JSON.stringify({ ...first.next, probs: undefined })}, max |dp| ${first.next.probs ? maxDiff(first.next.probs, native[k].probs) : '-'}`);
  const [lost, change] = first.events;
  check(first.events.length === 2 && lost.type === 'devicelost' && /Destroyed/.test(lost.reason) && change.type === 'backendchange' && change.backend === 'webgpu' && /new device was created/.test(change.reason),
    `${pre}: events ${JSON.stringify(first.events)}`);
  // Again, with no adapter to be had: the model moves to the CPU and says why.
  await scope.evaluate(NO_ADAPTER);
  const second = await killDuringCall();
  check(second.inFlight.cls === 'DeviceLostError', `${pre}: second loss, call in flight: ${JSON.stringify(second.inFlight)}`);
  check(second.next.backend === 'cpu' && second.next.label === nativeCpu[k].label && maxDiff(second.next.probs, nativeCpu[k].probs) <= TOL_CPU
    && /lost .* re-creating it failed/.test(second.next.model?.fallbackReason ?? ''), `${pre}: without an adapter the next call runs on the CPU: ${JSON.stringify({ ...second.next, probs: undefined })}`);
  check(second.events.map((e) => `${e.type}:${e.backend ?? ''}`).join(',') === 'devicelost:,backendchange:cpu', `${pre}: events ${JSON.stringify(second.events)}`);
  measured[`${pre}: the call after a loss`] = `${first.nextMs} ms (new device), ${second.nextMs} ms (to the CPU)`;
  // Uncaptured errors from the dead device are expected in the console (WebGPU logs them), nothing else.
  const unexpected = errors.filter((e) => !/softmoe: uncaptured wgpu error|Device|destroyed|lost/i.test(e));
  check(unexpected.length === 0, `${pre}: console errors: ${unexpected.join(' | ')}`);
  await browser.close();
}

// ---- the worker: the default, the same results as on the page, the main thread left free -------
async function runWorker(base) {
  const pre = 'worker';
  const browser = await launch(true);
  const page = await browser.newPage();
  const errors = [];
  watchErrors(page, errors);
  await page.goto(`${base}/blank.html`);
  await page.evaluate(`window.samplePixels = ${SAMPLE_PIXELS}`);
  const r = await page.evaluate(async () => {
    const api = await import('/pkg/index.js');
    const batch = new Float32Array(8 * 784);
    for (let k = 0; k < 8; k++) batch.set(await window.samplePixels(k), k * 784);
    const out = {};
    for (const backend of ['webgpu', 'cpu']) {
      const inWorker = await api.loadModel('./models/soft-moe-vit', { backend });
      const onPage = await api.loadModel('./models/soft-moe-vit', { backend, worker: false });
      const a = await inWorker.classifyBatch(batch, { maps: true });
      const b = await onPage.classifyBatch(batch, { maps: true });
      const flat = (rs) => JSON.stringify(rs.map((x) => [Array.from(x.logits), x.layers.map((l) => [Array.from(l.dispatch), Array.from(l.combine)])]));
      out[backend] = { worker: [inWorker.worker, onPage.worker], same: flat(a) === flat(b), backends: [a[0].backend, b[0].backend], batchIntact: batch.length === 8 * 784 && batch[200] === (await window.samplePixels(0))[200] };
      // The main thread while a batch of 64 runs: the longest gap between 4 ms timer ticks.
      const gap = async (model) => {
        let last = performance.now(), worst = 0;
        const timer = setInterval(() => { const now = performance.now(); worst = Math.max(worst, now - last); last = now; }, 4);
        const t0 = performance.now();
        await model.classifyBatch(new Float32Array(64 * 784).fill(0.5));
        const ms = performance.now() - t0;
        clearInterval(timer);
        // The gap still open when the batch ends (the whole batch, when it blocked this thread).
        worst = Math.max(worst, performance.now() - last);
        return { worst, ms };
      };
      if (backend === 'cpu') out.gap = { worker: await gap(inWorker), page: await gap(onPage) };
      inWorker.dispose();
      onPage.dispose();
    }
    return out;
  });
  for (const backend of ['webgpu', 'cpu']) {
    const x = r[backend];
    check(x.worker[0] === true && x.worker[1] === false && x.backends.join() === `${backend},${backend}` && x.same && x.batchIntact,
      `${pre} (${backend}): logits and maps from the worker equal the page's bit for bit, and the caller's pixels are left as they were: ${JSON.stringify(x)}`);
  }
  check(r.gap.worker.worst < 100 && r.gap.page.worst > 2 * r.gap.worker.worst, `${pre}: the page's longest stall while a batch of 64 runs: ${r.gap.worker.worst.toFixed(0)} ms in worker mode, ${r.gap.page.worst.toFixed(0)} ms on the page`);
  measured[`${pre}: main-thread stall during a CPU batch of 64`] = `worker ${r.gap.worker.worst.toFixed(0)} ms (batch ${r.gap.worker.ms.toFixed(0)} ms), page ${r.gap.page.worst.toFixed(0)} ms (batch ${r.gap.page.ms.toFixed(0)} ms)`;
  // Disposed models end their workers.
  const t0 = Date.now();
  while (page.workers().length > 0 && Date.now() - t0 < 10_000) await new Promise((res) => setTimeout(res, 50));
  check(page.workers().length === 0, `${pre}: ${page.workers().length} workers still running after dispose()`);
  check(errors.length === 0, `${pre}: console errors: ${errors.join(' | ')}`);
  await browser.close();
}

const server = await serve();
const base = `http://127.0.0.1:${server.address().port}`;
const t0 = Date.now();
try {
  if (part('page')) await runPage(base, true, [...Array(native.length).keys()]);
  if (part('page')) await runPage(base, false, [...Array(native.length).keys()]);
  if (part('models')) await runModels(base);
  if (part('readme')) await runReadme(base, true);
  if (part('readme')) await runReadme(base, false);
  if (part('api')) await runApi(base, true);
  if (part('api')) await runApi(base, false);
  if (part('load')) await runLoad(base, true);
  if (part('load')) await runLoad(base, false);
  if (part('recovery')) await runRecovery(base, false);
  if (part('recovery')) await runRecovery(base, true);
  if (part('worker')) await runWorker(base);
  if (part('train')) await runTrain({ base, launch, check, watchErrors, waitReady, measured, samples, SITE, SOFTMOE, NATIVE_DIR, SHOTS, TOL_WEBGPU });
  if (part('analysis')) await runAnalysis(base);
} catch (e) {
  failed++;
  console.error(`FAIL: ${e.stack ?? e}`);
}
server.close();
for (const [what, v] of Object.entries(measured)) console.log(`measured: ${what}: ${typeof v === 'number' ? v.toExponential(2) : v}`);
console.log(`browser: ${passed} passed, ${failed} failed (${((Date.now() - t0) / 1000).toFixed(0)} s)`);
process.exit(failed === 0 ? 0 : 1);
