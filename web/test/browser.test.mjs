// Browser tests: the demo page and the npm package's README example in Debian's headless Chromium,
// with WebGPU (SwiftShader) and without it (the CPU fallback). The page's predictions must equal the
// native `softmoe classify --json` output for the same 64 samples, probabilities within 1e-4.
//
// The model picker is driven through all four shipped models (Soft MoE, dense, Tokens Choice,
// Experts Choice): predictions against native classify of each, the routing picture of each kind,
// and the live batch-effect panel (bit-identical for Soft MoE and dense).
//
// env: SITE (the built site, target/web), NATIVE (native JSON lines of soft-moe-vit), NATIVE_DIR
//      (native JSON lines per model, <name>.jsonl), SHOTS (screenshot folder), CHROMIUM (default
//      /usr/bin/chromium)
import { chromium } from 'playwright-core';
import http from 'node:http';
import fs from 'node:fs';
import path from 'node:path';

const SITE = process.env.SITE;
const NATIVE = process.env.NATIVE;
const SHOTS = process.env.SHOTS ?? path.join(SITE, '..');
const TOL = 1e-4;
let passed = 0, failed = 0;

function check(cond, what) {
  if (cond) { passed++; } else { failed++; console.error(`FAIL: ${what}`); }
}

const MIME = { '.html': 'text/html', '.js': 'text/javascript', '.css': 'text/css', '.wasm': 'application/wasm', '.json': 'application/json', '.ts': 'text/plain' };
const extraPages = {};

function serve() {
  const server = http.createServer((req, res) => {
    const url = new URL(req.url, 'http://x');
    if (extraPages[url.pathname]) { res.writeHead(200, { 'content-type': 'text/html' }); res.end(extraPages[url.pathname]); return; }
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

const native = fs.readFileSync(NATIVE, 'utf8').trim().split('\n').map((l) => JSON.parse(l));

async function runPage(base, webgpu, samples) {
  const browser = await launch(webgpu);
  const page = await browser.newPage({ viewport: { width: 1360, height: 1400 } });
  const errors = [];
  watchErrors(page, errors);
  const mode = webgpu ? 'webgpu' : 'cpu';
  await page.goto(`${base}/?sample=0`);
  await waitReady(page);
  const backend = await page.textContent('[data-testid=backend]');
  check(backend === mode, `${mode} run: backend badge reads "${backend}"`);
  let worst = 0, mismatched = 0;
  for (const k of samples) {
    const got = await page.evaluate((k) => window.softmoeSelect(k), k);
    const want = native[k];
    const shown = await page.textContent('[data-testid=prediction]');
    const err = Math.max(...got.probs.map((p, i) => Math.abs(p - want.probs[i])));
    worst = Math.max(worst, err);
    if (got.label !== want.label || shown !== want.class || err > TOL || got.backend !== mode) {
      mismatched++;
      console.error(`sample ${k}: page ${got.label} "${shown}" (${got.backend}) vs native ${want.label} "${want.class}", max |dp| ${err}`);
    }
  }
  check(mismatched === 0, `${mode} run: ${mismatched} of ${samples.length} samples disagree with native classify`);
  console.log(`${mode}: ${samples.length} samples, largest probability difference from native ${worst.toExponential(2)}`);
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
  if (webgpu) {
    // Drawing with the mouse and uploading a file both classify what they show.
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
    const png = Buffer.from('iVBORw0KGgoAAAANSUhEUgAAAAgAAAAICAAAAADhZOFXAAAAFElEQVR4nGNgwAJO3LlzgmgGBAAABTIQaVIe2AQAAAAASUVORK5CYII=', 'base64');
    const beforeUpload = await page.evaluate(() => window.softmoeLast);
    await page.setInputFiles('#upload', { name: 'shirt.png', mimeType: 'image/png', buffer: png });
    await page.waitForFunction((b) => window.softmoeLast !== b && document.querySelector('[data-testid=status]').textContent === 'ready', beforeUpload, { timeout: 60_000 });
    check(true, 'upload was classified');
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
  const browser = await launch(true);
  const page = await browser.newPage({ viewport: { width: 1360, height: 1400 } });
  const errors = [];
  watchErrors(page, errors);
  await page.goto(`${base}/?sample=0`);
  await waitReady(page);
  for (const [name, kind] of Object.entries(MODELS)) {
    const file = path.join(process.env.NATIVE_DIR, `${name}.jsonl`);
    const want = fs.readFileSync(file, 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    await page.evaluate((n) => window.softmoeModel(n), name);
    let mismatched = 0;
    for (let k = 0; k < 8; k++) {
      const got = await page.evaluate((k) => window.softmoeSelect(k), k);
      const err = Math.max(...got.probs.map((p, i) => Math.abs(p - want[k].probs[i])));
      if (got.label !== want[k].label || err > TOL) {
        mismatched++;
        console.error(`${name} sample ${k}: page ${got.label} vs native ${want[k].label}, max |dp| ${err}`);
      }
    }
    check(mismatched === 0, `${name}: ${mismatched} of 8 samples disagree with native classify`);
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
    const text = await page.textContent('[data-testid=batch-effect]');
    if (kind === 'soft' || kind === 'dense') {
      check(effect.identical && effect.maxDiff === 0, `${name}: output changed inside a batch: ${JSON.stringify(effect)}`);
    } else {
      check(typeof effect.maxDiff === 'number' && text.includes('Dropped patches'), `${name}: batch effect reported: ${text}`);
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
  // Bad input rejects the promise with a message; nothing throws past it.
  const rejections = await page.evaluate(async () => {
    const api = await import('/pkg/index.js');
    const reason = async (f) => { try { await f(); return 'resolved'; } catch (e) { return String(e.message ?? e); } };
    const model = await api.loadModel('./models/soft-moe-vit');
    return {
      config: await reason(() => api.loadModelFromBytes('{"image_size": 28}', new Uint8Array([1, 2, 3]))),
      weights: await reason(() => api.loadModelFromBytes(JSON.stringify(model.config), new Uint8Array(16))),
      nan: await reason(() => model.classify(new Float32Array(784).fill(NaN))),
      size: await reason(() => model.classify(new Float32Array(700))),
    };
  });
  check(rejections.config.includes('config.json'), `bad config rejected: ${rejections.config}`);
  check(rejections.weights.includes('safetensors'), `bad weights rejected: ${rejections.weights}`);
  check(rejections.nan.includes('pixel 0 is NaN'), `NaN pixels rejected: ${rejections.nan}`);
  check(rejections.size.includes('700 values'), `wrong image size rejected: ${rejections.size}`);
  await browser.close();
}

const server = await serve();
const base = `http://127.0.0.1:${server.address().port}`;
try {
  await runPage(base, true, [...Array(native.length).keys()]);
  await runPage(base, false, [...Array(native.length).keys()]);
  await runModels(base);
  await runReadme(base);
} catch (e) {
  failed++;
  console.error(`FAIL: ${e.stack ?? e}`);
}
server.close();
console.log(`browser: ${passed} passed, ${failed} failed`);
process.exit(failed === 0 ? 0 : 1);
