// The demo page: load a shipped ViT (Soft MoE, dense, Tokens Choice or Experts Choice), classify
// samples / drawings / uploads, draw the routing of its MoE blocks (Soft MoE: paper Fig. 25's
// per-slot dispatch maps, combine map and importance; sparse: the tokens each expert took and the
// dropped ones), and show live whether the output depends on the rest of the batch. The model runs
// in the package's Web Worker (its default), so drawing stays smooth while a batch runs.
import { loadModel } from './pkg/index.js';
import { renderSparse, routerName, routeCounts } from './sparse.js';
import { setupTrain } from './train.js';
import { renderAnalysis } from './analysis.js';

const MODELS = [
  ['soft-moe-vit', 'Soft MoE'],
  ['dense-vit', 'Dense'],
  ['tokens-choice-vit', 'Tokens Choice'],
  ['experts-choice-vit', 'Experts Choice'],
];

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
const SIDE = 28;

const state = { modelName: params.get('model') ?? 'soft-moe-vit', model: null, samples: null, pixels: null, truth: null, result: null, layer: 0, busy: false, queued: null, hoverSlot: -1, hoverPatch: -1 };

function setStatus(text, kind = '') {
  $('status').textContent = text;
  $('status').dataset.state = kind;
}

// ---- colours -------------------------------------------------------------------------------
const VIRIDIS = [[68, 1, 84], [59, 82, 139], [33, 145, 140], [94, 201, 98], [253, 231, 37]];
function viridis(v) {
  const t = Math.min(Math.max(v, 0), 1) * 4;
  const i = Math.min(Math.floor(t), 3);
  const f = t - i;
  return VIRIDIS[i].map((c, k) => Math.round(c + (VIRIDIS[i + 1][k] - c) * f));
}
function expertColour(e, n) {
  const h = (360 * e) / Math.max(n, 1);
  return `hsl(${h} 70% 48%)`;
}

// ---- safetensors (the sample set) ----------------------------------------------------------
async function loadSafetensors(url) {
  const buf = await (await fetch(url)).arrayBuffer();
  const len = Number(new DataView(buf).getBigUint64(0, true));
  const header = JSON.parse(new TextDecoder().decode(new Uint8Array(buf, 8, len)));
  const out = {};
  for (const [name, t] of Object.entries(header)) {
    if (name === '__metadata__') continue;
    const [a, b] = t.data_offsets;
    out[name] = { shape: t.shape, data: new Float32Array(buf.slice(8 + len + a, 8 + len + b)) };
  }
  return out;
}

// ---- drawing helpers -----------------------------------------------------------------------
function drawGray(canvas, pixels, dim = 1) {
  const ctx = canvas.getContext('2d');
  const img = ctx.createImageData(SIDE, SIDE);
  for (let i = 0; i < SIDE * SIDE; i++) {
    const v = Math.round(pixels[i] * 255 * dim);
    img.data.set([v, v, v, 255], i * 4);
  }
  const tmp = new OffscreenCanvas(SIDE, SIDE);
  tmp.getContext('2d').putImageData(img, 0, 0);
  ctx.imageSmoothingEnabled = false;
  ctx.drawImage(tmp, 0, 0, canvas.width, canvas.height);
}

function renderGallery() {
  const { images, labels } = state.samples;
  const n = labels.data.length;
  $('gallery-note').textContent = `(${n} from the test split; click one)`;
  for (let k = 0; k < n; k++) {
    const c = document.createElement('canvas');
    c.width = SIDE; c.height = SIDE;
    c.setAttribute('role', 'listitem');
    c.title = `sample ${k}: ${state.model.classNames[labels.data[k]]}`;
    c.dataset.sample = k;
    drawGray(c, images.data.subarray(k * SIDE * SIDE, (k + 1) * SIDE * SIDE));
    c.addEventListener('click', () => selectSample(k));
    $('gallery').appendChild(c);
  }
}

function selectSample(k) {
  const { images, labels } = state.samples;
  document.querySelectorAll('.gallery canvas').forEach((c) => c.classList.toggle('selected', Number(c.dataset.sample) === k));
  state.truth = state.model.classNames[labels.data[k]];
  const pixels = images.data.slice(k * SIDE * SIDE, (k + 1) * SIDE * SIDE);
  drawGray($('draw'), pixels); // the sample becomes the drawing, so it can be edited by hand
  return classify(pixels);
}

// ---- classification (one at a time; the latest request wins) ------------------------------
async function classify(pixels) {
  if (state.busy) { state.queued = pixels; return; }
  state.busy = true;
  setStatus('running');
  try {
    state.pixels = pixels;
    const result = await state.model.classify(pixels);
    state.result = result;
    window.softmoeLast = {
      class: result.className, label: result.label, probs: Array.from(result.probs), backend: result.backend, ms: result.ms,
      layers: result.layers.map((l) => ({ kind: l.kind, block: l.block, dropped: l.kind === 'soft' ? 0 : routeCounts(l).dropped })),
    };
    render();
    setStatus('ready', 'ready');
  } catch (e) {
    console.error(e);
    setStatus(`error: ${e.message ?? e}`, 'error');
  } finally {
    state.busy = false;
    if (state.queued) { const p = state.queued; state.queued = null; classify(p); }
  }
}

function render() {
  const r = state.result;
  drawGray($('preview'), state.pixels);
  $('prediction').textContent = r.className;
  $('truth').textContent = state.truth ? `label: ${state.truth}` : 'your image';
  $('timing').textContent = `${r.ms.toFixed(1)} ms`;
  const bars = $('bars');
  bars.replaceChildren();
  r.probs.forEach((p, k) => {
    const row = document.createElement('div');
    row.className = 'bar' + (k === r.label ? ' top' : '');
    row.innerHTML = `<span></span><div class="track"><div class="fill"></div></div><span class="value"></span>`;
    row.children[0].textContent = state.model.classNames[k];
    row.querySelector('.fill').style.width = `${(100 * p).toFixed(1)}%`;
    row.children[2].textContent = `${(100 * p).toFixed(1)}%`;
    bars.appendChild(row);
  });
  renderLayerTabs();
  renderRouting();
}

function renderLayerTabs() {
  const tabs = $('layers');
  const layers = state.result.layers;
  if (tabs.children.length === layers.length && tabs.dataset.model === state.modelName) return;
  tabs.dataset.model = state.modelName;
  tabs.replaceChildren();
  state.layer = layers.length - 1;
  layers.forEach((l, i) => {
    const b = document.createElement('button');
    b.type = 'button';
    b.setAttribute('role', 'tab');
    b.textContent = `block ${l.block}`;
    b.addEventListener('click', () => { state.layer = i; renderRouting(); });
    tabs.appendChild(b);
  });
}

// ---- routing pictures ----------------------------------------------------------------------
function renderRouting() {
  const l = state.result.layers[state.layer];
  renderAnalysis($('analysis'), state.analysis, l);
  const kind = l?.kind ?? 'dense';
  $('routing').dataset.kind = kind;
  $('routing-title').textContent = {
    dense: 'The dense model has no router: every patch goes through the same MLP',
    soft: 'How the Soft MoE layer routes this image',
  }[kind] ?? `How the ${routerName(kind)} router routes this image`;
  if (!l) { $('slots').replaceChildren(); $('slot-note').textContent = ''; return; }
  [...$('layers').children].forEach((b, i) => b.setAttribute('aria-selected', String(i === state.layer)));
  if (kind !== 'soft') {
    const { load, dropped, tokens } = routeCounts(l);
    $('slot-note').textContent = `(${l.experts} experts; block ${l.block}; ${dropped} of ${tokens} patches dropped; loads ${load.join(', ')})`;
    $('slots').dataset.kind = kind;
    renderSparse($('slots'), l, (canvas, dim) => drawGray(canvas, state.pixels, dim), expertColour);
    return;
  }
  const { grid, experts: n, slotsPerExpert: p, dispatch: D, combine: C } = l;
  const m = grid * grid, s = n * p;
  $('slot-note').textContent = `(${n} experts × ${p} slots; block ${l.block})`;

  // Slot cards: the image, dimmed, under each slot's dispatch weights, scaled to the slot's own range.
  const slots = $('slots');
  if (slots.children.length !== s || slots.dataset.kind !== 'soft') {
    slots.dataset.kind = 'soft';
    slots.replaceChildren();
    for (let j = 0; j < s; j++) {
      const card = document.createElement('div');
      card.className = 'slot';
      card.dataset.slot = j;
      const e = Math.floor(j / p);
      card.style.borderColor = expertColour(e, n);
      card.innerHTML = `<canvas width="84" height="84"></canvas><div class="label"><i></i><span></span></div>`;
      card.querySelector('i').style.background = expertColour(e, n);
      card.querySelector('span').textContent = `expert ${e} · slot ${j % p}`;
      card.addEventListener('mouseenter', () => { state.hoverSlot = j; drawCombine(); });
      card.addEventListener('mouseleave', () => { state.hoverSlot = -1; drawCombine(); });
      slots.appendChild(card);
    }
  }
  for (let j = 0; j < s; j++) {
    const canvas = slots.children[j].querySelector('canvas');
    let max = 0, min = Infinity;
    for (let t = 0; t < m; t++) { max = Math.max(max, D[t * s + j]); min = Math.min(min, D[t * s + j]); }
    drawGray(canvas, state.pixels, 0.35);
    const ctx = canvas.getContext('2d');
    const cell = canvas.width / grid;
    for (let t = 0; t < m; t++) {
      const [r, g, b] = viridis((D[t * s + j] - min) / Math.max(max - min, 1e-12));
      ctx.fillStyle = `rgba(${r},${g},${b},0.78)`;
      ctx.fillRect((t % grid) * cell, Math.floor(t / grid) * cell, cell, cell);
    }
  }

  // Expert importance: combine mass per expert over the image's patches.
  const mass = new Array(n).fill(0);
  for (let t = 0; t < m; t++) for (let j = 0; j < s; j++) mass[Math.floor(j / p)] += C[t * s + j];
  const maxMass = Math.max(...mass);
  const imp = $('importance');
  imp.replaceChildren();
  mass.forEach((v, e) => {
    const bar = document.createElement('div');
    bar.style.height = `${(100 * v) / maxMass}%`;
    bar.style.background = expertColour(e, n);
    bar.title = `expert ${e}: ${((100 * v) / m).toFixed(1)}% of the combine weight`;
    imp.appendChild(bar);
  });
  const legend = $('expert-legend');
  if (legend.children.length !== n) {
    legend.replaceChildren();
    for (let e = 0; e < n; e++) {
      const chip = document.createElement('span');
      chip.className = 'chip';
      chip.innerHTML = `<i></i>${e}`;
      chip.querySelector('i').style.background = expertColour(e, n);
      legend.appendChild(chip);
    }
  }
  drawCombine();
}

function dominant(C, t, n, p) {
  const s = n * p;
  let best = 0, bestMass = -1;
  for (let e = 0; e < n; e++) {
    let v = 0;
    for (let k = 0; k < p; k++) v += C[t * s + e * p + k];
    if (v > bestMass) { bestMass = v; best = e; }
  }
  return [best, bestMass];
}

function drawCombine() {
  const l = state.result?.layers[state.layer];
  if (l?.kind !== 'soft') return;
  const { grid, experts: n, slotsPerExpert: p, dispatch: D, combine: C } = l;
  const m = grid * grid, s = n * p;
  const canvas = $('combine');
  const ctx = canvas.getContext('2d');
  const cell = canvas.width / grid;
  drawGray(canvas, state.pixels);
  for (let t = 0; t < m; t++) {
    const [e, w] = dominant(C, t, n, p);
    ctx.globalAlpha = 0.15 + 0.75 * Math.min(1, w);
    ctx.fillStyle = expertColour(e, n);
    ctx.fillRect((t % grid) * cell, Math.floor(t / grid) * cell, cell, cell);
  }
  ctx.globalAlpha = 1;
  if (state.hoverSlot >= 0) {
    // The patches the hovered slot reads, outlined in proportion to its dispatch weights.
    const j = state.hoverSlot;
    let max = 0;
    for (let t = 0; t < m; t++) max = Math.max(max, D[t * s + j]);
    ctx.strokeStyle = '#fff';
    for (let t = 0; t < m; t++) {
      const v = D[t * s + j] / max;
      if (v < 0.15) continue;
      ctx.lineWidth = 1 + 3 * v;
      ctx.strokeRect((t % grid) * cell + 2, Math.floor(t / grid) * cell + 2, cell - 4, cell - 4);
    }
  }
  if (state.hoverPatch >= 0) {
    const t = state.hoverPatch;
    ctx.strokeStyle = '#fff';
    ctx.lineWidth = 3;
    ctx.strokeRect((t % grid) * cell + 1, Math.floor(t / grid) * cell + 1, cell - 2, cell - 2);
  }
  // Slot cards: on a hovered patch, fade each slot by the patch's combine weight on it.
  const cards = $('slots').children;
  let maxC = 0;
  if (state.hoverPatch >= 0) for (let j = 0; j < s; j++) maxC = Math.max(maxC, C[state.hoverPatch * s + j]);
  for (let j = 0; j < cards.length; j++) {
    cards[j].style.opacity = state.hoverPatch >= 0 ? String(0.15 + 0.85 * C[state.hoverPatch * s + j] / maxC) : '1';
    cards[j].classList.toggle('active', j === state.hoverSlot);
  }
}

function patchInfo(t) {
  const l = state.result.layers[state.layer];
  const { grid, experts: n, slotsPerExpert: p, combine: C } = l;
  const s = n * p;
  const byExpert = Array.from({ length: n }, (_, e) => [e, C.slice(t * s + e * p, t * s + (e + 1) * p).reduce((a, b) => a + b, 0)]);
  byExpert.sort((a, b) => b[1] - a[1]);
  const top = byExpert.slice(0, 3).map(([e, w]) => `expert ${e} ${(100 * w).toFixed(0)}%`).join(', ');
  return `patch (${Math.floor(t / grid)}, ${t % grid}): output from ${top}`;
}

function setupCombineHover() {
  const canvas = $('combine');
  canvas.addEventListener('mousemove', (ev) => {
    const l = state.result?.layers[state.layer];
    if (l?.kind !== 'soft') return;
    const rect = canvas.getBoundingClientRect();
    const gx = Math.floor(((ev.clientX - rect.left) / rect.width) * l.grid);
    const gy = Math.floor(((ev.clientY - rect.top) / rect.height) * l.grid);
    const t = Math.min(l.grid - 1, Math.max(0, gy)) * l.grid + Math.min(l.grid - 1, Math.max(0, gx));
    if (t !== state.hoverPatch) { state.hoverPatch = t; $('patch-info').textContent = patchInfo(t); drawCombine(); }
  });
  canvas.addEventListener('mouseleave', () => { state.hoverPatch = -1; $('patch-info').textContent = 'Hover a patch.'; drawCombine(); });
}

// ---- input: drawing and upload ------------------------------------------------------------
function setupDrawing() {
  const canvas = $('draw');
  const ctx = canvas.getContext('2d');
  const clear = () => { ctx.fillStyle = '#000'; ctx.fillRect(0, 0, canvas.width, canvas.height); };
  clear();
  let drawing = false, last = null, timer = null;
  const pos = (ev) => { const r = canvas.getBoundingClientRect(); return [((ev.clientX - r.left) / r.width) * canvas.width, ((ev.clientY - r.top) / r.height) * canvas.height]; };
  const submit = () => {
    if (state.truth && !state.truth.endsWith('(edited)')) state.truth += ' (edited)';
    document.querySelectorAll('.gallery canvas').forEach((c) => c.classList.remove('selected'));
    state.model.pixels(canvas).then(classify, (e) => setStatus(`error: ${e.message ?? e}`, 'error'));
  };
  canvas.addEventListener('pointerdown', (ev) => { drawing = true; last = pos(ev); canvas.setPointerCapture(ev.pointerId); });
  canvas.addEventListener('pointermove', (ev) => {
    if (!drawing) return;
    const p = pos(ev);
    ctx.strokeStyle = '#fff'; ctx.lineWidth = 22; ctx.lineCap = 'round'; ctx.lineJoin = 'round';
    ctx.beginPath(); ctx.moveTo(...last); ctx.lineTo(...p); ctx.stroke();
    last = p;
    clearTimeout(timer); timer = setTimeout(submit, 120);
  });
  canvas.addEventListener('pointerup', () => { drawing = false; submit(); });
  $('clear').addEventListener('click', () => { clear(); state.truth = null; });
  $('upload').addEventListener('change', async (ev) => {
    const file = ev.target.files[0];
    if (!file) return;
    try {
      // The file's own pixels (no colour management), centred at their own resolution in a black
      // square; the wasm converts that square to grayscale and resizes it to 28×28, as
      // `softmoe classify --images FILE.png` does for a square PNG.
      const bitmap = await createImageBitmap(file, { colorSpaceConversion: 'none', premultiplyAlpha: 'none' });
      const side = Math.max(bitmap.width, bitmap.height);
      const x0 = Math.floor((side - bitmap.width) / 2), y0 = Math.floor((side - bitmap.height) / 2);
      const square = new OffscreenCanvas(side, side);
      const sq = square.getContext('2d');
      sq.fillStyle = '#000';
      sq.fillRect(0, 0, side, side);
      sq.drawImage(bitmap, x0, y0);
      // Fashion-MNIST is light on dark: invert photos on a light background (judged by the image's
      // top and bottom rows).
      const data = sq.getImageData(x0, y0, bitmap.width, bitmap.height).data;
      let edge = 0, count = 0;
      for (let x = 0; x < bitmap.width; x++) for (const y of [0, bitmap.height - 1]) { const i = (y * bitmap.width + x) * 4; edge += data[i] + data[i + 1] + data[i + 2]; count += 3; }
      if (edge / count > 127) { sq.globalCompositeOperation = 'difference'; sq.fillStyle = '#fff'; sq.fillRect(x0, y0, bitmap.width, bitmap.height); sq.globalCompositeOperation = 'source-over'; }
      state.truth = null;
      document.querySelectorAll('.gallery canvas').forEach((c) => c.classList.remove('selected'));
      const pixels = await state.model.pixels(square);
      drawGray(canvas, pixels); // the model's input becomes the drawing, so it can be edited by hand
      await classify(pixels);
    } catch (e) {
      console.error(e);
      setStatus(`error: ${file.name}: ${e.message ?? e}`, 'error');
    } finally {
      ev.target.value = '';
    }
  });
}

// ---- batch effect: the same image alone and inside a batch of other samples -----------------
const BATCH = 8;

async function batchEffect() {
  while (state.busy) await new Promise((r) => setTimeout(r, 5));
  state.busy = true;
  try {
    const { images, labels } = state.samples;
    const per = SIDE * SIDE;
    const selected = Number(document.querySelector('.gallery canvas.selected')?.dataset.sample ?? -1);
    const others = [];
    for (let k = 0; others.length < BATCH - 1; k++) if (k !== selected) others.push(k % labels.data.length);
    const pixels = new Float32Array(BATCH * per);
    pixels.set(state.pixels, 0);
    others.forEach((k, i) => pixels.set(images.data.subarray(k * per, (k + 1) * per), (i + 1) * per));
    const [inBatch] = await state.model.classifyBatch(pixels, { maps: true });
    const alone = state.result;
    let maxDiff = 0, identical = true;
    alone.logits.forEach((v, k) => { maxDiff = Math.max(maxDiff, Math.abs(v - inBatch.logits[k])); if (v !== inBatch.logits[k]) identical = false; });
    const dropped = (r) => r.layers.filter((l) => l.kind !== 'soft').map((l) => routeCounts(l).dropped);
    const effect = { identical, maxDiff, alone: alone.className, batched: inBatch.className, droppedAlone: dropped(alone), droppedBatch: dropped(inBatch) };
    const out = $('batch-result');
    out.dataset.identical = String(identical);
    const drops = effect.droppedAlone.length
      ? ` Dropped patches per sparse block: alone ${effect.droppedAlone.join(', ')}; in the batch ${effect.droppedBatch.join(', ')}.`
      : '';
    out.textContent = identical
      ? `Identical to the bit: alone and in a batch of ${BATCH}, the logits are the same (${effect.alone}).${drops}`
      : `Changed: max |Δlogit| ${maxDiff.toExponential(2)}; prediction alone ${effect.alone}, in the batch ${effect.batched}.${drops}`;
    return effect;
  } finally {
    state.busy = false;
  }
}

// ---- models ---------------------------------------------------------------------------------
async function useModel(name) {
  setStatus('loading model');
  const backend = params.get('backend') ?? 'auto';
  const worker = params.has('worker') ? params.get('worker') !== 'false' : undefined;
  // f16 expert weights where the adapter has shader-f16 (the page says which); ?precision=f32 for the official math.
  const precision = params.get('precision') ?? 'auto';
  const onProgress = ({ stage, bytesLoaded, bytesTotal }) => {
    const bytes = stage === 'fetch' && bytesTotal ? ` ${Math.round((100 * bytesLoaded) / bytesTotal)}%` : '';
    setStatus(`loading model: ${stage}${bytes}`);
  };
  const previous = state.model;
  state.model = await loadModel(`./models/${name}`, { backend, worker, precision, onProgress });
  previous?.dispose(); // its GPU memory and its worker, now that the new model is in
  state.modelName = name;
  state.model.addEventListener('backendchange', (ev) => { $('backend').textContent = ev.detail.backend; $('adapter').textContent = ev.detail.adapter; $('precision').textContent = state.model.precision; });
  [...$('models').children].forEach((b) => b.setAttribute('aria-selected', String(b.dataset.model === name)));
  $('backend').textContent = state.model.backend;
  $('adapter').textContent = state.model.adapter;
  $('precision').textContent = state.model.precision;
  if (state.model.fallbackReason) $('adapter').title = state.model.fallbackReason;
  $('thread').textContent = state.model.worker ? 'a Web Worker' : 'the page';
  const t = state.model.loadReport.timings;
  $('thread').title = `loaded in ${t.total.toFixed(0)} ms${state.model.loadReport.files.every((f) => f.fromCache) ? ' from the cache' : ''}`;
  const c = state.model.config;
  const moe = c.moe_layers.length === 0 ? 'dense MLPs'
    : c.moe_type && c.moe_type !== 'soft'
      ? `${routerName(c.moe_type)} in blocks ${c.moe_layers.join(', ')}, ${c.num_experts} experts, capacity factor ${c.capacity_factor}, groups of ${c.group_size} images`
      : `Soft MoE in blocks ${c.moe_layers.join(', ')}, ${c.num_experts} experts × ${c.slots_per_expert} slots`;
  // `softmoe analyze`'s report, shipped beside the Soft MoE models' weights (others have none to ask for).
  const soft = c.moe_layers.length > 0 && (!c.moe_type || c.moe_type === 'soft');
  state.analysis = soft ? await fetch(`./models/${name}/analysis.json`).then((r) => (r.ok ? r.json() : null)).catch(() => null) : null;
  // The training record (accuracy) is in the model's config.json, beside what the loader reads.
  const training = await fetch(`./models/${name}/config.json`).then((r) => r.json()).then((j) => j.training).catch(() => null);
  const acc = training?.test_accuracy ? `, test accuracy ${(100 * training.test_accuracy).toFixed(2)}%` : '';
  $('model-info').textContent = `ViT: ${c.num_layers} blocks, d=${c.hidden_size}, ${moe}${acc}`;
  $('batch-result').textContent = '';
}

function renderModelPicker() {
  for (const [name, label] of MODELS) {
    const b = document.createElement('button');
    b.type = 'button';
    b.setAttribute('role', 'tab');
    b.dataset.model = name;
    b.textContent = label;
    b.addEventListener('click', () => switchModel(name));
    $('models').appendChild(b);
  }
}

async function switchModel(name) {
  while (state.busy) await new Promise((r) => setTimeout(r, 5));
  try {
    await useModel(name);
    params.set('model', name);
    history.replaceState(null, '', `?${params}`);
    await classify(state.pixels);
  } catch (e) {
    console.error(e);
    setStatus(`error: ${e.message ?? e}`, 'error');
  }
}

// ---- start ----------------------------------------------------------------------------------
async function main() {
  try {
    renderModelPicker();
    await useModel(state.modelName);
    $('batch-run').addEventListener('click', () => batchEffect().catch((e) => setStatus(`error: ${e.message ?? e}`, 'error')));
    state.samples = await loadSafetensors('./models/samples.safetensors');
    renderGallery();
    setupTrain($('train'), { model: () => state.model, modelName: () => state.modelName, samples: () => state.samples, drawGray, viridis, expertColour });
    setupDrawing();
    setupCombineHover();
    $('analysis').addEventListener('toggle', () => state.result && renderAnalysis($('analysis'), state.analysis, state.result.layers[state.layer]));
    const k = Math.min(Math.max(Number(params.get('sample') ?? 0) || 0, 0), state.samples.labels.data.length - 1);
    await selectSample(k);
  } catch (e) {
    console.error(e);
    setStatus(`error: ${e.message ?? e}`, 'error');
  }
}

// Tests drive the page through this hook: select sample k and wait for its result.
window.softmoeSelect = async (k) => { await selectSample(k); while (state.busy) await new Promise((r) => setTimeout(r, 5)); return window.softmoeLast; };
window.softmoeModel = async (name) => { await switchModel(name); while (state.busy) await new Promise((r) => setTimeout(r, 5)); return window.softmoeLast; };
window.softmoeBatchEffect = batchEffect;
window.softmoeConfig = () => JSON.stringify(state.model.config);
main();
