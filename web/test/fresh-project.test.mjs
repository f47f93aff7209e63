// The npm package as a web developer uses it: `npm pack` of the built package, installed into a
// fresh project, bundled with vite (worker, wasm and all), the bundle served on its own and run in
// Debian's headless Chromium, with WebGPU (SwiftShader) and without it (the CPU fallback):
// classify against the native answers, progress seen, the second load read from the Cache API, a
// device loss survived (in the worker), a disposed model refused. Also the demo server: the wasm
// sent brotli- or gzip-compressed where accepted, and the page working over it.
//
// env: PKG (the built package, target/npm/softmoe), SITE (the built site, for its models),
//      NATIVE_DIR (native JSON lines: soft-moe-vit.jsonl and soft-moe-vit.cpu.jsonl), XTASK (the
//      xtask binary, for `xtask serve`), CHROMIUM (default /usr/bin/chromium)
import { chromium } from 'playwright-core';
import { build } from 'vite';
import http from 'node:http';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import zlib from 'node:zlib';
import { execFileSync, spawn } from 'node:child_process';

const PKG = process.env.PKG;
const SITE = process.env.SITE;
const NATIVE_DIR = process.env.NATIVE_DIR;
const XTASK = process.env.XTASK;
const TOL_WEBGPU = 1.5e-6, TOL_CPU = 3e-7; // as browser.test.mjs derives them
let passed = 0, failed = 0;
function check(cond, what) {
  if (cond) { passed++; } else { failed++; console.error(`FAIL: ${what}`); }
}
const maxDiff = (a, b) => (a.length !== b.length ? Infinity : Math.max(...Array.from(a, (v, i) => Math.abs(v - b[i]))));
const readJsonl = (file) => fs.readFileSync(file, 'utf8').trim().split('\n').map((l) => JSON.parse(l));
const native = { webgpu: readJsonl(path.join(NATIVE_DIR, 'soft-moe-vit.jsonl')), cpu: readJsonl(path.join(NATIVE_DIR, 'soft-moe-vit.cpu.jsonl')) };
const measured = {};
const t0 = Date.now();

// ---- a fresh project: the packed tarball installed, a page bundled by vite -----------------------
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'softmoe-fresh-'));
const tarball = execFileSync('npm', ['pack', '--silent', '--pack-destination', dir], { cwd: PKG, encoding: 'utf8' }).trim().split('\n').pop();
fs.writeFileSync(path.join(dir, 'package.json'), JSON.stringify({ name: 'fresh', private: true, type: 'module' }, null, 1));
execFileSync('npm', ['install', '--no-audit', '--no-fund', '--offline', `./${tarball}`], { cwd: dir, stdio: 'pipe' });
const installed = JSON.parse(fs.readFileSync(path.join(dir, 'node_modules/softmoe/package.json'), 'utf8'));
const packedFiles = fs.readdirSync(path.join(dir, 'node_modules/softmoe')).sort();
check(['index.js', 'index.d.ts', 'worker.js', 'softmoe_wasm.js', 'softmoe_wasm_bg.wasm', 'README.md'].every((f) => packedFiles.includes(f)) && !packedFiles.some((f) => f.endsWith('.ts') && !f.endsWith('.d.ts')),
  `the tarball ${tarball} holds ${packedFiles.join(', ')}`);
// The page: what a developer writes, importing the package by name.
fs.writeFileSync(path.join(dir, 'index.html'), '<!doctype html><html><head><link rel="icon" href="data:,"><title>fresh</title></head><body><script type="module" src="./main.js"></script></body></html>');
fs.writeFileSync(path.join(dir, 'main.js'), `import * as softmoe from 'softmoe';
window.softmoe = softmoe;
document.title = 'ready';
`);
// Its model, as a developer would ship it: in vite's public folder.
fs.mkdirSync(path.join(dir, 'public/models'), { recursive: true });
fs.cpSync(path.join(SITE, 'models/soft-moe-vit'), path.join(dir, 'public/models/soft-moe-vit'), { recursive: true });
fs.copyFileSync(path.join(SITE, 'models/samples.safetensors'), path.join(dir, 'public/models/samples.safetensors'));
await build({ root: dir, logLevel: 'warn', build: { outDir: path.join(dir, 'dist'), emptyOutDir: true } });
const dist = path.join(dir, 'dist');
const assets = fs.readdirSync(path.join(dist, 'assets'));
check(assets.some((f) => f.endsWith('.wasm')) && assets.filter((f) => f.endsWith('.js')).length >= 2, `vite's bundle: ${assets.join(', ')} (the wasm and the worker as their own files)`);

const MIME = { '.html': 'text/html', '.js': 'text/javascript', '.wasm': 'application/wasm', '.json': 'application/json' };
const requests = {};
const server = http.createServer((req, res) => {
  const url = new URL(req.url, 'http://x');
  requests[url.pathname] = (requests[url.pathname] ?? 0) + 1;
  const rel = url.pathname.endsWith('/') ? `${url.pathname}index.html` : url.pathname;
  fs.readFile(path.join(dist, path.normalize(rel).replace(/^(\.\.[/\\])+/, '')), (err, body) => {
    if (err) { res.writeHead(404); res.end('not found'); return; }
    res.writeHead(200, { 'content-type': MIME[path.extname(rel)] ?? 'application/octet-stream' });
    res.end(body);
  });
});
await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
const base = `http://127.0.0.1:${server.address().port}`;

async function launch(webgpu) {
  const args = ['--headless=new', '--no-sandbox', '--disable-background-networking', '--disable-component-update', '--no-first-run', '--disable-dev-shm-usage'];
  if (webgpu) args.push('--enable-unsafe-webgpu', '--enable-features=Vulkan', '--use-angle=swiftshader', '--use-webgpu-adapter=swiftshader');
  return chromium.launch({ executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium', args, headless: true });
}

const K = 7;
async function runFresh(webgpu) {
  const mode = webgpu ? 'webgpu' : 'cpu';
  const pre = `fresh project (${mode} browser)`;
  const browser = await launch(webgpu);
  const page = await browser.newPage();
  const errors = [];
  page.on('console', (m) => { if (m.type() === 'error') errors.push(m.text()); });
  page.on('pageerror', (e) => errors.push(String(e)));
  await page.goto(`${base}/`);
  await page.waitForFunction(() => document.title === 'ready', null, { timeout: 60_000 });
  const weights = () => requests['/models/soft-moe-vit/model.safetensors'] ?? 0;
  const run = (opts) => page.evaluate(async ({ opts, k }) => {
    const buf = await (await fetch('./models/samples.safetensors')).arrayBuffer();
    const len = Number(new DataView(buf).getBigUint64(0, true));
    const header = JSON.parse(new TextDecoder().decode(new Uint8Array(buf, 8, len)));
    const [a] = header.images.data_offsets;
    window.px = new Float32Array(buf.slice(8 + len + a + 4 * 784 * k, 8 + len + a + 4 * 784 * (k + 1)));
    const stages = new Set();
    const t0 = performance.now();
    const model = await window.softmoe.loadModel('./models/soft-moe-vit', { ...opts, onProgress: (p) => stages.add(p.stage) });
    const r = await model.classify(window.px);
    const ms = performance.now() - t0;
    window.model = model;
    return { backend: model.backend, worker: model.worker, fallbackReason: model.fallbackReason, label: r.label, probs: Array.from(r.probs), stages: [...stages], files: model.loadReport.files, ms };
  }, { opts, k: K });
  const opts = { backend: webgpu ? 'webgpu' : 'auto' };
  const n0 = weights();
  const first = await run(opts);
  await page.evaluate(() => window.model.dispose());
  const n1 = weights();
  const second = await run(opts);
  const want = native[mode][K];
  for (const [name, r] of [['first', first], ['second', second]]) {
    check(r.backend === mode && r.worker && r.label === want.label && maxDiff(r.probs, want.probs) <= (webgpu ? TOL_WEBGPU : TOL_CPU),
      `${pre}: ${name} load: ${r.backend} in a worker ${r.worker}, label ${r.label} (native ${want.label}), max |dp| ${maxDiff(r.probs, want.probs)}`);
  }
  check(first.stages.join() === (webgpu ? 'fetch,parse,device,upload,compile,warmup,ready' : 'fetch,parse,device,warmup,ready'), `${pre}: progress stages ${first.stages}`);
  check(n1 === n0 + 1 && weights() === n1 && second.files.every((f) => f.fromCache), `${pre}: the second load from the cache: ${weights() - n1} more fetches, ${JSON.stringify(second.files.map((f) => f.fromCache))}`);
  if (!webgpu) check(/no GPU adapter/.test(first.fallbackReason ?? ''), `${pre}: the CPU fallback says why: ${first.fallbackReason}`);
  measured[`${pre}: load→first result`] = `cold ${first.ms.toFixed(0)} ms, cached ${second.ms.toFixed(0)} ms`;
  if (webgpu) {
    // A device loss in the worker: the GPUDevice destroyed there; the next call runs on a new one.
    const worker = page.workers()[0];
    await worker.evaluate(() => {
      const orig = GPUDevice.prototype.createCommandEncoder;
      self.__devices = new Set();
      GPUDevice.prototype.createCommandEncoder = function (...args) { self.__devices.add(this); return orig.apply(this, args); };
    });
    await page.evaluate(() => window.model.classify(window.px));
    await page.evaluate(() => { window.lostSeen = new Promise((r) => window.model.addEventListener('devicelost', () => r(true), { once: true })); });
    const destroyed = await worker.evaluate(() => { for (const d of self.__devices) d.destroy(); return self.__devices.size; });
    // A loss is reported asynchronously: a call made before the page hears of it can still start on
    // the dead device and reject with DeviceLostError, as a call in flight does. The page waits for
    // the `devicelost` event, as an application would; the call after it must run on a new device.
    const heard = await page.evaluate(() => Promise.race([window.lostSeen, new Promise((r) => setTimeout(() => r(false), 30_000))]));
    check(heard === true, `${pre}: the devicelost event after device.destroy() in the worker`);
    const after = await Promise.race([
      page.evaluate(async () => { const r = await window.model.classify(window.px); return { backend: r.backend, label: r.label, probs: Array.from(r.probs) }; }),
      new Promise((res) => setTimeout(() => res({ hung: true }), 60_000)),
    ]);
    check(destroyed === 1 && after.backend === 'webgpu' && after.label === want.label && maxDiff(after.probs, want.probs) <= TOL_WEBGPU, `${pre}: after device.destroy() in the worker: ${JSON.stringify({ ...after, probs: undefined })}`);
  }
  const refused = await page.evaluate(async () => {
    window.model.dispose();
    try { await window.model.classify(window.px); return 'resolved'; } catch (e) { return `${e instanceof window.softmoe.DisposedError} ${e.code}`; }
  });
  check(refused === 'true DISPOSED', `${pre}: a disposed model: ${refused}`);
  const unexpected = errors.filter((e) => !(webgpu && /uncaptured wgpu error|destroyed|lost/i.test(e)));
  check(unexpected.length === 0, `${pre}: console errors: ${unexpected.join(' | ')}`);
  await browser.close();
}

// ---- the demo server: compressed where accepted, and the page over it ----------------------------
async function runDemoServer() {
  const pre = 'demo server';
  const child = spawn(XTASK, ['serve', SITE, '127.0.0.1:0'], { stdio: ['ignore', 'pipe', 'inherit'] });
  try {
    const url = await new Promise((resolve, reject) => {
      let out = '';
      child.stdout.on('data', (d) => { out += d; const m = out.match(/http:\/\/127\.0\.0\.1:\d+\//); if (m) resolve(m[0]); });
      child.on('exit', (code) => reject(new Error(`xtask serve exited with ${code}`)));
      setTimeout(() => reject(new Error('xtask serve printed no address')), 30_000);
    });
    const raw = fs.readFileSync(path.join(SITE, 'pkg/softmoe_wasm_bg.wasm'));
    const get = (accept) => new Promise((resolve, reject) => {
      http.get(`${url}pkg/softmoe_wasm_bg.wasm`, { headers: accept ? { 'accept-encoding': accept } : {} }, (res) => {
        const chunks = [];
        res.on('data', (c) => chunks.push(c));
        res.on('end', () => resolve({ encoding: res.headers['content-encoding'] ?? null, type: res.headers['content-type'], body: Buffer.concat(chunks) }));
      }).on('error', reject);
    });
    const br = await get('gzip, deflate, br'), gz = await get('gzip'), plain = await get(null);
    check(br.encoding === 'br' && zlib.brotliDecompressSync(br.body).equals(raw) && br.type === 'application/wasm', `${pre}: brotli: ${br.encoding}, ${br.body.length} of ${raw.length} bytes`);
    check(gz.encoding === 'gzip' && zlib.gunzipSync(gz.body).equals(raw), `${pre}: gzip: ${gz.encoding}, ${gz.body.length} bytes`);
    check(plain.encoding === null && plain.body.equals(raw), `${pre}: without Accept-Encoding: ${plain.encoding}, ${plain.body.length} bytes`);
    measured['wasm over the wire'] = `${raw.length} bytes raw, ${gz.body.length} gzip, ${br.body.length} brotli`;
    const browser = await launch(false);
    const page = await browser.newPage();
    const errors = [];
    page.on('console', (m) => { if (m.type() === 'error') errors.push(m.text()); });
    let wasmEncoding = null;
    page.on('response', async (r) => { if (r.url().endsWith('.wasm')) wasmEncoding = (await r.allHeaders())['content-encoding'] ?? null; });
    await page.goto(`${url}?sample=2`);
    await page.waitForFunction(() => {
      const s = document.querySelector('[data-testid=status]')?.textContent ?? '';
      if (s.startsWith('error')) throw new Error(s);
      return s === 'ready';
    }, null, { timeout: 120_000, polling: 100 });
    const shown = await page.textContent('[data-testid=prediction]');
    check(wasmEncoding === 'br' && shown === native.cpu[2].class && errors.length === 0, `${pre}: the demo over it: wasm ${wasmEncoding}, shows ${shown} (native ${native.cpu[2].class}), console errors ${errors.join(' | ')}`);
    await browser.close();
  } finally {
    child.kill();
  }
}

try {
  await runFresh(true);
  await runFresh(false);
  if (XTASK) await runDemoServer();
  else check(false, 'XTASK is not set: the demo server was not tested');
} catch (e) {
  failed++;
  console.error(`FAIL: ${e.stack ?? e}`);
}
server.close();
fs.rmSync(dir, { recursive: true, force: true });
for (const [what, v] of Object.entries(measured)) console.log(`measured: ${what}: ${v}`);
console.log(`fresh project: ${passed} passed, ${failed} failed (${((Date.now() - t0) / 1000).toFixed(0)} s)`);
process.exit(failed === 0 ? 0 : 1);
