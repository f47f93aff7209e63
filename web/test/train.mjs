// The browser trainer (browser.test.mjs's part `train`): createTrainer in headless Chromium on
// SwiftShader's WebGPU — the loss falls, the export loads back through loadModelFromBytes and the
// native CLI, bad input rejects with typed errors — without WebGPU the typed refusal, and the demo's
// Train panel (start, pause, download, resume, curves, maps, no console errors).
import fs from 'node:fs';
import path from 'node:path';
import { execFileSync } from 'node:child_process';

// Fixed batch of the first FIT samples, trained on STEPS times: without learning each step's loss
// would be the same number (no update, the same batch), so a fall of MARGIN cannot come by chance.
const FIT = 16, STEPS = 10, MARGIN = 0.3;

/** `softmoe classify --json` of a model folder on the 64 samples: one result per sample. */
function nativeClassify(softmoe, dir, site) {
  const out = execFileSync(softmoe, ['classify', '--model', dir, '--images', path.join(site, 'models/samples.safetensors'), '--batch', '1', '--json'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  return out.trim().split('\n').map((l) => JSON.parse(l));
}

const maxDiff = (a, b) => (a.length !== b.length ? Infinity : Math.max(...Array.from(a, (v, i) => Math.abs(v - b[i]))));

async function runApi(t) {
  const { base, launch, check, watchErrors, measured, samples } = t;
  const pre = 'train (webgpu)';
  const browser = await launch(true);
  const page = await browser.newPage();
  const errors = [];
  watchErrors(page, errors);
  await page.goto(`${base}/blank.html`);
  const pixels = Array.from(samples.images.data);
  const labels = Array.from(samples.labels.data);
  const r = await page.evaluate(async ({ pixels, labels, FIT, STEPS }) => {
    const api = await import('/pkg/index.js');
    const config = await (await fetch('/models/soft-moe-vit/config.json')).text();
    const all = Float32Array.from(pixels), y = Int32Array.from(labels);
    const px = all.slice(0, FIT * 784), fitLabels = y.slice(0, FIT);
    const err = async (f) => { try { await f(); return null; } catch (e) { return { cls: e.constructor.name, code: e.code, message: e.message, key: e.key ?? null, expectedShape: e.expectedShape ?? null }; } };
    const out = {};
    const t0 = performance.now();
    const trainer = await api.createTrainer(config, { lr: 2e-3, seed: 7 });
    out.createMs = performance.now() - t0;
    out.info = { adapter: trainer.adapter, worker: trainer.worker, schedule: trainer.schedule, layers: trainer.config.moe_layers };
    out.before = await trainer.evaluate(px, fitLabels);
    out.steps = [];
    for (let s = 0; s < STEPS; s++) out.steps.push(await trainer.step(px, fitLabels));
    out.after = await trainer.evaluate(px, fitLabels);
    const mine = await trainer.classify(all, { maps: true });
    const exported = await trainer.export();
    out.exported = { configJson: exported.configJson, weights: Array.from(exported.weights), steps: exported.steps };
    const model = await api.loadModelFromBytes(exported.configJson, exported.weights, { backend: 'webgpu' });
    const theirs = await model.classifyBatch(all);
    out.reloaded = { backend: model.backend, same: theirs.every((c, i) => c.label === mine[i].label && c.logits.every((v, k) => v === mine[i].logits[k])), labels: theirs.map((c) => c.label), probs: theirs.map((c) => Array.from(c.probs)) };
    out.maps = mine[0].layers.map((l) => [l.kind, l.block, l.dispatch.length]);
    model.dispose();
    // Typed errors, each naming what is wrong.
    out.errors = {
      unknownOption: await err(() => api.createTrainer(config, { learningRate: 1 })),
      cpuBackend: await err(() => api.createTrainer(config, { backend: 'cpu' })),
      badLr: await err(() => api.createTrainer(config, { lr: -1 })),
      qkNorm: await err(() => api.createTrainer(JSON.stringify({ ...JSON.parse(config), attention_qk_norm: true }))),
      sparse: await err(async () => api.createTrainer(await (await fetch('/models/tokens-choice-vit/config.json')).text())),
      badWeights: await err(() => api.createTrainer(config, { weights: new Uint8Array([1, 2, 3]) })),
      shortPixels: await err(() => trainer.step(new Float32Array(100), [0])),
      intPixels: await err(() => trainer.step(new Int32Array(784), [0])),
      badLabel: await err(() => trainer.step(new Float32Array(784), [10])),
      labelCount: await err(() => trainer.step(new Float32Array(2 * 784), [1])),
      stepOption: await err(() => trainer.step(px, fitLabels, { rate: 1 })),
    };
    // A schedule: warm-up then cosine, and refused past its end.
    const sched = await api.createTrainer(config, { totalSteps: 3, warmupSteps: 1, lr: 1e-3 });
    const one = fitLabels.slice(0, 2), onePx = px.slice(0, 2 * 784);
    out.schedule = [];
    for (let s = 0; s < 3; s++) out.schedule.push((await sched.step(onePx, one)).lr);
    out.errors.pastSchedule = await err(() => sched.step(onePx, one));
    out.explicitLr = (await sched.step(onePx, one, { lr: 5e-4 })).lr;
    sched.dispose();
    // Fine-tuning a loaded Classifier: it starts from the model's weights, so it scores as the model does.
    const loaded = await api.loadModel('/models/soft-moe-vit', { backend: 'webgpu' });
    const loadedRight = (await loaded.classifyBatch(px)).filter((c, i) => c.label === fitLabels[i]).length / FIT;
    const tuned = await api.createTrainer(loaded, { lr: 1e-4 });
    out.fineTune = { loaded: loadedRight, trainer: (await tuned.evaluate(px, fitLabels)).accuracy, steps: tuned.steps };
    out.errors.classifierAndWeights = await err(() => api.createTrainer(loaded, { weights: new Uint8Array(8) }));
    tuned.dispose();
    loaded.dispose();
    trainer.dispose();
    out.errors.disposed = await err(() => trainer.step(px, fitLabels));
    return out;
  }, { pixels, labels, FIT, STEPS });

  const losses = r.steps.map((s) => s.loss);
  const k = 3, mean = (a) => a.reduce((x, y) => x + y, 0) / a.length;
  const first = mean(losses.slice(0, k)), last = mean(losses.slice(-k));
  check(r.info.worker === true && r.steps.map((s) => s.step).join() === Array.from({ length: STEPS }, (_, i) => i + 1).join() && r.steps.every((s) => s.lr === 2e-3 && s.batch === FIT),
    `${pre}: trainer in a worker, steps counted, constant lr without a schedule: ${JSON.stringify({ info: r.info, steps: r.steps.map((s) => [s.step, s.lr]) })}`);
  check(last < first - MARGIN, `${pre}: the loss falls: mean of the first ${k} steps ${first.toFixed(4)}, of the last ${k} ${last.toFixed(4)} (margin ${MARGIN}); all ${losses.map((l) => l.toFixed(3)).join(' ')}`);
  check(r.after.loss < r.before.loss - MARGIN && r.after.count === FIT, `${pre}: evaluate's loss on the batch ${r.before.loss.toFixed(4)} -> ${r.after.loss.toFixed(4)}, accuracy ${r.before.accuracy} -> ${r.after.accuracy}`);
  check(r.reloaded.backend === 'webgpu' && r.reloaded.same, `${pre}: the export loaded by loadModelFromBytes classifies the 64 samples as the trainer does, logits bit for bit: ${JSON.stringify({ backend: r.reloaded.backend, same: r.reloaded.same })}`);
  check(r.maps.length === 2 && r.maps.every(([kind, , n]) => kind === 'soft' && n === 49 * 16), `${pre}: the trainer's classify returns both Soft MoE blocks' maps: ${JSON.stringify(r.maps)}`);
  const cfg = JSON.parse(r.exported.configJson);
  check(cfg.training?.steps === STEPS && cfg.training?.seed === 7 && cfg.hidden_size === 64 && r.exported.steps === STEPS, `${pre}: the exported config.json's training record: ${JSON.stringify(cfg.training)}`);
  // The native CLI reads the same two files and classifies the samples as the page did.
  const dir = path.join(t.NATIVE_DIR, 'trained-api');
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, 'config.json'), r.exported.configJson);
  fs.writeFileSync(path.join(dir, 'model.safetensors'), Buffer.from(r.exported.weights));
  const native = nativeClassify(t.SOFTMOE, dir, t.SITE);
  const worst = Math.max(...native.map((n, i) => maxDiff(n.probs, r.reloaded.probs[i])));
  check(native.length === 64 && native.every((n, i) => n.label === r.reloaded.labels[i]) && worst <= t.TOL_WEBGPU,
    `${pre}: native softmoe classify --model of the export agrees on the 64 samples: largest probability difference ${worst.toExponential(2)} (tolerance ${t.TOL_WEBGPU})`);
  measured[`${pre}: export vs native classify`] = worst;
  const e = r.errors;
  const is = (x, cls, re) => x && x.cls === cls && re.test(x.message);
  check(is(e.unknownOption, 'InputError', /no option `learningRate`/), `${pre}: unknown option: ${JSON.stringify(e.unknownOption)}`);
  check(is(e.cpuBackend, 'InputError', /WebGPU only; there is no CPU trainer/), `${pre}: backend cpu: ${JSON.stringify(e.cpuBackend)}`);
  check(is(e.badLr, 'InputError', /lr must be a positive number, got -1/), `${pre}: lr -1: ${JSON.stringify(e.badLr)}`);
  check(is(e.qkNorm, 'ConfigError', /attention_qk_norm/) && e.qkNorm.key === 'attention_qk_norm', `${pre}: qk-norm config: ${JSON.stringify(e.qkNorm)}`);
  check(is(e.sparse, 'ConfigError', /.+/), `${pre}: Tokens Choice config: ${JSON.stringify(e.sparse)}`);
  check(is(e.badWeights, 'WeightsError', /model\.safetensors/), `${pre}: bad weights: ${JSON.stringify(e.badWeights)}`);
  check(is(e.shortPixels, 'InputError', /100 values, not a multiple of 784/) && JSON.stringify(e.shortPixels.expectedShape) === '["b",28,28]', `${pre}: 100 pixels: ${JSON.stringify(e.shortPixels)}`);
  check(is(e.intPixels, 'InputError', /Float32Array .* got Int32Array/), `${pre}: Int32Array pixels: ${JSON.stringify(e.intPixels)}`);
  check(is(e.badLabel, 'InputError', /label 0 is 10, not a class index in 0\.\.10/), `${pre}: label 10: ${JSON.stringify(e.badLabel)}`);
  check(is(e.labelCount, 'InputError', /1 labels for 2 images/), `${pre}: 1 label for 2 images: ${JSON.stringify(e.labelCount)}`);
  check(is(e.stepOption, 'InputError', /no option `rate`/), `${pre}: step option: ${JSON.stringify(e.stepOption)}`);
  check(is(e.pastSchedule, 'InputError', /3 steps are done/), `${pre}: past the schedule: ${JSON.stringify(e.pastSchedule)}`);
  check(r.fineTune.loaded >= 0.75 && r.fineTune.trainer === r.fineTune.loaded && r.fineTune.steps === 0, `${pre}: createTrainer(classifier) starts from the model's weights: ${JSON.stringify(r.fineTune)}`);
  check(is(e.classifierAndWeights, 'InputError', /a Classifier or options\.weights, not both/), `${pre}: a Classifier and weights: ${JSON.stringify(e.classifierAndWeights)}`);
  check(is(e.disposed, 'DisposedError', /disposed trainer/), `${pre}: after dispose: ${JSON.stringify(e.disposed)}`);
  // One warm-up step to the peak, then cosine over the 2 left: 1e-3·(1 + cos 0)/2, 1e-3·(1 + cos(π/2))/2.
  const want = [1e-3, 1e-3, 5e-4];
  check(r.schedule.length === 3 && r.schedule.every((v, i) => Math.abs(v - want[i]) < 1e-12) && r.explicitLr === 5e-4, `${pre}: warm-up + cosine lrs ${JSON.stringify(r.schedule)} (want ${JSON.stringify(want)}), an explicit lr ${r.explicitLr}`);
  const stepMs = r.steps.slice(1).map((s) => s.ms);
  measured[`${pre}: images/s on a batch of ${FIT} (shipped config)`] = `${((1000 * FIT) / mean(stepMs)).toFixed(1)} (step ${mean(stepMs).toFixed(0)} ms; first step ${r.steps[0].ms.toFixed(0)} ms, createTrainer ${r.createMs.toFixed(0)} ms)`;
  check(errors.length === 0, `${pre}: console errors: ${errors.join(' | ')}`);
  await browser.close();
}

async function runNoGpu(t) {
  const { base, launch, check, watchErrors } = t;
  const browser = await launch(false);
  const page = await browser.newPage();
  const errors = [];
  watchErrors(page, errors);
  await page.goto(`${base}/blank.html`);
  const r = await page.evaluate(async () => {
    const api = await import('/pkg/index.js');
    const config = await (await fetch('/models/soft-moe-vit/config.json')).text();
    try { await api.createTrainer(config); return 'created'; } catch (e) { return { cls: e.constructor.name, code: e.code, reason: e.reason, message: e.message, isTyped: e instanceof api.WebGpuUnavailableError }; }
  });
  check(r.isTyped && r.code === 'WEBGPU_UNAVAILABLE' && /training needs WebGPU \(there is no CPU trainer\)/.test(r.message) && /no GPU adapter/.test(r.reason),
    `train (cpu browser): createTrainer without WebGPU rejects with WebGpuUnavailableError: ${JSON.stringify(r)}`);
  check(errors.length === 0, `train (cpu browser): console errors: ${errors.join(' | ')}`);
  await browser.close();
}

async function runPanel(t) {
  const { base, launch, check, watchErrors, measured } = t;
  const pre = 'Train panel';
  const browser = await launch(true);
  const page = await browser.newPage({ viewport: { width: 1360, height: 1400 }, acceptDownloads: true });
  const errors = [];
  watchErrors(page, errors);
  await page.goto(`${base}/index.html`);
  await t.waitReady(page);
  const set = async (id, v) => page.fill(`#${id}`, String(v));
  const STEPS_UI = 8;
  await set('train-steps', STEPS_UI);
  await set('train-batch', 8);
  await set('train-eval-every', 4);
  await set('train-test-count', 100);
  await set('train-maps-every', 4);
  await set('train-sample', 3);
  // The main thread's longest stall from Start to done (training runs in the worker).
  await page.evaluate(() => {
    window.trainGap = 0;
    let last = performance.now();
    window.trainTimer = setInterval(() => { const now = performance.now(); window.trainGap = Math.max(window.trainGap, now - last); last = now; }, 10);
  });
  const t0 = Date.now();
  await page.click('#train-start');
  const state = () => page.evaluate(() => window.softmoeTrainState);
  await page.waitForFunction(() => (window.softmoeTrainState?.steps ?? 0) >= 3 || window.softmoeTrainState?.error, null, { timeout: 240_000, polling: 100 });
  const dataMs = Date.now() - t0;
  await page.click('#train-pause');
  // The step in flight when Pause came (and its test or maps, when due) finishes; then nothing runs.
  await page.waitForFunction(() => /^paused at step/.test(document.querySelector('#train-status')?.textContent ?? ''), null, { timeout: 120_000, polling: 100 });
  const paused = await state();
  await page.waitForTimeout(4000);
  const stillPaused = await state();
  const pauseLabel = await page.textContent('#train-pause');
  check(paused.paused && stillPaused.steps === paused.steps && stillPaused.steps < STEPS_UI && pauseLabel === 'Resume' && /^paused at step/.test(await page.textContent('#train-status')),
    `${pre}: pause holds training (steps ${paused.steps} -> ${stillPaused.steps} in 4 s, button "${pauseLabel}")`);
  // Download while paused: config.json and model.safetensors.
  const downloads = [];
  page.on('download', (d) => downloads.push(d));
  await page.click('#train-download');
  const t1 = Date.now();
  while (downloads.length < 2 && Date.now() - t1 < 30_000) await page.waitForTimeout(100);
  const dir = path.join(t.NATIVE_DIR, 'trained-panel');
  fs.mkdirSync(dir, { recursive: true });
  for (const d of downloads) await d.saveAs(path.join(dir, d.suggestedFilename()));
  const names = downloads.map((d) => d.suggestedFilename()).sort().join();
  check(names === 'config.json,model.safetensors', `${pre}: download gives ${names}`);
  if (names === 'config.json,model.safetensors') {
    const cfg = JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf8'));
    const native = nativeClassify(t.SOFTMOE, dir, t.SITE);
    check(native.length === 64 && cfg.training?.steps === stillPaused.steps, `${pre}: native softmoe classify --model loads the download (${native.length} samples classified; training record at step ${cfg.training?.steps}, paused at ${stillPaused.steps})`);
  }
  await page.click('#train-pause');
  check((await page.textContent('#train-pause')) === 'Pause', `${pre}: the button reads Pause again after Resume`);
  await page.waitForFunction(() => /^done|^error/.test(document.querySelector('#train-status')?.textContent ?? ''), null, { timeout: 240_000, polling: 200 });
  const done = await state();
  const gap = await page.evaluate(() => { clearInterval(window.trainTimer); return window.trainGap; });
  const status = await page.textContent('#train-status');
  check(done.error === null && /^done: 8 steps · test accuracy \d+\.\d% on 100 images/.test(status) && done.losses.length === STEPS_UI && done.losses.every(Number.isFinite),
    `${pre}: trains to the end: "${status}" ${JSON.stringify({ error: done.error, losses: done.losses })}`);
  check(done.evals.map((e) => e.step).join() === '0,4,8' && done.evals.every((e) => e.count === 100 && e.accuracy >= 0 && e.accuracy <= 1 && Number.isFinite(e.loss)),
    `${pre}: test accuracy at steps 0, 4 and 8: ${JSON.stringify(done.evals)}`);
  const maps = await page.evaluate(() => {
    const box = document.querySelector('#train-slots');
    const lit = [...box.children].filter((c) => { const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data; return d.some((v, i) => i % 4 !== 3 && v > 0); }).length;
    return { step: box.dataset.step, slots: box.children.length, lit, note: document.querySelector('#train-maps-note').textContent };
  });
  check(maps.step === '8' && maps.slots === 16 && maps.lit === 16 && /sample 3 \(/.test(maps.note), `${pre}: the slot maps of sample 3 redrawn at step 8: ${JSON.stringify(maps)}`);
  const curves = await page.evaluate(() => ['#train-loss', '#train-acc'].map((id) => { const c = document.querySelector(id); const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data; let n = 0; for (let i = 3; i < d.length; i += 4) n += d[i] > 0 ? 1 : 0; return n; }));
  check(curves.every((n) => n > 500), `${pre}: the loss and accuracy curves are drawn (${curves.join(', ')} painted pixels)`);
  check(done.imagesPerSecond > 0 && done.worker === true, `${pre}: ${done.imagesPerSecond.toFixed(1)} images/s, in a worker: ${done.worker}`);
  check(gap < 1000, `${pre}: the page's longest stall while loading the data and training: ${gap.toFixed(0)} ms`);
  measured[`${pre}: images/s at batch 8 (SwiftShader)`] = done.imagesPerSecond.toFixed(1);
  measured[`${pre}: Fashion-MNIST fetched and decoded + 3 steps`] = `${(dataMs / 1000).toFixed(1)} s; longest main-thread stall ${gap.toFixed(0)} ms`;
  await page.screenshot({ path: path.join(t.SHOTS, 'demo-train.png'), fullPage: true });
  check(errors.length === 0, `${pre}: console errors: ${errors.join(' | ')}`);
  await browser.close();
}

export async function runTrain(t) {
  await runApi(t);
  await runNoGpu(t);
  await runPanel(t);
}
