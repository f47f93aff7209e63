// The demo's Train panel: trains a ViT in the page's Web Worker on WebGPU (the npm package's
// createTrainer) on Fashion-MNIST, from scratch (the shipped Soft MoE config) or from the loaded
// model; draws the loss and test-accuracy curves and one image's slot maps as training goes; pauses,
// resumes, and downloads the model as config.json + model.safetensors.
import { createTrainer } from './pkg/index.js';

const SIDE = 28, PIXELS = SIDE * SIDE;

const PANEL = `
  <h2 id="train-title">Train in the page</h2>
  <p class="explain">Trains on Fashion-MNIST's 60,000 training images in a Web Worker on WebGPU, with <code>softmoe train</code>'s
    recipe (AdamW, label smoothing 0.1, warm-up then cosine decay, random flips). The test accuracy is measured on test images the
    model never trains on; the slot maps are the chosen test image's, redrawn as the router learns.</p>
  <div class="train-controls">
    <label>Start from <select id="train-from"><option value="scratch">scratch (Soft MoE config)</option><option value="model">the loaded model</option></select></label>
    <label>Steps <input id="train-steps" type="number" min="1" value="500"></label>
    <label>Batch <input id="train-batch" type="number" min="1" value="32"></label>
    <label>Peak lr <input id="train-lr" type="number" min="0" step="any" value="0.004"></label>
    <label>Test every <input id="train-eval-every" type="number" min="1" value="50"></label>
    <label>Test images <input id="train-test-count" type="number" min="1" max="10000" value="500"></label>
    <label>Maps every <input id="train-maps-every" type="number" min="1" value="10"></label>
    <label>Maps of sample <input id="train-sample" type="number" min="0" value="0"></label>
  </div>
  <div class="train-buttons">
    <button id="train-start" type="button">Start</button>
    <button id="train-pause" type="button" disabled>Pause</button>
    <button id="train-download" type="button" disabled>Download weights</button>
    <span id="train-status" data-testid="train-status" class="muted">idle</span>
  </div>
  <div class="train-body">
    <figure><canvas id="train-loss" width="420" height="200" aria-label="training loss per step"></canvas><figcaption>Loss: each batch (grey), its running mean (blue), the test images' (orange)</figcaption></figure>
    <figure><canvas id="train-acc" width="420" height="200" aria-label="test accuracy"></canvas><figcaption>Test accuracy</figcaption></figure>
    <figure class="train-maps"><div id="train-slots" class="train-slots"></div><figcaption id="train-maps-note">Dispatch weights per slot of the first Soft MoE block</figcaption></figure>
  </div>`;

/** A seeded PRNG (mulberry32): the same batches for the same seed. */
function rng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Lines on a canvas: `series` of {points: [[x, y]], colour, width}, y within [y0, y1], x within [0, x1]. */
function plot(canvas, series, x1, y0, y1, yLabel) {
  const ctx = canvas.getContext('2d');
  const { width: w, height: h } = canvas;
  const pad = { l: 38, r: 8, t: 8, b: 18 };
  ctx.clearRect(0, 0, w, h);
  ctx.strokeStyle = '#e3e6ec';
  ctx.fillStyle = '#697386';
  ctx.font = '11px system-ui, sans-serif';
  for (let k = 0; k <= 4; k++) {
    const y = pad.t + ((h - pad.t - pad.b) * k) / 4;
    ctx.beginPath(); ctx.moveTo(pad.l, y); ctx.lineTo(w - pad.r, y); ctx.stroke();
    ctx.fillText(yLabel(y1 - ((y1 - y0) * k) / 4), 2, y + 4);
  }
  ctx.fillText(`step ${x1}`, w - pad.r - 56, h - 4);
  const X = (x) => pad.l + ((w - pad.l - pad.r) * x) / Math.max(x1, 1);
  const Y = (y) => pad.t + (h - pad.t - pad.b) * (1 - (Math.min(Math.max(y, y0), y1) - y0) / (y1 - y0));
  for (const s of series) {
    if (!s.points.length) continue;
    ctx.strokeStyle = s.colour;
    ctx.lineWidth = s.width ?? 1.5;
    ctx.beginPath();
    s.points.forEach(([x, y], i) => (i ? ctx.lineTo(X(x), Y(y)) : ctx.moveTo(X(x), Y(y))));
    ctx.stroke();
    if (s.dots) for (const [x, y] of s.points) { ctx.fillStyle = s.colour; ctx.fillRect(X(x) - 2, Y(y) - 2, 4, 4); }
  }
}

/** Fashion-MNIST's split as bytes, decoded in its own worker (fashion-data.js). */
function loadData(onProgress) {
  return new Promise((resolve, reject) => {
    const w = new Worker(new URL('./fashion-data.js', import.meta.url), { name: 'fashion-mnist' });
    w.onmessage = ({ data }) => {
      if (data.kind === 'progress') return onProgress(data.classes);
      w.terminate();
      if (data.kind === 'done') resolve(data); else reject(new Error(`Fashion-MNIST: ${data.message}`));
    };
    w.onerror = (e) => { w.terminate(); reject(new Error(`Fashion-MNIST worker: ${e.message}`)); };
    w.postMessage({ base: new URL('./data/fashion-mnist', location.href).href });
  });
}

/**
 * Sets the panel up in `root`. `app` lends what the page has: `model()` and `modelName()` (the
 * loaded Classifier and its folder), `samples()` (the test samples the page shows), and its drawing helpers `drawGray`,
 * `viridis`, `expertColour`.
 */
export function setupTrain(root, app) {
  root.innerHTML = PANEL;
  const $ = (id) => root.querySelector(`#${id}`);
  const num = (id) => Number($(id).value);
  const s = {
    trainer: null, data: null, dataPromise: null, running: false, paused: false, resume: null, stop: false,
    losses: [], evals: [], imagesPerSecond: 0, stepMs: 0, images: 0, total: 0, error: null, loop: null,
  };
  const status = (text) => { $('train-status').textContent = text; };
  const update = () => {
    const mean = (a) => a.reduce((x, y) => x + y, 0) / a.length;
    const smooth = s.losses.map(([x], i) => [x, mean(s.losses.slice(Math.max(0, i - 19), i + 1).map(([, y]) => y))]);
    const maxLoss = Math.max(2.5, ...s.losses.map(([, y]) => y), ...s.evals.map((e) => e.loss));
    plot($('train-loss'), [
      { points: s.losses, colour: '#c5cad6', width: 1 },
      { points: smooth, colour: '#3451d1', width: 2 },
      { points: s.evals.map((e) => [e.step, e.loss]), colour: '#e8772e', width: 2, dots: true },
    ], s.total, 0, Math.ceil(maxLoss), (v) => v.toFixed(1));
    plot($('train-acc'), [{ points: s.evals.map((e) => [e.step, e.accuracy]), colour: '#1a7f37', width: 2, dots: true }], s.total, 0, 1, (v) => `${(100 * v).toFixed(0)}%`);
    // What the tests read.
    window.softmoeTrainState = {
      steps: s.losses.length, total: s.total, losses: s.losses.map(([, y]) => y), evals: s.evals, imagesPerSecond: s.imagesPerSecond,
      running: s.running, paused: s.paused, error: s.error, adapter: s.trainer?.adapter ?? null, worker: s.trainer?.worker ?? null,
    };
  };

  const testSet = (n) => {
    // `n` test images spread evenly over the split (every class), as `softmoe train --eval-sample` picks them.
    const { test, testLabels } = s.data;
    const count = testLabels.length, k = Math.min(n, count);
    const px = new Float32Array(k * PIXELS), labels = new Int32Array(k);
    for (let i = 0; i < k; i++) {
      const j = Math.floor((i * count) / k);
      for (let p = 0; p < PIXELS; p++) px[i * PIXELS + p] = test[j * PIXELS + p] / 255;
      labels[i] = testLabels[j];
    }
    return { px, labels };
  };

  const drawMaps = async () => {
    const samples = app.samples();
    if (!samples) return;
    const k = Math.min(Math.max(0, Math.floor(num('train-sample')) || 0), samples.labels.data.length - 1);
    const pixels = samples.images.data.slice(k * PIXELS, (k + 1) * PIXELS);
    const [r] = await s.trainer.classify(pixels, { maps: true });
    const l = r.layers.find((x) => x.kind === 'soft');
    if (!l) { $('train-maps-note').textContent = 'This model has no Soft MoE block.'; return; }
    const { grid, experts: n, slotsPerExpert: p, dispatch: D } = l;
    const m = grid * grid, slots = n * p;
    const box = $('train-slots');
    if (box.children.length !== slots) {
      box.replaceChildren(...Array.from({ length: slots }, (_, j) => {
        const c = document.createElement('canvas');
        c.width = 56; c.height = 56;
        c.style.borderColor = app.expertColour(Math.floor(j / p), n);
        c.title = `expert ${Math.floor(j / p)} · slot ${j % p}`;
        return c;
      }));
    }
    for (let j = 0; j < slots; j++) {
      const canvas = box.children[j];
      let max = 0, min = Infinity;
      for (let t = 0; t < m; t++) { max = Math.max(max, D[t * slots + j]); min = Math.min(min, D[t * slots + j]); }
      app.drawGray(canvas, pixels, 0.35);
      const ctx = canvas.getContext('2d');
      const cell = canvas.width / grid;
      for (let t = 0; t < m; t++) {
        const [cr, cg, cb] = app.viridis((D[t * slots + j] - min) / Math.max(max - min, 1e-12));
        ctx.fillStyle = `rgba(${cr},${cg},${cb},0.78)`;
        ctx.fillRect((t % grid) * cell, Math.floor(t / grid) * cell, cell, cell);
      }
    }
    $('train-maps-note').textContent = `Dispatch weights of sample ${k} (${s.trainer.classNames[samples.labels.data[k]]}, predicted ${r.className}) per slot of block ${l.block}, at step ${s.losses.length}`;
    box.dataset.step = String(s.losses.length);
  };

  const evaluate = async (testPx) => {
    const e = await s.trainer.evaluate(testPx.px, testPx.labels);
    s.evals.push({ step: s.losses.length, accuracy: e.accuracy, loss: e.loss, count: e.count });
  };

  async function run() {
    const total = Math.floor(num('train-steps')), batch = Math.floor(num('train-batch')), lr = num('train-lr');
    const evalEvery = Math.max(1, Math.floor(num('train-eval-every'))), mapsEvery = Math.max(1, Math.floor(num('train-maps-every')));
    if (!(total > 0 && batch > 0 && lr > 0)) throw new Error('steps, batch and lr must be positive');
    s.dataPromise ??= loadData((c) => status(`loading Fashion-MNIST: ${c}/10 classes`));
    s.data = await s.dataPromise;
    const from = $('train-from').value;
    const folder = from === 'model' ? app.modelName() : 'soft-moe-vit';
    status(`creating the trainer (${from === 'model' ? `fine-tuning ${folder}` : 'from scratch'})`);
    const options = { totalSteps: total, lr };
    s.trainer = from === 'model'
      ? await createTrainer(app.model(), options) // the loaded model's own files
      : await createTrainer(await (await fetch('./models/soft-moe-vit/config.json')).text(), options);
    Object.assign(s, { losses: [], evals: [], total, images: 0, stepMs: 0, imagesPerSecond: 0 });
    const testPx = testSet(Math.floor(num('train-test-count')));
    status('testing the starting weights');
    await evaluate(testPx);
    await drawMaps();
    update();
    const { train, trainLabels } = s.data;
    const random = rng(42);
    let order = [], at = 0;
    while (s.losses.length < total && !s.stop) {
      if (s.paused) {
        status(`paused at step ${s.losses.length}/${total}`);
        await new Promise((r) => { s.resume = r; });
        continue;
      }
      // A fresh shuffle each epoch; each image flipped left–right with probability ½.
      if (at + batch > order.length) {
        order = Array.from({ length: trainLabels.length }, (_, i) => i);
        for (let i = order.length - 1; i > 0; i--) { const j = Math.floor(random() * (i + 1)); [order[i], order[j]] = [order[j], order[i]]; }
        at = 0;
      }
      const px = new Float32Array(batch * PIXELS), labels = new Int32Array(batch);
      for (let b = 0; b < batch; b++) {
        const i = order[at++], flip = random() < 0.5;
        labels[b] = trainLabels[i];
        for (let y = 0; y < SIDE; y++) for (let x = 0; x < SIDE; x++) px[b * PIXELS + y * SIDE + x] = train[i * PIXELS + y * SIDE + (flip ? SIDE - 1 - x : x)] / 255;
      }
      const t0 = performance.now();
      const r = await s.trainer.step(px, labels);
      s.stepMs += performance.now() - t0;
      s.images += batch;
      s.imagesPerSecond = (1000 * s.images) / s.stepMs;
      s.losses.push([r.step, r.loss]);
      status(`step ${r.step}/${total} · loss ${r.loss.toFixed(3)} · lr ${r.lr.toExponential(2)} · ${s.imagesPerSecond.toFixed(1)} images/s`);
      if (r.step % evalEvery === 0 || r.step === total) await evaluate(testPx);
      if (r.step % mapsEvery === 0 || r.step === total) await drawMaps();
      update();
    }
    const last = s.evals.at(-1);
    status(`done: ${s.losses.length} steps · test accuracy ${(100 * last.accuracy).toFixed(1)}% on ${last.count} images · ${s.imagesPerSecond.toFixed(1)} images/s`);
  }

  $('train-start').addEventListener('click', async () => {
    if (s.running) return;
    s.trainer?.dispose();
    Object.assign(s, { running: true, paused: false, stop: false, error: null, trainer: null });
    $('train-start').disabled = true;
    $('train-pause').disabled = false;
    $('train-pause').textContent = 'Pause';
    $('train-download').disabled = true;
    update();
    s.loop = run().catch((e) => {
      console.error(e);
      s.error = `${e.name ?? 'Error'}: ${e.message ?? e}`;
      status(`error: ${e.message ?? e}`);
    }).finally(() => {
      s.running = false;
      $('train-start').disabled = false;
      $('train-start').textContent = 'Start again';
      $('train-pause').disabled = true;
      $('train-download').disabled = !s.trainer;
      update();
    });
  });
  $('train-pause').addEventListener('click', () => {
    s.paused = !s.paused;
    $('train-pause').textContent = s.paused ? 'Resume' : 'Pause';
    // A paused trainer can be downloaded as it is.
    $('train-download').disabled = !(s.paused && s.trainer);
    if (!s.paused) { s.resume?.(); s.resume = null; }
    update();
  });
  $('train-download').addEventListener('click', async () => {
    const { configJson, weights } = await s.trainer.export();
    for (const [name, body, type] of [['config.json', configJson, 'application/json'], ['model.safetensors', weights, 'application/octet-stream']]) {
      const a = document.createElement('a');
      a.href = URL.createObjectURL(new Blob([body], { type }));
      a.download = name;
      a.click();
      setTimeout(() => URL.revokeObjectURL(a.href), 10_000);
    }
  });
  update();
  // Tests read the trainer's export through this.
  window.softmoeTrainExport = () => s.trainer.export();
}
