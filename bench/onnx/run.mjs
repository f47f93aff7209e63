// softmoe beside onnxruntime-web in ONE headless Chromium session (Debian's chromium, WebGPU through
// SwiftShader as in web/test): serves bench/onnx/page.html, drives window.benchCase for each case of
// the manifest that make_graphs.py wrote, and writes the table (docs/benchmarks-web.md) and the raw
// results (JSON). `cargo xtask bench-web` runs it after building what it needs.
//
// usage: node run.mjs [--data DIR] [--softmoe DIR] [--models DIR] [--out FILE.md] [--json FILE]
//                     [--cases a,b] [--batches 1,64] [--check] [--rounds N] [--impls id,id] [--no-profile]
//        node run.mjs --render results.json --out FILE.md   (the markdown again, e.g. after NOTES.md changed)
//   --data     make_graphs.py's folder (default ../../target/bench-onnx)
//   --softmoe  the npm package built by `cargo xtask wasm` (default ../../target/npm/softmoe)
//   --models   the shipped models (default ../../weights)
//   --out      the markdown to write (default: none; print only)
//   --check    the outputs-equal step only (no timing, no markdown), e.g. on demo-layer
//   --impls    which implementations (page.mjs ids; default softmoe-webgpu,softmoe-cpu,ort-webgpu,ort-wasm)
//   env CHROMIUM (default /usr/bin/chromium), BENCH_WEB_ADAPTER (swiftshader, the default, or default:
//       Chromium's own choice, e.g. a GPU)
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
const IMPLS = opt('impls', null)?.split(',');
// --render FILE.json: only write the markdown (--out) from a results file of an earlier run.
const RENDER = opt('render', null);
if (RENDER) {
  if (!OUT) throw new Error('--render needs --out FILE.md');
  fs.writeFileSync(OUT, markdown(JSON.parse(fs.readFileSync(RENDER, 'utf8'))));
  console.log(`bench-web: wrote ${OUT} from ${RENDER}`);
  process.exit(0);
}
const manifest = JSON.parse(fs.readFileSync(path.join(DATA, 'manifest.json'), 'utf8'));
const wanted = opt('cases', null)?.split(',');
const batches = opt('batches', null)?.split(',').map(Number);
const cases = manifest.cases.filter((c) => !wanted || wanted.includes(c.name)).map((c) => ({ ...c, batches: c.batches.filter((b) => !batches || batches.includes(b.b)) }));
if (wanted && cases.length !== wanted.length) throw new Error(`unknown case in ${wanted}; the manifest has ${manifest.cases.map((c) => c.name)}`);

const MIME = { '.html': 'text/html', '.js': 'text/javascript', '.mjs': 'text/javascript', '.wasm': 'application/wasm', '.json': 'application/json' };
const ORT_DIST = path.join(HERE, 'node_modules/onnxruntime-web/dist');
const routes = [['/limits/', path.join(ROOT, 'bench/src/limits')], ['/softmoe/', SOFTMOE], ['/ort/', ORT_DIST], ['/data/', DATA], ['/models/', MODELS]];

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
const T0 = Date.now();
const say = (s) => { logLines.push(s); console.log(s); };

const server = await serve();
const base = `http://127.0.0.1:${server.address().port}`;
// SwiftShader, as web/test uses, unless BENCH_WEB_ADAPTER=default leaves the adapter to Chromium
// (a machine with a GPU and its Vulkan driver).
const swiftshader = (process.env.BENCH_WEB_ADAPTER ?? 'swiftshader') === 'swiftshader';
const flags = ['--headless=new', '--no-sandbox', '--disable-background-networking', '--disable-component-update', '--no-first-run', '--disable-dev-shm-usage',
  '--enable-unsafe-webgpu', '--enable-features=Vulkan', ...(swiftshader ? ['--use-angle=swiftshader', '--use-webgpu-adapter=swiftshader'] : [])];
const browser = await chromium.launch({ executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium', args: flags, headless: true });
const page = await browser.newPage();
const errors = [];
page.on('console', (m) => {
  const t = `[page ${m.type()}] ${m.text()}`;
  logLines.push(t);
  if (m.type() === 'error') errors.push(m.text());
  else if (m.type() === 'log' || m.type() === 'info') console.log(`  [${((Date.now() - T0) / 1000).toFixed(0)} s] ${m.text()}`);
  else console.log(`  ${t}`);
});
page.on('pageerror', (e) => { errors.push(String(e)); say(`[page error] ${e}`); });
const t0 = Date.now();
let failed = 0;
const output = { date: new Date().toISOString(), chromium: browser.version(), host: { cpus: os.cpus().length, model: os.cpus()[0]?.model, memGiB: Math.round(os.totalmem() / 2 ** 30) }, manifest: { opset: manifest.opset, onnx: manifest.onnx, tolerance: manifest.tolerance }, cases: [] };
try {
  await page.goto(`${base}/page.html`);
  await page.waitForFunction(() => window.benchReady === true, null, { timeout: 120_000 });
  if (!CHECK) {
    output.adapterLimits = await page.evaluate(() => window.benchAdapter());
    say(`adapter limits measured in the page: vec4 copy kernel ${output.adapterLimits.copyGBs.toFixed(2)} GB/s, FMA chain ${output.adapterLimits.fmaGflops.toFixed(1)} GFLOP/s, one dispatch + 4-byte readback ${output.adapterLimits.roundTripMs.toFixed(2)} ms`);
  }
  for (const c of cases) {
    const spec = { ...c, tolerance: manifest.tolerance };
    const t = Date.now();
    const r = await page.evaluate(([spec, o]) => window.benchCase(spec, o), [spec, { rounds: CHECK ? 0 : ROUNDS, ...(IMPLS ? { only: IMPLS } : {}) }]);
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
// Where ORT's WebGPU time goes: the JSEP EP's per-kernel GPU timestamps, one run per case at its first
// batch size, in a second Chromium that exposes timestamp queries (not part of the timed session).
if (!CHECK && !args.includes('--no-profile') && failed === 0) {
  const prof = await chromium.launch({ executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium', args: [...flags, '--enable-dawn-features=allow_unsafe_apis'], headless: true });
  const pp = await prof.newPage();
  pp.on('pageerror', (e) => say(`[profile page error] ${e}`));
  await pp.goto(`${base}/page.html`);
  await pp.waitForFunction(() => window.benchReady === true, null, { timeout: 120_000 });
  output.profiles = [];
  for (const c of cases) {
    try {
      const p = await pp.evaluate(([spec, b]) => window.benchOrtProfile(spec, b), [c, c.batches[0].b]);
      output.profiles.push(p);
      say(`ORT JSEP profile ${c.name} b=${p.b}: ${p.kernels} kernels, GPU ${p.gpuMs.toFixed(1)} ms of ${p.wallMs.toFixed(1)} ms; ${p.groups.slice(0, 4).map((g) => `${g.kernel} ${g.ms.toFixed(1)} ms`).join(', ')}`);
    } catch (e) {
      say(`ORT JSEP profile ${c.name}: ${e.message ?? e}`);
    }
  }
  await prof.close();
}
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
  console.log(`bench-web: ${checked.length - failed} passed, ${failed} failed`);
}
process.exit(failed === 0 ? 0 : 1);

// ---- the markdown ----------------------------------------------------------------------------------

function fmtMs(v) { return v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(2); }
function fmtRatio(v) { return v >= 10 ? `${v.toFixed(0)}×` : v >= 0.1 ? `${v.toFixed(2)}×` : `${v.toPrecision(2)}×`; }
function mb(bytes) { return `${(bytes / 1e6).toFixed(bytes > 1e7 ? 0 : 1)} MB`; }
function cell(t) { return String(t).replace(/\|/g, '\\|'); }

function caseTitle(c, b) {
  if (c.name === 'soft-moe-vit') return `shipped Soft MoE ViT, b=${b}`;
  const s = c.shape;
  const what = c.name === 'vits-layer' ? 'ViT-S/16 layer' : 'demo layer';
  return `${what} (m=${s.m}, d=${s.d}, n=${s.n}, p=${s.p}, h=${s.h}), b=${b}`;
}

function markdown(o) {
  const info = o.info ?? {};
  const a = info.adapter ?? {};
  const lim = o.adapterLimits;
  const adapter = [a.vendor, a.architecture, a.device, a.description].filter(Boolean).join(' / ') || 'unknown';
  const L = [];
  L.push('# softmoe beside onnxruntime-web, in the browser');
  L.push('');
  L.push('Produced by `cargo xtask bench-web` (`bench/onnx`: `make_graphs.py` builds the ONNX graphs from the same safetensors and checks them, `run.mjs` drives `page.html` in one headless Chromium). Every figure below is from that one run on this machine.');
  L.push('');
  L.push(`- Run: ${o.date.slice(0, 16).replace('T', ' ')} UTC, ${(o.seconds / 60).toFixed(0)} min.`);
  const ss = /swiftshader/i.test(adapter);
  L.push(`- Browser: headless Chromium ${o.chromium} (Debian), \`--enable-unsafe-webgpu\`${ss ? ' `--use-webgpu-adapter=swiftshader` (as web/test)' : ''}; one page holds every implementation.`);
  L.push(`- WebGPU adapter, used by softmoe and ORT alike: ${ss ? `**SwiftShader** (\`${adapter}\`${a.isFallbackAdapter ? ', a fallback adapter' : ''}), Google's software Vulkan running on the same CPU cores: relative speed on a CPU-backed adapter, not a GPU's` : `**${adapter}**${a.isFallbackAdapter ? ' (a fallback adapter)' : ''}`}. maxBufferSize ${mb(info.limits?.maxBufferSize ?? 0)}, maxStorageBufferBindingSize ${mb(info.limits?.maxStorageBufferBindingSize ?? 0)}.`);
  if (lim) L.push(`- The adapter's limits, measured in the same page with \`cargo xtask bench\`'s kernels (bench/src/limits): vec4 copy kernel **${lim.copyGBs.toFixed(2)} GB/s** (read + written), FMA chain **${lim.fmaGflops.toFixed(1)} GFLOP/s**, and **${lim.roundTripMs.toFixed(2)} ms** for one one-workgroup dispatch with a 4-byte readback (the least an awaited WebGPU call costs here).`);
  L.push(`- Host: ${o.host.model ?? 'CPU'}, ${o.host.cpus} cores shared with other engineers' work, ${o.host.memGiB} GiB: timings are noisy. Each implementation is timed in three interleaved rounds (rotating order); the median is over all calls, and the note gives each round's median.`);
  L.push(`- onnxruntime-web ${info.ort?.version ?? '?'} (npm), default session options (graph optimisation \`all\`): the WebGPU EP from \`onnxruntime-web/webgpu\` (its C++ WebGPU EP compiled to wasm), the wasm EP from \`onnxruntime-web\` (${info.ort?.wasmThreadsWasmBundle ?? '?'} thread: ORT's default for ${info.hardwareConcurrency} logical cores; the page is cross-origin isolated), and that import's older JavaScript WebGPU EP (JSEP) as a fifth row. softmoe's CPU path is its f64 reference compiled into the wasm, one thread.`);
  L.push(`- Graphs: ONNX opset ${o.manifest.opset} (onnx ${o.manifest.onnx}), float32, SPEC §1 and §2 op by op (\`bench/onnx/make_graphs.py\`; tanh GELU written out; the experts as one batched MatMul per Dense layer).`);
  L.push('- Timed: the wall time of one awaited call, input in a Float32Array, outputs back in Float32Arrays (upload, GPU work and readback included). The layers return y, dispatch and combine (what softmoe\'s `layer.forward` returns; the ONNX layer graphs output the same three), the ViT its logits. Medians after two untimed calls.');
  L.push(`- Checked before timing: every output of every implementation against softmoe's f64 reference (\`softmoe layer --cpu\`, \`softmoe classify --json --cpu\`) within ${o.manifest.tolerance} (the note gives the largest \\|Δ\\| over all outputs; softmoe's CPU path *is* that reference, hence 0). The graphs were checked by make_graphs.py with the onnx package's reference evaluator before that.`);
  L.push('');
  L.push('| case | implementation | median (ms) | ratio to ORT WebGPU EP | note |');
  L.push('|---|---|---:|---:|---|');
  for (const c of o.cases) {
    for (const r of c.results) {
      const ortGpu = r.rows.find((x) => x.id === 'ort-webgpu' && x.medianMs);
      for (const row of r.rows) {
        const ms = row.medianMs ? fmtMs(row.medianMs) : '—';
        const ratio = row.medianMs && ortGpu ? fmtRatio(row.medianMs / ortGpu.medianMs) : '—';
        const spread = row.roundMedians?.length ? `; rounds ${row.roundMedians.map(fmtMs).join(' / ')} ms, ${row.samples.length} call${row.samples.length === 1 ? '' : 's'}` : '';
        const note = row.error ? row.error : `max |Δ| ${row.maxDiff.toExponential(1)}${spread}`;
        const name = row.id === 'softmoe-webgpu' ? `**${row.label}**` : row.label;
        L.push(`| ${cell(caseTitle(c, r.b))} | ${cell(name)} | ${ms} | ${ratio} | ${cell(note)} |`);
      }
    }
  }
  L.push('');
  L.push('Ratio: median ÷ the ORT WebGPU EP\'s median on the same case; below 1 is faster than ORT on WebGPU.');
  L.push('');
  // Streaming the ViT-S experts: the b = 1 layer reads 604 MB of weights once.
  const vits = o.cases.find((c) => c.name === 'vits-layer');
  const v1 = vits?.results.find((r) => r.b === 1);
  if (v1 && lim) {
    const w = vits.weightBytes;
    const floor = (w / (lim.copyGBs * 1e9)) * 1e3;
    const row = (id) => v1.rows.find((r) => r.id === id && r.medianMs);
    const rate = (id) => { const x = row(id); return x ? `${(w / (x.medianMs * 1e6)).toFixed(2)} GB/s (${fmtMs(x.medianMs)} ms${id.endsWith('wasm') ? '' : `, ${(100 * floor / x.medianMs).toPrecision(2)} % of that floor`})` : 'not timed'; };
    L.push(`**Bandwidth at b = 1.** The ViT-S/16 layer at batch 1 is bound by reading its ${mb(w)} of expert weights once: at the copy kernel's ${lim.copyGBs.toFixed(2)} GB/s (counted as the Rust bench counts it: the bytes a kernel must move ÷ the copy kernel's read + write rate) that takes at least ${fmtMs(floor)} ms on this adapter. Weights read per second of a whole call: softmoe WebGPU ${rate('softmoe-webgpu')}, ORT WebGPU EP ${rate('ort-webgpu')}; ORT's wasm EP reads them at ${rate('ort-wasm')} on the CPU directly, without the adapter in between.`);
    L.push('');
  }
  const notes = path.join(HERE, 'NOTES.md');
  if (fs.existsSync(notes)) L.push(fs.readFileSync(notes, 'utf8').trim(), '');
  if (o.profiles?.length) {
    L.push('## Where ORT\'s WebGPU time goes');
    L.push('');
    L.push('One run per case (first batch size) with the JSEP WebGPU EP\'s own profiler (`env.webgpu.profiling`: GPU timestamps per kernel), in a second Chromium started with `--enable-dawn-features=allow_unsafe_apis` so that timestamp queries exist; not part of the timed session. The native WebGPU EP (C++, with MatMul variants of its own) has no per-kernel profiler reachable from the page; it takes about as long as JSEP on every case of the table. Kernels grouped by op (WGSL program), the four that took longest:');
    L.push('');
    L.push('| case | wall (ms) | GPU, all kernels (ms) | kernels | longest: op (program) — total ms, count, slowest shapes |');
    L.push('|---|---:|---:|---:|---|');
    for (const p of o.profiles) {
      const top = p.groups.slice(0, 4).map((g) => `${g.kernel} — ${fmtMs(g.ms)} ms, ${g.count}×, slowest ${fmtMs(g.slowest)} ms: ${g.shapes}`).join('<br>');
      L.push(`| ${p.name}, b=${p.b} | ${fmtMs(p.wallMs)} | ${fmtMs(p.gpuMs)} | ${p.kernels} | ${cell(top)} |`);
    }
    L.push('');
  }
  L.push('## Sizes and load times');
  L.push('');
  const ids = ['softmoe-webgpu', 'softmoe-cpu', 'ort-webgpu', 'ort-wasm', 'ort-jsep'];
  const first = o.cases.some((c) => c.results[0]?.rows.some((r) => r.firstMs));
  L.push(`| case | weights (safetensors) | ONNX file | load (ms): softmoe WebGPU / CPU / ORT WebGPU / wasm / JSEP |${first ? ' first call at the first batch size, shaders compiled (ms), same order |' : ''} graph vs f64 reference (onnx evaluator, max \\|Δ\\|) |`);
  L.push(`|---|---:|---:|---|${first ? '---|' : ''}---|`);
  for (const c of o.cases) {
    const rows = c.results[0]?.rows ?? [];
    const col = (key) => ids.map((id) => { const x = rows.find((r) => r.id === id); return x?.[key] ? x[key].toFixed(0) : '—'; }).join(' / ');
    const gc = c.graphCheck.map((g) => `b=${g.b}: ${Math.max(...Object.entries(g).filter(([k]) => k !== 'b').map(([, v]) => v)).toExponential(1)}`).join(', ');
    L.push(`| ${c.name} | ${mb(c.weightBytes)} | ${mb(c.onnxBytes)} | ${col('loadMs')} |${first ? ` ${col('firstMs')} |` : ''} ${gc} |`);
  }
  L.push('');
  if (o.consoleErrors.length) {
    L.push('Console errors during the run:');
    L.push('');
    for (const e of o.consoleErrors.slice(0, 20)) L.push(`- \`${e.replace(/`/g, "'").slice(0, 300)}\``);
    L.push('');
  }
  return L.join('\n');
}
