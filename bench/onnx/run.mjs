// softmoe beside onnxruntime-web in ONE headless Chromium session (Debian's chromium, WebGPU through
// SwiftShader as in web/test): serves bench/onnx/page.html, drives window.benchCase for each case of
// the manifest that make_graphs.py wrote, and writes the table (docs/benchmarks-web.md) and the raw
// results (JSON). `cargo xtask bench-web` runs it after building what it needs.
//
// usage: node run.mjs [--data DIR] [--softmoe DIR] [--models DIR] [--out FILE.md] [--json FILE]
//                     [--cases a,b] [--check] [--rounds N]
//   --data     make_graphs.py's folder (default ../../target/bench-onnx)
//   --softmoe  the npm package built by `cargo xtask wasm` (default ../../target/npm/softmoe)
//   --models   the shipped models (default ../../weights)
//   --out      the markdown to write (default: none; print only)
//   --check    the outputs-equal step only (no timing, no markdown), e.g. on demo-layer
//   env CHROMIUM (default /usr/bin/chromium)
import { chromium } from 'playwright-core';
import http from 'node:http';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.resolve(HERE, '..', '..');
const args = process.argv.slice(2);
const opt = (name, def) => { const i = args.indexOf(`--${name}`); return i >= 0 ? args[i + 1] : def; };
const DATA = path.resolve(opt('data', path.join(ROOT, 'target/bench-onnx')));
const SOFTMOE = path.resolve(opt('softmoe', path.join(ROOT, 'target/npm/softmoe')));
const MODELS = path.resolve(opt('models', path.join(ROOT, 'weights')));
const OUT = opt('out', null);
const JSON_OUT = opt('json', path.join(DATA, 'results.json'));
const CHECK = args.includes('--check');
const ROUNDS = Number(opt('rounds', '3'));
const manifest = JSON.parse(fs.readFileSync(path.join(DATA, 'manifest.json'), 'utf8'));
const wanted = opt('cases', null)?.split(',');
const cases = manifest.cases.filter((c) => !wanted || wanted.includes(c.name));
if (wanted && cases.length !== wanted.length) throw new Error(`unknown case in ${wanted}; the manifest has ${manifest.cases.map((c) => c.name)}`);

const MIME = { '.html': 'text/html', '.js': 'text/javascript', '.mjs': 'text/javascript', '.wasm': 'application/wasm', '.json': 'application/json' };
const ORT_DIST = path.join(HERE, 'node_modules/onnxruntime-web/dist');
const routes = [['/softmoe/', SOFTMOE], ['/ort/', ORT_DIST], ['/data/', DATA], ['/models/', MODELS]];

function serve() {
  const server = http.createServer((req, res) => {
    const url = new URL(req.url, 'http://x');
    let file = null;
    if (url.pathname === '/' || url.pathname === '/page.html') file = path.join(HERE, 'page.html');
    else if (url.pathname === '/page.mjs') file = path.join(HERE, 'page.mjs');
    else {
      for (const [prefix, dir] of routes) {
        if (url.pathname.startsWith(prefix)) {
          const rel = path.normalize(decodeURIComponent(url.pathname.slice(prefix.length)));
          if (!rel.startsWith('..')) file = path.join(dir, rel);
        }
      }
    }
    // Cross-origin isolation, so that onnxruntime-web may use its threaded wasm where it chooses to.
    const headers = { 'Cross-Origin-Opener-Policy': 'same-origin', 'Cross-Origin-Embedder-Policy': 'require-corp', 'Cache-Control': 'no-store' };
    if (!file || !fs.existsSync(file) || !fs.statSync(file).isFile()) { res.writeHead(404, headers); res.end('not found'); return; }
    res.writeHead(200, { ...headers, 'Content-Type': MIME[path.extname(file)] ?? 'application/octet-stream', 'Content-Length': fs.statSync(file).size });
    fs.createReadStream(file).pipe(res);
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server)));
}

const logLines = [];
const say = (s) => { logLines.push(s); console.log(s); };

const server = await serve();
const base = `http://127.0.0.1:${server.address().port}`;
const flags = ['--headless=new', '--no-sandbox', '--disable-background-networking', '--disable-component-update', '--no-first-run', '--disable-dev-shm-usage',
  '--enable-unsafe-webgpu', '--enable-features=Vulkan', '--use-angle=swiftshader', '--use-webgpu-adapter=swiftshader'];
const browser = await chromium.launch({ executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium', args: flags, headless: true });
const page = await browser.newPage();
const errors = [];
page.on('console', (m) => {
  const t = `[page ${m.type()}] ${m.text()}`;
  logLines.push(t);
  if (m.type() === 'error') errors.push(m.text());
  else if (m.type() === 'log' || m.type() === 'info') console.log(`  ${m.text()}`);
  else console.log(`  ${t}`);
});
page.on('pageerror', (e) => { errors.push(String(e)); say(`[page error] ${e}`); });
const t0 = Date.now();
let failed = 0;
const output = { date: new Date().toISOString(), chromium: browser.version(), host: { cpus: os.cpus().length, model: os.cpus()[0]?.model, memGiB: Math.round(os.totalmem() / 2 ** 30) }, manifest: { opset: manifest.opset, onnx: manifest.onnx, tolerance: manifest.tolerance }, cases: [] };
try {
  await page.goto(`${base}/page.html`);
  await page.waitForFunction(() => window.benchReady === true, null, { timeout: 120_000 });
  for (const c of cases) {
    const spec = { ...c, tolerance: manifest.tolerance };
    const t = Date.now();
    const r = await page.evaluate(([spec, o]) => window.benchCase(spec, o), [spec, CHECK ? { rounds: 0 } : { rounds: ROUNDS }]);
    r.seconds = (Date.now() - t) / 1000;
    output.cases.push({ ...r, shape: c.shape, weightBytes: c.weight_bytes, onnxBytes: c.onnx_bytes, graphCheck: c.batches.map((b) => ({ b: b.b, ...b.graph_check })) });
    for (const res of r.results) for (const row of res.rows) if (row.error) { failed++; say(`FAIL: ${c.name} b=${res.b} ${row.label}: ${row.error}`); }
  }
  output.info = await page.evaluate(() => window.benchInfo());
} catch (e) {
  failed++;
  say(`FAIL: ${e.stack ?? e}`);
}
output.consoleErrors = errors;
output.seconds = (Date.now() - t0) / 1000;
await browser.close();
server.close();
fs.writeFileSync(JSON_OUT, JSON.stringify(output, null, 1));
fs.writeFileSync(path.join(path.dirname(JSON_OUT), 'browser.log'), logLines.join('\n') + '\n');
say(`bench-web: results in ${JSON_OUT} (${output.seconds.toFixed(0)} s)`);
if (!CHECK && OUT) {
  fs.writeFileSync(OUT, markdown(output));
  say(`bench-web: wrote ${OUT}`);
}
if (CHECK) {
  const checked = output.cases.flatMap((c) => c.results.flatMap((r) => r.rows.map((row) => `${c.name} b=${r.b} ${row.id}: ${row.error ?? `max |Δ| ${row.maxDiff.toExponential(2)}`}`)));
  checked.forEach((l) => console.log(`check: ${l}`));
  console.log(`bench-web check: ${checked.length - failed} passed, ${failed} failed`);
}
process.exit(failed === 0 ? 0 : 1);

// ---- the markdown ----------------------------------------------------------------------------------

function fmtMs(v) { return v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(2); }
function mb(bytes) { return `${(bytes / 1e6).toFixed(bytes > 1e7 ? 0 : 1)} MB`; }

function caseTitle(c, b) {
  if (c.name === 'soft-moe-vit') return `shipped Soft MoE ViT (weights/soft-moe-vit), b=${b}`;
  const s = c.shape;
  const what = c.name === 'vits-layer' ? 'ViT-S/16 layer' : 'demo layer';
  return `${what} (m=${s.m}, d=${s.d}, n=${s.n}, p=${s.p}, h=${s.h}), b=${b}`;
}

function markdown(o) {
  const info = o.info ?? {};
  const a = info.adapter ?? {};
  const adapter = [a.vendor, a.architecture, a.device, a.description].filter(Boolean).join(' / ') || 'unknown';
  const lines = [];
  lines.push('# softmoe beside onnxruntime-web, in the browser');
  lines.push('');
  lines.push('Produced by `cargo xtask bench-web` (bench/onnx: `make_graphs.py` builds the ONNX graphs from the same safetensors, `run.mjs` drives `page.html` in one headless Chromium). Every figure below is from that one run.');
  lines.push('');
  lines.push(`- Run: ${o.date.slice(0, 16).replace('T', ' ')} UTC, ${o.seconds.toFixed(0)} s.`);
  lines.push(`- Browser: headless Chromium ${o.chromium} (Debian), \`--enable-unsafe-webgpu --use-webgpu-adapter=swiftshader\`; one page holds all four implementations.`);
  lines.push(`- WebGPU adapter (the only one this Chromium offers, used by softmoe and by ORT alike): **SwiftShader** — \`${adapter}\`${a.isFallbackAdapter ? ' (a fallback adapter)' : ''}: Google's software Vulkan on the CPU, so this shows relative speed on a CPU-backed adapter, not a GPU's. Adapter limits: maxBufferSize ${mb(info.limits?.maxBufferSize ?? 0)}, maxStorageBufferBindingSize ${mb(info.limits?.maxStorageBufferBindingSize ?? 0)}.`);
  lines.push(`- Host: ${o.host.model ?? 'CPU'}, ${o.host.cpus} cores shared with other work (timings are noisy: medians over three interleaved rounds; the note gives the spread of the round medians), ${o.host.memGiB} GiB.`);
  lines.push(`- onnxruntime-web ${info.ort?.version ?? '?'} from npm: the WebGPU EP from \`onnxruntime-web/webgpu\` and the wasm EP from \`onnxruntime-web\`, default session options (graph optimisation level \`all\`); the wasm EP ran ${info.ort?.wasmThreadsWasmBundle ?? '?'} thread(s) (its default for ${info.hardwareConcurrency} logical cores; page cross-origin isolated: ${info.crossOriginIsolated}). softmoe's CPU path is its f64 reference compiled into the wasm, one thread.`);
  lines.push(`- Graphs: ONNX opset ${o.manifest.opset} (onnx ${o.manifest.onnx}), float32, the math of SPEC §1 and §2 op by op (\`bench/onnx/make_graphs.py\`: tanh GELU written out, experts as one batched MatMul per Dense layer).`);
  lines.push(`- Timed: the wall time of one awaited call, input in a Float32Array, outputs back in Float32Arrays (upload, GPU work and readback included) — layers return y, dispatch and combine (what softmoe's \`layer.forward\` returns; the ONNX layer graphs output the same three), the ViT its logits. Median after warm-up.`);
  lines.push(`- Checked before timing: every output of every implementation against softmoe's f64 reference (\`softmoe layer --cpu\`, \`softmoe classify --json --cpu\`) within ${o.manifest.tolerance}; the note gives the largest |Δ| over all outputs. The graphs themselves were checked by make_graphs.py with the onnx package's reference evaluator first.`);
  lines.push('');
  lines.push('| case | implementation | median (ms) | ratio to ORT WebGPU | note |');
  lines.push('|---|---|---:|---:|---|');
  for (const c of o.cases) {
    for (const r of c.results) {
      const ortGpu = r.rows.find((x) => x.id === 'ort-webgpu' && x.medianMs);
      for (const row of r.rows) {
        const ms = row.medianMs ? fmtMs(row.medianMs) : '—';
        const ratio = row.medianMs && ortGpu ? `${(row.medianMs / ortGpu.medianMs).toFixed(2)}×` : '—';
        const spread = row.roundMedians?.length ? `; rounds ${row.roundMedians.map(fmtMs).join(' / ')} ms, ${row.samples.length} calls` : '';
        const note = row.error ? row.error : `max |Δ| ${row.maxDiff.toExponential(1)}${spread}`;
        lines.push(`| ${caseTitle(c, r.b)} | ${row.label} | ${ms} | ${ratio} | ${note} |`);
      }
    }
  }
  lines.push('');
  lines.push('Ratio: median time ÷ ORT WebGPU EP\'s median time on the same case (below 1 is faster than ORT on WebGPU).');
  lines.push('');
  const notes = path.join(HERE, 'NOTES.md');
  if (fs.existsSync(notes)) lines.push(fs.readFileSync(notes, 'utf8').trim(), '');
  lines.push('## Sizes and load times');
  lines.push('');
  lines.push('| case | weights (safetensors) | ONNX file | load: softmoe WebGPU / CPU / ORT WebGPU / wasm (ms) | graph vs f64 reference (onnx evaluator) |');
  lines.push('|---|---:|---:|---|---|');
  for (const c of o.cases) {
    const rows = c.results[0]?.rows ?? [];
    const load = ['softmoe-webgpu', 'softmoe-cpu', 'ort-webgpu', 'ort-wasm'].map((id) => { const x = rows.find((r) => r.id === id); return x?.loadMs ? x.loadMs.toFixed(0) : '—'; }).join(' / ');
    const gc = c.graphCheck.map((g) => `b=${g.b}: ${Math.max(...Object.entries(g).filter(([k]) => k !== 'b').map(([, v]) => v)).toExponential(1)}`).join(', ');
    lines.push(`| ${c.name} | ${mb(c.weightBytes)} | ${mb(c.onnxBytes)} | ${load} | ${gc} |`);
  }
  lines.push('');
  if (o.consoleErrors.length) {
    lines.push('Console errors during the run:');
    lines.push('');
    for (const e of o.consoleErrors.slice(0, 20)) lines.push(`- \`${e.replace(/`/g, "'").slice(0, 300)}\``);
    lines.push('');
  }
  return lines.join('\n');
}
