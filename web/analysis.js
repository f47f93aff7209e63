// The Analysis view: the figures of `softmoe analyze` (weights/<model>/analysis.json, schema
// docs/analysis.schema.json) for the loaded model's Soft MoE block, with the current image's
// per-slot values placed on the test split's distributions (is this slot unusually peaked here?).

const VIRIDIS = [[68, 1, 84], [59, 82, 139], [33, 145, 140], [94, 201, 98], [253, 231, 37]];
function mix(stops, t) {
  const x = Math.min(Math.max(Number.isFinite(t) ? t : 0, 0), 1) * (stops.length - 1);
  const i = Math.min(Math.floor(x), stops.length - 2), f = x - i;
  return stops[i].map((a, k) => Math.round(a + f * (stops[i + 1][k] - a)));
}
const viridis = (t) => `rgb(${mix(VIRIDIS, t).join(',')})`;
const diverging = (c) => `rgb(${mix([[49, 54, 149], [255, 255, 255], [165, 0, 38]], (c + 1) / 2).join(',')})`;

// The current image's per-slot statistics, as docs/analysis.md defines them (natural logs).
export function imageStats(layer) {
  const { grid, experts: n, slotsPerExpert: p, dispatch: D } = layer;
  const s = n * p, m = D.length / s;
  const entropy = [], effective = [];
  for (let j = 0; j < s; j++) {
    let h = 0, sq = 0;
    for (let i = 0; i < m; i++) { const d = D[i * s + j]; if (d > 0) h -= d * Math.log(d); sq += d * d; }
    entropy.push(h); effective.push(1 / sq);
  }
  return { grid, s, m, entropy, effective };
}

// The share of the data set's images below `v`, from a histogram (linear within the bin).
export function percentile(hist, v) {
  const { lo, hi, counts } = hist;
  const total = counts.reduce((a, b) => a + b, 0);
  if (!total) return NaN;
  const w = (hi - lo) / counts.length;
  let below = 0;
  for (let b = 0; b < counts.length; b++) {
    const start = lo + b * w;
    if (v >= start + w) below += counts[b];
    else if (v > start) below += counts[b] * ((v - start) / w);
  }
  return below / total;
}

function canvas(parent, id, w, h, label) {
  const c = document.createElement('canvas');
  c.width = w; c.height = h; c.dataset.testid = id; c.setAttribute('aria-label', label);
  parent.appendChild(c);
  const ctx = c.getContext('2d');
  ctx.fillStyle = '#fff'; ctx.fillRect(0, 0, w, h);
  ctx.font = '11px system-ui, sans-serif'; ctx.fillStyle = '#1c2330';
  return ctx;
}

function figure(body, title, note) {
  const f = document.createElement('figure');
  f.innerHTML = '<figcaption><b></b> <span class="muted"></span></figcaption>';
  f.querySelector('b').textContent = title;
  f.querySelector('span').textContent = note;
  body.appendChild(f);
  return f;
}

// Mean dispatch map per slot, each scaled to its own maximum; the current image's map beside it.
function drawMaps(body, report, block, current) {
  const g = report.grid, off = report.class_token ? 1 : 0, cell = 9, tile = g * cell;
  const cols = Math.min(block.slots.length, 8), rows = Math.ceil(block.slots.length / cols);
  const f = figure(body, 'Mean dispatch map per slot', `over ${report.images.toLocaleString('en')} images; below each, this image's`);
  const ctx = canvas(f, 'analysis-maps', cols * (tile + 12) + 4, rows * (2 * tile + 30), 'mean dispatch map of each slot');
  block.slots.forEach((slot, j) => {
    const x0 = 4 + (j % cols) * (tile + 12), y0 = Math.floor(j / cols) * (2 * tile + 30);
    ctx.fillStyle = '#1c2330'; ctx.fillText(`s${j} e${slot.expert}`, x0, y0 + 11);
    const maps = [slot.mean_dispatch.slice(off)];
    if (current) maps.push(Array.from({ length: g * g }, (_, i) => current.dispatch[(i + off) * current.s + j]));
    maps.forEach((map, k) => {
      const max = Math.max(...map);
      map.forEach((v, i) => {
        ctx.fillStyle = viridis(max > 0 ? v / max : 0);
        ctx.fillRect(x0 + (i % g) * cell, y0 + 15 + k * (tile + 2) + Math.floor(i / g) * cell, cell, cell);
      });
    });
  });
}

// Each slot's dispatch entropy over the test images (zoomed bins), with this image's value in red.
function drawEntropy(body, block, stats) {
  const f = figure(body, 'Dispatch entropy per slot', 'nats, bins over the block\u2019s range; red: this image (its percentile)');
  const pw = 118, ph = 62, cols = 8, rows = Math.ceil(block.slots.length / cols);
  const ctx = canvas(f, 'analysis-entropy', cols * (pw + 8), rows * (ph + 34), 'dispatch entropy histograms per slot');
  const notes = [];
  block.slots.forEach((slot, j) => {
    const { zoom } = slot.dispatch_entropy;
    const x0 = (j % cols) * (pw + 8) + 2, y0 = Math.floor(j / cols) * (ph + 34) + 14;
    const top = Math.max(1, ...zoom.counts), bw = pw / zoom.counts.length;
    ctx.fillStyle = '#3b528b';
    zoom.counts.forEach((c, b) => { const hh = (c / top) * ph; ctx.fillRect(x0 + b * bw, y0 + ph - hh, bw - 1, hh); });
    ctx.fillStyle = '#1c2330';
    let label = `s${j}`;
    if (stats) {
      const v = stats.entropy[j], q = percentile(slot.dispatch_entropy, v);
      const x = x0 + Math.min(Math.max((v - zoom.lo) / Math.max(zoom.hi - zoom.lo, 1e-12), 0), 1) * pw;
      ctx.fillStyle = '#c62828'; ctx.fillRect(x - 1, y0 - 4, 2, ph + 4);
      label += ` ${v.toFixed(2)} (${Math.round(100 * q)}%)`;
      if (q < 0.05) notes.push(`slot ${j} is unusually peaked for this image (entropy ${v.toFixed(2)}, below ${Math.round(100 * q) || '<1'}% of the test images; it mixes ${stats.effective[j].toFixed(1)} effective patches)`);
      if (q > 0.95) notes.push(`slot ${j} is unusually flat for this image (entropy ${v.toFixed(2)}, above ${Math.round(100 * q)}% of the test images)`);
      ctx.fillStyle = q < 0.05 || q > 0.95 ? '#c62828' : '#1c2330';
    }
    ctx.fillText(label, x0, y0 + ph + 14);
  });
  const p = document.createElement('p');
  p.className = 'explain'; p.dataset.testid = 'analysis-notes';
  p.textContent = stats ? (notes.length ? notes.join('; ') + '.' : 'No slot is unusually peaked or flat for this image (all within the test images\u2019 5th\u201395th percentiles).') : '';
  f.appendChild(p);
}

// Classes × slots: the mean combine mass an image of the class reads from each slot.
function drawClasses(body, report, block) {
  const m = block.class_slot_combine_mass, s = m[0].length, cell = 18, left = 92;
  const f = figure(body, 'Combine mass per class and slot', 'how much of an image\u2019s output comes from each slot, mean per class');
  const ctx = canvas(f, 'analysis-classes', left + s * cell + 4, 16 + m.length * cell, 'class by slot heat map');
  const max = Math.max(...m.flat());
  for (let j = 0; j < s; j++) ctx.fillText(String(j), left + j * cell + 3, 11);
  m.forEach((row, k) => {
    ctx.fillStyle = '#1c2330'; ctx.fillText(report.classes[k], 2, 16 + k * cell + 13);
    row.forEach((v, j) => { ctx.fillStyle = viridis(v / max); ctx.fillRect(left + j * cell, 16 + k * cell, cell - 1, cell - 1); });
  });
}

// The slots' cosine similarity: Φ̂ columns and mean dispatch maps minus 1/m.
function drawSimilarity(body, block) {
  const f = figure(body, 'Slot similarity', 'cosine of Φ̂ columns | of mean dispatch maps minus 1/m (blue −1, red +1)');
  const mats = [block.similarity.phi, block.similarity.dispatch_centered], s = mats[0].length, cell = Math.max(4, Math.floor(150 / s));
  const ctx = canvas(f, 'analysis-similarity', 2 * (s * cell) + 20, s * cell + 4, 'slot cosine similarity matrices');
  mats.forEach((mat, k) => mat.forEach((row, a) => row.forEach((c, b) => {
    ctx.fillStyle = diverging(c); ctx.fillRect(2 + k * (s * cell + 16) + b * cell, 2 + a * cell, cell, cell);
  })));
  const pairs = block.similarity.top_phi_pairs.map((q) => `${q.a}–${q.b} (${q.cosine.toFixed(3)})`).join(', ');
  const p = document.createElement('p');
  p.className = 'explain'; p.textContent = `Most similar Φ̂ pairs: ${pairs}.`;
  f.appendChild(p);
}

// Draws the view into `root` for the current Soft MoE layer (or says why there is nothing to draw).
export function renderAnalysis(root, report, layer) {
  const body = root.querySelector('.analysis-body');
  const note = root.querySelector('.analysis-note');
  body.replaceChildren();
  const block = report && layer && layer.kind === 'soft' ? report.blocks.find((b) => b.block === layer.block) : null;
  root.hidden = !report;
  if (!block) { note.textContent = report ? 'Pick a Soft MoE block.' : ''; return; }
  note.textContent = `block ${block.block}, ${report.images.toLocaleString('en')} test images (${report.backend}); the routing card's current image placed on them`;
  if (!root.open) return; // drawn when opened
  const stats = imageStats(layer);
  drawMaps(body, report, block, { dispatch: layer.dispatch, s: stats.s });
  drawEntropy(body, block, stats);
  drawClasses(body, report, block);
  drawSimilarity(body, block);
}
