// The benchmark page's logic (bench/onnx/page.html): loads the softmoe npm package and onnxruntime-web
// and, for one case at a time (window.benchCase, called by run.mjs), runs four implementations on the
// same inputs — softmoe on WebGPU, softmoe's CPU path (the f64 reference in its wasm), ORT's WebGPU EP
// and ORT's wasm EP — checks every output against softmoe's f64 reference (`softmoe layer --cpu` /
// `softmoe classify --cpu`, made by make_graphs.py) and only then times them.
//
// Timing: wall time of one awaited call with the input in a Float32Array and the outputs back in
// Float32Arrays (upload, the GPU work and the readback for WebGPU), as an application sees it.
// After the check and one more warm-up call, the implementations are timed in rounds, in a rotating
// order, so that a slow spell of this shared host falls on all of them; each round runs an
// implementation at least minIters (once, when its warm-up call alone took longer than budgetMs) and
// at most maxIters times, stopping early past budgetMs.
import * as softmoe from 'softmoe';
import * as ortGpu from '/ort/ort.webgpu.min.mjs';
import * as ortWasm from '/ort/ort.min.mjs';

const log = (s) => { document.getElementById('log').textContent += `${s}\n`; console.log(s); };

async function fetchBytes(url) {
  const res = await fetch(url);
  if (!res.ok) throw new Error(`fetching ${url}: HTTP ${res.status}`);
  return new Uint8Array(await res.arrayBuffer());
}

function parseSafetensors(bytes) {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const len = Number(view.getBigUint64(0, true));
  const header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + len)));
  const out = {};
  for (const [name, t] of Object.entries(header)) {
    if (name === '__metadata__') continue;
    const [a, b] = t.data_offsets;
    out[name] = { shape: t.shape, data: new Float32Array(bytes.slice(8 + len + a, 8 + len + b).buffer) };
  }
  return out;
}

/** Largest |a − b| and whether both are finite and the same length. */
function maxDiff(a, b) {
  if (a.length !== b.length) return { diff: Infinity, why: `length ${a.length} vs ${b.length}` };
  let worst = 0;
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs(a[i] - b[i]);
    if (!Number.isFinite(d)) return { diff: Infinity, why: `non-finite at ${i}: ${a[i]} vs ${b[i]}` };
    if (d > worst) worst = d;
  }
  return { diff: worst };
}

const median = (v) => { const s = [...v].sort((a, b) => a - b); const k = s.length >> 1; return s.length % 2 ? s[k] : (s[k - 1] + s[k]) / 2; };

/** The four implementations of a case: load → { run(input) → outputs by name, release }. */
function implementations(spec) {
  const data = `/data/${spec.name}`;
  const layerOut = (o) => ({ y: o.y, dispatch: o.dispatch, combine: o.combine });
  const ortRun = (ort, session, spec) => async (inp) => {
    const feeds = spec.kind === 'layer'
      ? { x: new ort.Tensor('float32', inp.data, inp.shape) }
      : { images: new ort.Tensor('float32', inp.data, inp.shape) };
    const r = await session.run(feeds);
    const out = {};
    for (const [k, t] of Object.entries(r)) { out[k] = t.data; t.dispose?.(); }
    return out;
  };
  const ortImpl = (ort, ep) => async (bytes) => {
    const session = await ort.InferenceSession.create(bytes.onnx, { executionProviders: [ep] });
    return { run: ortRun(ort, session, spec), release: () => session.release() };
  };
  const softmoeImpl = (backend) => async (bytes) => {
    if (spec.kind === 'layer') {
      const layer = await softmoe.loadLayer(bytes.weights, { backend });
      if (layer.backend !== backend) throw new Error(`softmoe layer runs on ${layer.backend}, not ${backend}`);
      return {
        run: async (inp) => layerOut(await layer.forward(inp.data, inp.shape[0], inp.shape[1])),
        release: () => layer.free?.(),
      };
    }
    const model = await softmoe.loadModelFromBytes(bytes.config, bytes.weights, { backend });
    if (model.backend !== backend) throw new Error(`softmoe model runs on ${model.backend}, not ${backend}`);
    const classes = model.config.num_classes;
    return {
      run: async (inp) => {
        const results = await model.classifyBatch(inp.data, { maps: false });
        const logits = new Float32Array(results.length * classes);
        results.forEach((r, i) => logits.set(r.logits, i * classes));
        return { logits };
      },
      release: () => model.model.free?.(),
      adapter: model.adapter,
    };
  };
  return {
    data,
    impls: [
      { id: 'softmoe-webgpu', label: 'softmoe, WebGPU', load: softmoeImpl('webgpu') },
      { id: 'softmoe-cpu', label: 'softmoe, CPU path (f64 reference in wasm)', load: softmoeImpl('cpu') },
      { id: 'ort-webgpu', label: 'onnxruntime-web, WebGPU EP', load: ortImpl(ortGpu, 'webgpu') },
      { id: 'ort-wasm', label: 'onnxruntime-web, wasm EP', load: ortImpl(ortWasm, 'wasm') },
      // The older JavaScript WebGPU EP (JSEP), which the default `onnxruntime-web` import still carries.
      { id: 'ort-jsep', label: 'onnxruntime-web, JSEP WebGPU EP (`onnxruntime-web` import)', load: ortImpl(ortWasm, 'webgpu') },
      // Not in the default set (--impls): the WebGPU EP without its own validation.
      { id: 'ort-webgpu-wgpuonly', label: "onnxruntime-web, WebGPU EP, validationMode 'wgpuOnly'", load: ortImpl(ortGpu, { name: 'webgpu', validationMode: 'wgpuOnly' }) },
    ],
  };
}

/** Runs one case (all its batches): load, check, time. Returns what run.mjs writes into the table. */
const DEFAULT_IMPLS = ['softmoe-webgpu', 'softmoe-cpu', 'ort-webgpu', 'ort-wasm', 'ort-jsep'];
window.benchCase = async (spec, { rounds = 3, minIters = 3, maxIters = 15, budgetMs = 3000, only = DEFAULT_IMPLS } = {}) => {
  const { impls } = implementations(spec);
  const bytes = { onnx: await fetchBytes(`/data/${spec.onnx}`) };
  if (spec.kind === 'layer') bytes.weights = await fetchBytes(`/data/${spec.weights}`);
  else {
    bytes.config = await (await fetch(`/models/${spec.model}/config.json`)).text();
    bytes.weights = await fetchBytes(`/models/${spec.model}/model.safetensors`);
  }
  const loaded = [];
  for (const impl of impls) {
    if (!only.includes(impl.id)) continue;
    const t0 = performance.now();
    try {
      const l = await impl.load(bytes);
      loaded.push({ ...impl, ...l, loadMs: performance.now() - t0 });
      log(`${spec.name}: ${impl.label} loaded in ${(performance.now() - t0).toFixed(0)} ms`);
    } catch (e) {
      loaded.push({ ...impl, error: `load failed: ${e.message ?? e}` });
      log(`${spec.name}: ${impl.label}: load failed: ${e.message ?? e}`);
    }
  }
  bytes.onnx = bytes.weights = null;
  const results = [];
  for (const batch of spec.batches) {
    const input = Object.values(parseSafetensors(await fetchBytes(`/data/${batch.input}`)))[0];
    const ref = parseSafetensors(await fetchBytes(`/data/${batch.ref}`));
    const rows = [];
    // Check: every output of every implementation against the f64 reference, before any timing.
    for (const impl of loaded) {
      const row = { id: impl.id, label: impl.label, b: batch.b, loadMs: impl.loadMs, samples: [], roundMedians: [] };
      rows.push(row);
      if (impl.error) { row.error = impl.error; continue; }
      try {
        const t0 = performance.now();
        const out = await impl.run(input);
        row.firstMs = performance.now() - t0; // the first call at this size: shader compilation included
        row.diffs = {};
        for (const name of Object.keys(ref)) {
          if (!(name in out)) throw new Error(`no output ${name}`);
          const d = maxDiff(out[name], ref[name].data);
          if (d.why) throw new Error(`${name}: ${d.why}`);
          row.diffs[name] = d.diff;
        }
        row.maxDiff = Math.max(...Object.values(row.diffs));
        row.equal = row.maxDiff <= spec.tolerance;
        if (!row.equal) row.error = `outputs differ from the f64 reference by ${row.maxDiff.toExponential(2)} > ${spec.tolerance}: not timed`;
        else {
          // One more warm-up, timed: a call slower than the round's budget is timed once per round.
          const t0 = performance.now();
          await impl.run(input);
          row.warmMs = performance.now() - t0;
        }
      } catch (e) {
        row.error = `run failed: ${e.message ?? e}`;
      }
      log(`${spec.name} b=${batch.b}: ${impl.label}: ${row.error ?? `max |Δ| from the f64 reference ${row.maxDiff.toExponential(2)} (${Object.entries(row.diffs).map(([k, v]) => `${k} ${v.toExponential(2)}`).join(', ')})`}`);
    }
    const timed = rows.filter((r) => !r.error);
    for (let round = 0; round < rounds; round++) {
      for (let j = 0; j < timed.length; j++) {
        const row = timed[(j + round) % timed.length];
        const impl = loaded.find((l) => l.id === row.id);
        const samples = [];
        const start = performance.now();
        const least = row.warmMs > budgetMs ? 1 : minIters;
        while (samples.length < maxIters && (samples.length < least || performance.now() - start < budgetMs)) {
          const t0 = performance.now();
          await impl.run(input);
          samples.push(performance.now() - t0);
        }
        row.samples.push(...samples);
        row.roundMedians.push(median(samples));
      }
    }
    for (const row of rounds > 0 ? timed : []) {
      row.medianMs = median(row.samples);
      log(`${spec.name} b=${batch.b}: ${row.label}: median ${row.medianMs.toFixed(2)} ms over ${row.samples.length} calls (round medians ${row.roundMedians.map((v) => v.toFixed(2)).join(', ')})`);
    }
    results.push({ b: batch.b, rows });
  }
  for (const impl of loaded) { try { await impl.release?.(); } catch { /* released already */ } }
  return { name: spec.name, results };
};

/**
 * This adapter's own limits, measured in this page with the kernels of `cargo xtask bench`
 * (bench/src/limits): the vec4 copy kernel (shader-visible bandwidth, bytes read + written), the FMA
 * chain (FLOP/s), and the round trip of one tiny dispatch with a 4-byte readback (the least one
 * awaited WebGPU call costs here). Wall time around submit → onSubmittedWorkDone / mapAsync.
 */
window.benchAdapter = async () => {
  const adapter = await navigator.gpu.requestAdapter();
  const device = await adapter.requestDevice();
  const src = async (name) => (await fetch(`/limits/${name}`)).text();
  const pipeline = async (code) => device.createComputePipeline({ layout: 'auto', compute: { module: device.createShaderModule({ code }), entryPoint: 'main' } });
  const wall = async (encode, reps) => {
    const enc = device.createCommandEncoder();
    for (let r = 0; r < reps; r++) encode(enc);
    const t0 = performance.now();
    device.queue.submit([enc.finish()]);
    await device.queue.onSubmittedWorkDone();
    return (performance.now() - t0) / reps;
  };
  const samples = async (f, n) => { await f(); const v = []; for (let i = 0; i < n; i++) v.push(await f()); return median(v); };
  const out = {};
  // Copy: 64 MiB → 64 MiB, 4 copies per submission.
  {
    const bytes = 64 * 2 ** 20, vec4s = bytes / 16;
    const a = device.createBuffer({ size: bytes, usage: GPUBufferUsage.STORAGE });
    const b = device.createBuffer({ size: bytes, usage: GPUBufferUsage.STORAGE });
    const p = await pipeline(await src('copy_vec4.wgsl'));
    const bg = device.createBindGroup({ layout: p.getBindGroupLayout(0), entries: [{ binding: 0, resource: { buffer: a } }, { binding: 1, resource: { buffer: b } }] });
    const groups = Math.ceil(vec4s / 1024);
    const ms = await samples(() => wall((enc) => { const pass = enc.beginComputePass(); pass.setPipeline(p); pass.setBindGroup(0, bg); pass.dispatchWorkgroups(groups); pass.end(); }, 4), 5);
    out.copyGBs = (2 * bytes) / (ms * 1e6);
    a.destroy(); b.destroy();
  }
  // FMA chain: 1024 workgroups of 256, 16 fma chains × 256 steps each (4 vec4 chains), 2 FLOPs per fma.
  {
    const groups = 1024, inv = groups * 256;
    const o = device.createBuffer({ size: inv * 4, usage: GPUBufferUsage.STORAGE });
    const p = await pipeline(await src('fma_chain.wgsl'));
    const bg = device.createBindGroup({ layout: p.getBindGroupLayout(0), entries: [{ binding: 0, resource: { buffer: o } }] });
    const ms = await samples(() => wall((enc) => { const pass = enc.beginComputePass(); pass.setPipeline(p); pass.setBindGroup(0, bg); pass.dispatchWorkgroups(groups); pass.end(); }, 2), 5);
    out.fmaGflops = (inv * 16 * 256 * 2) / (ms * 1e6);
    o.destroy();
  }
  // Round trip: one workgroup writes 4 bytes, copied to a mappable buffer and read back.
  {
    const p = await pipeline('@group(0) @binding(0) var<storage, read_write> o: array<u32>;\n@compute @workgroup_size(1) fn main() { o[0] = o[0] + 1u; }');
    const o = device.createBuffer({ size: 4, usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC });
    const bg = device.createBindGroup({ layout: p.getBindGroupLayout(0), entries: [{ binding: 0, resource: { buffer: o } }] });
    const v = [];
    for (let i = 0; i < 31; i++) {
      const read = device.createBuffer({ size: 4, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
      const t0 = performance.now();
      const enc = device.createCommandEncoder();
      const pass = enc.beginComputePass(); pass.setPipeline(p); pass.setBindGroup(0, bg); pass.dispatchWorkgroups(1); pass.end();
      enc.copyBufferToBuffer(o, 0, read, 0, 4);
      device.queue.submit([enc.finish()]);
      await read.mapAsync(GPUMapMode.READ);
      read.unmap();
      if (i > 0) v.push(performance.now() - t0);
      read.destroy();
    }
    out.roundTripMs = median(v);
    o.destroy();
  }
  device.destroy();
  return out;
};

/**
 * Where ORT's WebGPU time goes: one run of the case with the JSEP WebGPU EP's own profiler
 * (`env.webgpu.profiling`, GPU timestamps per kernel; the browser must expose timestamp queries,
 * run.mjs launches a second Chromium with `--enable-dawn-features=allow_unsafe_apis` for it).
 * The native WebGPU EP of `onnxruntime-web/webgpu` has no such switch in the browser.
 */
window.benchOrtProfile = async (spec, b) => {
  const session = await ortWasm.InferenceSession.create(await fetchBytes(`/data/${spec.onnx}`), { executionProviders: ['webgpu'] });
  const batch = spec.batches.find((x) => x.b === b);
  const input = Object.values(parseSafetensors(await fetchBytes(`/data/${batch.input}`)))[0];
  const feeds = { [session.inputNames[0]]: new ortWasm.Tensor('float32', input.data, input.shape) };
  await session.run(feeds);
  const lines = [];
  const saved = [console.log, console.info, console.debug];
  console.log = console.info = console.debug = (...a) => lines.push(a.join(' '));
  let wallMs;
  try {
    ortWasm.env.webgpu.profiling = { mode: 'default' };
    const t0 = performance.now();
    await session.run(feeds);
    wallMs = performance.now() - t0;
  } finally {
    ortWasm.env.webgpu.profiling = { mode: 'off' };
    [console.log, console.info, console.debug] = saved;
  }
  await session.release();
  const groups = new Map();
  let gpuMs = 0, kernels = 0;
  for (const l of lines) {
    const m = l.match(/kernel "([^"]*)" (.*) execution time: (\d+) ns/);
    if (!m) continue;
    const [, op, , program] = m[1].split('|');
    const ms = Number(m[3]) / 1e6;
    const key = `${op} (${program})`;
    const g = groups.get(key) ?? { kernel: key, count: 0, ms: 0, slowest: 0, shapes: '' };
    g.count++; g.ms += ms;
    if (ms > g.slowest) { g.slowest = ms; g.shapes = m[2].replace(/start time: \d+ ns,?/, '').replace(/ \| float32/g, '').trim().replace(/,$/, ''); }
    groups.set(key, g);
    gpuMs += ms; kernels++;
  }
  return { name: spec.name, b, wallMs, gpuMs, kernels, groups: [...groups.values()].sort((x, y) => y.ms - x.ms) };
};

/** What runs where: the adapter every WebGPU user here gets, and ORT's settings. */
window.benchInfo = async () => {
  const adapter = await navigator.gpu?.requestAdapter();
  const info = adapter?.info ?? {};
  return {
    userAgent: navigator.userAgent,
    hardwareConcurrency: navigator.hardwareConcurrency,
    crossOriginIsolated,
    adapter: adapter ? { vendor: info.vendor, architecture: info.architecture, device: info.device, description: info.description, isFallbackAdapter: info.isFallbackAdapter ?? adapter.isFallbackAdapter } : null,
    limits: adapter ? { maxBufferSize: adapter.limits.maxBufferSize, maxStorageBufferBindingSize: adapter.limits.maxStorageBufferBindingSize } : null,
    ort: { version: ortGpu.env.versions?.web ?? ortGpu.version ?? null, wasmThreadsWebgpuBundle: ortGpu.env.wasm.numThreads ?? null, wasmThreadsWasmBundle: ortWasm.env.wasm.numThreads ?? null },
  };
};

document.getElementById('status').textContent = 'ready';
window.benchReady = true;
