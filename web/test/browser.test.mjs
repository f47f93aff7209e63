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
// The npm package, in both browsers: the README example verbatim (WebGPU), the bare layer
// (`loadLayer`, against SPEC §1's vmoe test vectors) and every error path — bad config or weights,
// HTTP 404s, bad backend strings, `backend: 'webgpu'` without an adapter, wrong image types and sizes,
// bad layer input — each rejecting with a message that names what is wrong.
//
// env: SITE (the built site, target/web), NATIVE (native JSON lines of soft-moe-vit), NATIVE_DIR
//      (native JSON lines per model, <name>.jsonl, and soft-moe-vit.{cpu,f16}.jsonl from `--cpu` and
//      `--f16`; the test writes upload.png there), SOFTMOE
//      (the native binary, default NATIVE_DIR/../release/softmoe), SHOTS (screenshot folder),
//      CHROMIUM (default /usr/bin/chromium)
import { chromium } from 'playwright-core';
import http from 'node:http';
import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import { execFileSync } from 'node:child_process';

const SITE = process.env.SITE;
const NATIVE = process.env.NATIVE;
const NATIVE_DIR = process.env.NATIVE_DIR ?? path.dirname(NATIVE);
const SOFTMOE = process.env.SOFTMOE ?? path.join(NATIVE_DIR, '..', 'release', 'softmoe');
const SHOTS = process.env.SHOTS ?? path.join(SITE, '..');

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

function serve() {
  const server = http.createServer((req, res) => {
    const url = new URL(req.url, 'http://x');
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
  await page.goto(`${base}/?sample=0`);
  await waitReady(page);
  const backend = await page.textContent('[data-testid=backend]');
  check(backend === mode, `${mode} run: backend badge reads "${backend}"`);
  let worst = 0, mismatched = 0;
  for (const k of indices) {
    const got = await page.evaluate((k) => window.softmoeSelect(k), k);
    const want = reference(mode)[k];
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
  const beforeUpload = await page.evaluate(() => window.softmoeLast);
  await page.setInputFiles('#upload', { name: 'upload.png', mimeType: 'image/png', buffer: upload.png });
  await page.waitForFunction((b) => window.softmoeLast !== b && document.querySelector('[data-testid=status]').textContent === 'ready', beforeUpload, { timeout: 60_000 });
  const up = await page.evaluate(() => ({
    last: window.softmoeLast,
    status: document.querySelector('[data-testid=status]').textContent,
    shown: document.querySelector('[data-testid=prediction]').textContent,
    truth: document.getElementById('truth').textContent,
  }));
  const upWant = upload.native[mode];
  const upErr = maxDiff(up.last.probs, upWant.probs);
  check(up.last.label === upWant.label && upErr <= tol && up.last.backend === mode,
    `${mode} run: upload classified as ${up.last.label} (${up.last.backend}), native ${upWant.label}, max |dp| ${upErr} (tolerance ${tol})`);
  check(up.status === 'ready' && up.shown === upWant.class && up.truth === 'your image',
    `${mode} run: upload shown as ${JSON.stringify(up)}, native class ${upWant.class}`);
  measured[`${mode} upload`] = upErr;
  if (webgpu) {
    // Drawing with the mouse classifies what it shows.
    const before = await page.evaluate(() => window.softmoeLast);
    await page.click('#clear');
    const box = await page.locator('#draw').boundingBox();
    await page.mouse.move(box.x + box.width * 0.3, box.y + box.height * 0.2);
    await page.mouse.down();
    await page.mouse.move(box.x + box.width * 0.7, box.y + box.height * 0.2, { steps: 8 });
    await page.mouse.move(box.x + box.width * 0.5, box.y + box.height * 0.85, { steps: 8 });
    await page.mouse.up();
    await page.waitForFunction((b) => window.softmoeLast !== b && document.querySelector('[data-testid=status]').textContent === 'ready', before, { timeout: 60_000 });
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

const MODELS = { 'soft-moe-vit': 'soft', 'dense-vit': 'dense', 'tokens-choice-vit': 'tokens_choice', 'experts-choice-vit': 'experts_choice' };

async function runModels(base) {
  // Launched with WebGPU: every answer here must come from it, not from the CPU fallback.
  const browser = await launch(true);
  const page = await browser.newPage({ viewport: { width: 1360, height: 1400 } });
  const errors = [];
  watchErrors(page, errors);
  await page.goto(`${base}/?sample=0`);
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

async function runReadme(base) {
  // The npm README's example, verbatim, with 'softmoe' mapped to the built package.
  const readme = fs.readFileSync(path.join(SITE, 'pkg/README.md'), 'utf8');
  const code = readme.match(/```js\n([\s\S]*?)```/)[1];
  extraPages['/readme.html'] = `<!doctype html><link rel="icon" href="data:,"><script type="importmap">{"imports":{"softmoe":"/pkg/index.js"}}</script>
<script type="module">${code}\nwindow.readmeResult = { className: result.className, backend: model.backend, slots: experts * slotsPerExpert, d: dispatch.length };</script>`;
  const browser = await launch(true);
  const page = await browser.newPage();
  const errors = [], logs = [];
  watchErrors(page, errors);
  page.on('console', (m) => logs.push(m.text()));
  await page.goto(`${base}/readme.html`);
  await page.waitForFunction(() => window.readmeResult, null, { timeout: 120_000 });
  const r = await page.evaluate(() => window.readmeResult);
  check(r.backend === 'webgpu' && typeof r.className === 'string' && r.d === 49 * r.slots, `README example ran: ${JSON.stringify(r)}`);
  check(logs.some((l) => l.startsWith('backend: webgpu')), 'README example logged its backend');
  check(errors.length === 0, `README example: console errors: ${errors.join(' | ')}`);
  await browser.close();
}

// ---- SPEC §1's test vectors (computed with the official vmoe code, f32) as layer files ----------
const SPEC_SMALL = {
  file: writeSafetensors([
    ['Router/mu', [2, 2, 1], [1, 0, 0, 1]],
    ['Router/scale', [], [1]],
    ['Mlp/Dense_0/kernel', [2, 2, 3], [1, 0, -1, 0, 1, 1, 2, 0, 0, 0, -1, 1]],
    ['Mlp/Dense_0/bias', [2, 3], [0, 0.1, 0, 0, 0, -0.1]],
    ['Mlp/Dense_1/kernel', [2, 3, 2], [1, 0, 0, 1, 1, 1, 0.5, 0, 0, 0.5, -1, 1]],
    ['Mlp/Dense_1/bias', [2, 2], [0, 0, 0.1, -0.1]],
  ]),
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
extraPages['/only-config/config.json'] = { type: 'application/json', body: fs.readFileSync(path.join(SITE, 'models/soft-moe-vit/config.json')) };

async function runApi(base, webgpu) {
  const mode = webgpu ? 'webgpu' : 'cpu';
  const browser = await launch(webgpu);
  const page = await browser.newPage();
  const errors = [];
  watchErrors(page, errors);
  await page.goto(`${base}/blank.html`);
  const k = 5;
  const r = await page.evaluate(async ({ k, small, medium }) => {
    const api = await import('/pkg/index.js');
    const reason = async (f) => { try { await f(); return 'resolved'; } catch (e) { return String(e.message ?? e); } };
    const attempt = async (f) => { try { return await f(); } catch (e) { return `rejected: ${e.message ?? e}`; } };
    const out = {};
    const model = await api.loadModel('./models/soft-moe-vit');
    out.backend = model.backend;
    out.fallbackReason = model.fallbackReason;
    // Loading.
    out.config = await reason(() => api.loadModelFromBytes('{"image_size": 28}', new Uint8Array([1, 2, 3])));
    out.weights = await reason(() => api.loadModelFromBytes(JSON.stringify(model.config), new Uint8Array(16)));
    out.configType = await reason(() => api.loadModelFromBytes(model.config, new Uint8Array(16)));
    out.missingConfig = await reason(() => api.loadModel('./models/no-such-model'));
    out.missingWeights = await reason(() => api.loadModel('./only-config/'));
    out.badBackend = await reason(() => api.loadModel('./models/soft-moe-vit', { backend: 'gpu' }));
    out.backendType = await reason(() => api.loadModel('./models/soft-moe-vit', { backend: 1 }));
    out.asWebgpu = await attempt(async () => (await api.loadModel('./models/soft-moe-vit', { backend: 'webgpu' })).backend);
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
    out.string = await reason(() => model.classify('shirt.png'));
    out.number = await reason(() => model.classify(7));
    out.null = await reason(() => model.classify(null));
    out.int32 = await reason(() => model.classify(new Int32Array(784)));
    out.emptyCanvas = await reason(() => model.classify(Object.assign(document.createElement('canvas'), { width: 0, height: 0 })));
    out.batchInt32 = await reason(() => model.classifyBatch(new Int32Array(784)));
    out.batchArray = await reason(() => model.classifyBatch(Array.from(pixels)));
    out.wasmInt32 = await reason(() => model.model.classify(new Int32Array(784), false));
    out.nan = await reason(() => model.classify(new Float32Array(784).fill(NaN)));
    out.range = await reason(() => model.classify(new Float32Array(784).fill(255)));
    out.size = await reason(() => model.classify(new Float32Array(700)));
    out.arraySize = await reason(() => model.classify(new Array(783).fill(0)));
    out.batchSize = await reason(() => model.classifyBatch(new Float32Array(784 * 2 + 1)));
    // The bare layer, on SPEC §1's vectors, from a URL and from bytes, on the default backend and the CPU.
    const smallBytes = new Uint8Array(await (await fetch('/layers/small.safetensors')).arrayBuffer());
    const run = async (layer, x, b, m) => { const o = await layer.forward(new Float32Array(x), b, m); return { backend: layer.backend, y: Array.from(o.y), dispatch: Array.from(o.dispatch), combine: Array.from(o.combine) }; };
    const layer = await api.loadLayer('/layers/small.safetensors');
    out.small = await run(layer, small, 1, 4);
    out.smallBytesCpu = await run(await api.loadLayer(smallBytes, { backend: 'cpu' }), small, 1, 4);
    out.medium = await run(await api.loadLayer('/layers/medium.safetensors'), medium, 2, 16);
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
    out.layerMissing = await reason(() => api.loadLayer(new Uint8Array([...smallBytes.subarray(0, 8), ...noMu, ...smallBytes.subarray(8 + noMu.length)])));
    out.forwardSize = await reason(() => layer.forward(new Float32Array(7), 1, 4));
    out.forwardInt32 = await reason(() => layer.forward(new Int32Array(8), 1, 4));
    out.forwardArray = await reason(() => layer.forward(small, 1, 4));
    return out;
  }, { k, small: SPEC_SMALL.x, medium: SPEC_MEDIUM.x });

  const pre = `api (${mode} browser)`;
  // The backend: auto picks WebGPU where there is an adapter, else the CPU and says why.
  check(r.backend === mode && (webgpu ? r.fallbackReason === null : /WebGPU|adapter/i.test(r.fallbackReason ?? '')), `${pre}: auto gives ${r.backend} (${r.fallbackReason})`);
  check(r.asCpu.startsWith('cpu: ') && r.asCpu.includes('requested'), `${pre}: backend 'cpu' gives ${r.asCpu}`);
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

const server = await serve();
const base = `http://127.0.0.1:${server.address().port}`;
const t0 = Date.now();
try {
  await runPage(base, true, [...Array(native.length).keys()]);
  await runPage(base, false, [...Array(native.length).keys()]);
  await runModels(base);
  await runReadme(base);
  await runApi(base, true);
  await runApi(base, false);
} catch (e) {
  failed++;
  console.error(`FAIL: ${e.stack ?? e}`);
}
server.close();
for (const [what, v] of Object.entries(measured)) console.log(`measured: ${what}: ${typeof v === 'number' ? v.toExponential(2) : v}`);
console.log(`browser: ${passed} passed, ${failed} failed (${((Date.now() - t0) / 1000).toFixed(0)} s)`);
process.exit(failed === 0 ? 0 : 1);
