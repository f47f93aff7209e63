// The routing picture of a sparse MoE block (Tokens Choice or Experts Choice): for each expert, the
// patches it took (shaded by the token's gate for it), and the patches no expert took (dropped).

const NAMES = { tokens_choice: 'Tokens Choice', experts_choice: 'Experts Choice' };

export function routerName(kind) {
  return NAMES[kind] ?? kind;
}

/** Tokens taken per expert and tokens dropped, from a layer's slots [m·n] (-1 = not taken). */
export function routeCounts(layer) {
  const { grid, experts: n, slots } = layer;
  const m = grid * grid;
  const load = new Array(n).fill(0);
  let dropped = 0;
  for (let t = 0; t < m; t++) {
    let any = false;
    for (let e = 0; e < n; e++) if (slots[t * n + e] >= 0) { load[e]++; any = true; }
    if (!any) dropped++;
  }
  return { load, dropped, tokens: m };
}

/**
 * Draws one card per expert plus a "dropped" card into `container`.
 * `drawImage(canvas, dim)` paints the input image; `colour(e, n)` gives an expert's colour.
 */
export function renderSparse(container, layer, drawImage, colour) {
  const { grid, experts: n, gates, slots } = layer;
  const m = grid * grid;
  const { load, dropped } = routeCounts(layer);
  container.replaceChildren();
  const card = (title, colourCss) => {
    const el = document.createElement('div');
    el.className = 'slot';
    el.style.borderColor = colourCss;
    el.innerHTML = `<canvas width="84" height="84"></canvas><div class="label"><i></i><span></span></div>`;
    el.querySelector('i').style.background = colourCss;
    el.querySelector('span').textContent = title;
    container.appendChild(el);
    const canvas = el.querySelector('canvas');
    drawImage(canvas, 0.35);
    return canvas.getContext('2d');
  };
  const cell = 84 / grid;
  for (let e = 0; e < n; e++) {
    const ctx = card(`expert ${e} · ${load[e]} tokens`, colour(e, n));
    ctx.fillStyle = colour(e, n);
    for (let t = 0; t < m; t++) {
      if (slots[t * n + e] < 0) continue;
      ctx.globalAlpha = 0.35 + 0.6 * Math.min(1, gates[t * n + e] * n / 2);
      ctx.fillRect((t % grid) * cell, Math.floor(t / grid) * cell, cell, cell);
    }
    ctx.globalAlpha = 1;
  }
  const ctx = card(`dropped · ${dropped} tokens`, '#d33');
  ctx.fillStyle = '#e33';
  for (let t = 0; t < m; t++) {
    let any = false;
    for (let e = 0; e < n; e++) if (slots[t * n + e] >= 0) any = true;
    if (!any) ctx.fillRect((t % grid) * cell + 1, Math.floor(t / grid) * cell + 1, cell - 2, cell - 2);
  }
  container.lastChild.dataset.dropped = String(dropped);
}
