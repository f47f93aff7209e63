// softmoe: Soft Mixture-of-Experts on WebGPU. The ES-module API over the wasm build: fetching with
// progress and caching, a worker by default, typed errors, recovery after a lost GPU device; the
// model itself runs in Rust (WebGPU, or the CPU path in the wasm).

import init, { SoftMoeLayer as RawLayer } from './softmoe_wasm.js';
import type { ActiveBackend, Backend, ClassTokenMaps, Classification, LayerResult, ModelConfig, Precision, RoutedLayer } from './softmoe_wasm.js';
import { Engine, type EngineEvent, type EngineInfo, type EngineOptions, type EngineStage } from './engine.js';
import { DisposedError, InputError, toSoftMoeError } from './errors.js';
import { baseUrl, fetchFiles, type FileReport } from './fetch.js';
import { RemoteEngine } from './remote.js';
import { create as createTrainerWith, type Trainer, type TrainerOptions } from './trainer.js';

export type { ActiveBackend, Backend, ClassTokenMaps, Classification, LayerResult, ModelConfig, Precision, RoutedLayer, FileReport };
export * from './errors.js';
export { clearCache, CACHE_NAME } from './fetch.js';
export { Trainer } from './trainer.js';
export type { EvalResult, ExportedModel, Labels, StepOptions, StepResult, TrainerOptions, TrainSchedule } from './trainer.js';

// `using` needs Symbol.dispose; where the browser has none yet, the registry's stands in.
(Symbol as { dispose?: symbol }).dispose ??= Symbol.for('Symbol.dispose');

let ready: Promise<unknown> | null = null;
let wasmUrl: string | null = null;

/** Loads the wasm module once (by default from beside this file); a worker loads the same URL. */
export function initialize(url?: string | URL): Promise<void> {
  if (url !== undefined) wasmUrl = new URL(String(url), baseUrl()).href;
  ready ??= init(wasmUrl ? { module_or_path: wasmUrl } : undefined);
  return ready.then(() => undefined);
}

/** What a value is, for messages: "a string", "Int32Array", "null". */
function describe(v: unknown): string {
  if (v === null || v === undefined) return String(v);
  if (typeof v !== 'object' && typeof v !== 'function') return `a ${typeof v}`;
  return (v as { constructor?: { name?: string } }).constructor?.name || 'an object';
}

/** A stage of a load: `fetch` (bytes arriving), then the stages where the model runs. */
export type LoadStage = 'fetch' | EngineStage;

/** One report of `onProgress`. */
export interface LoadProgress {
  stage: LoadStage;
  /** Bytes of config.json and model.safetensors in so far (from the network or the cache). */
  bytesLoaded: number;
  /** Their total, or null while a server has not said (no Content-Length, or compressed). */
  bytesTotal: number | null;
}

export interface ModelOptions {
  /** `'auto'` (default): WebGPU on a hardware adapter, else the CPU path in wasm (also on a
   * software adapter such as SwiftShader, which is slower than it); `'webgpu'`: WebGPU on any
   * adapter, or reject with WebGpuUnavailableError; `'cpu'`: the CPU path. */
  backend?: Backend;
  /** Load a weights file that holds tensors the config does not use (they are ignored); by default
   * such a file is refused with a WeightsError naming the first (say a qk-norm scale with
   * `attention_qk_norm` unset). */
  allowUnused?: boolean;
  /** How the Soft MoE experts' weights are stored on the GPU: `'f32'` (default; the official
   * math to ~1e-7), `'f16'` (half their memory and bandwidth, f32 arithmetic; the shipped model's probabilities move by up to ~1e-4;
   * rejects with ConfigError where the adapter lacks `shader-f16`, the model has no Soft MoE block
   * or runs on the CPU path) or `'auto'` (f16 where that works, else f32). `precision` on the
   * Classifier says which. */
  precision?: Precision;
  /** Run the model in a Web Worker (default: yes where `Worker` exists, unless the page has WebGPU
   * and workers do not). `true` insists; `false` runs it on this thread. */
  worker?: boolean;
  /** Run two forwards on a blank image at load (compiling every pipeline), so the first
   * `classify` is as fast as the rest. Default true. */
  warmup?: boolean;
  /** Called as the load goes: bytes while fetching, then each stage as it begins. */
  onProgress?: (progress: LoadProgress) => void;
}

export interface LoadModelOptions extends ModelOptions {
  /** Keep config.json and model.safetensors in the Cache API (default true): later loads of the
   * same URL read them from there, checked against their size and SHA-256. */
  cache?: boolean;
}

/** How a load went: the files, each stage's milliseconds, and where the model runs. */
export interface LoadReport {
  /** config.json and model.safetensors (empty for loadModelFromBytes). */
  files: FileReport[];
  /** Milliseconds per stage (`fetch`: until every byte is in; the rest where the model runs,
   * absent when skipped), and `total` from the call to ready. */
  timings: Partial<Record<LoadStage, number>> & { total: number };
  /** Whether the model runs in a Web Worker, and why not when it does not. */
  worker: boolean;
  workerReason: string | null;
}

export interface ClassifyOptions {
  /** Return each MoE block's routing in `layers` (default true for classify, false for classifyBatch). */
  maps?: boolean;
}

/**
 * S·S grayscale values in [0, 1] (Float32Array or array), or an ImageData or canvas of any size:
 * composited over black, Rec. 709 luma, resized to S×S (as `softmoe classify --images FILE.png`).
 */
export type ImageInput = Float32Array | number[] | ImageData | HTMLCanvasElement | OffscreenCanvas;

export interface DeviceLostDetail {
  reason: string;
}
export interface BackendChangeDetail {
  backend: ActiveBackend;
  adapter: string;
  fallbackReason: string | null;
  /** What happened: a new device and the weights uploaded again, or the move to the CPU and why. */
  reason: string;
}
export interface ClassifierEventMap {
  /** The GPU device was lost; the model is being re-created (a `backendchange` follows). */
  devicelost: CustomEvent<DeviceLostDetail>;
  /** The model runs on a new device, or on the CPU path, after a device loss. */
  backendchange: CustomEvent<BackendChangeDetail>;
}

const BACKENDS = ['auto', 'webgpu', 'cpu'];
const MODEL_KEYS = ['backend', 'allowUnused', 'precision', 'worker', 'warmup', 'onProgress'];
const PRECISIONS = ['f32', 'f16', 'auto'];

/** The options object, checked: known keys only, each of its type. */
function checkOptions<T extends object>(options: unknown, keys: string[], fn: string): Partial<T> {
  if (options === undefined) return {};
  if (options === null || typeof options !== 'object') throw new InputError(`softmoe: ${fn} takes an options object, got ${describe(options)}`, 'an options object');
  const o = options as Record<string, unknown>;
  for (const k of Object.keys(o)) {
    if (!keys.includes(k)) throw new InputError(`softmoe: ${fn} has no option \`${k}\` (it takes ${keys.join(', ')})`, `one of ${keys.join(', ')}`);
  }
  if (o.backend !== undefined && (typeof o.backend !== 'string' || !BACKENDS.includes(o.backend))) {
    const got = typeof o.backend === 'string' ? `\`${o.backend}\`` : describe(o.backend);
    throw new InputError(`softmoe: backend must be one of auto, webgpu, cpu, got ${got}`, 'auto, webgpu or cpu');
  }
  if (o.precision !== undefined && (typeof o.precision !== 'string' || !PRECISIONS.includes(o.precision))) {
    const got = typeof o.precision === 'string' ? `\`${o.precision}\`` : describe(o.precision);
    throw new InputError(`softmoe: precision must be one of f32, f16, auto, got ${got}`, 'f32, f16 or auto');
  }
  for (const k of ['allowUnused', 'worker', 'warmup', 'cache', 'maps']) {
    if (o[k] !== undefined && typeof o[k] !== 'boolean') throw new InputError(`softmoe: ${k} must be true or false, got ${describe(o[k])}`, 'a boolean');
  }
  if (o.onProgress !== undefined && typeof o.onProgress !== 'function') throw new InputError(`softmoe: onProgress must be a function, got ${describe(o.onProgress)}`, 'a function');
  return o as Partial<T>;
}

/** The model's runner: an Engine here, or one in the worker. */
interface Runner {
  info: EngineInfo;
  classify(pixels: Float32Array, maps: boolean): Promise<Classification[]>;
  pixels(image: ImageData, owned: boolean): Promise<Float32Array>;
  source(): Promise<{ configJson: string; weights: Uint8Array }>;
  dispose(): void;
}

const pageHasWebGpu = () => typeof navigator !== 'undefined' && !!(navigator as { gpu?: unknown }).gpu;

/** A worker with the wasm loaded, or null and why not. */
async function startWorker(want: boolean | undefined): Promise<{ remote: RemoteEngine | null; reason: string | null }> {
  if (want === false) return { remote: null, reason: 'worker: false was asked for' };
  if (typeof Worker === 'undefined') {
    if (want) throw new InputError('softmoe: worker: true, but there is no Worker here', 'worker: false');
    return { remote: null, reason: 'there is no Worker here' };
  }
  try {
    const { remote, hello } = await RemoteEngine.start(wasmUrl);
    if (want === undefined && pageHasWebGpu() && !hello.gpu) {
      remote.terminate();
      return { remote: null, reason: 'this browser has WebGPU on the page but not in workers' };
    }
    return { remote, reason: null };
  } catch (e) {
    if (want) throw toSoftMoeError(e);
    return { remote: null, reason: `the worker did not start (${toSoftMoeError(e).message})` };
  }
}

/**
 * A trainer for a model of `config` (config.json's text or object, or a loaded Classifier to fine-tune) on
 * WebGPU, in a worker by default: from `options.weights` (model.safetensors bytes) to fine-tune, or
 * freshly initialised. Rejects with WebGpuUnavailableError without an adapter (there is no CPU
 * trainer), ConfigError for a config training cannot handle, InputError for bad options.
 */
export async function createTrainer(config: string | ModelConfig | object | Classifier, options?: TrainerOptions): Promise<Trainer> {
  const host = { initialize: () => initialize(), startWorker };
  if (config instanceof Classifier) {
    // Fine-tuning a loaded model: the files it was loaded from.
    if (options !== null && typeof options === 'object') {
      if ('weights' in options) throw new InputError('softmoe: createTrainer takes a Classifier or options.weights, not both (the Classifier brings its weights)', 'a Classifier without options.weights');
      const { configJson, weights } = await config.source();
      return createTrainerWith(configJson, { ...options, weights }, host);
    }
    const { configJson, weights } = await config.source();
    return createTrainerWith(configJson, options === undefined ? { weights } : options, host);
  }
  return createTrainerWith(config, options, host);
}

/** Loads the engine (in the worker or here) with progress, warm-up and events wired. */
async function run(configJson: string, weights: Uint8Array, owned: boolean, options: Partial<LoadModelOptions>, names: { config: string; weights: string },
  worker: Promise<{ remote: RemoteEngine | null; reason: string | null }>, progress: (s: LoadStage) => void, events: (e: EngineEvent) => void): Promise<{ runner: Runner; workerReason: string | null }> {
  const engineOptions: EngineOptions = {
    backend: options.backend ?? 'auto', allowUnused: options.allowUnused ?? false, precision: options.precision ?? 'f32', warmup: options.warmup ?? true, configName: names.config, weightsName: names.weights,
  };
  const { remote, reason } = await worker;
  if (remote) {
    remote.onStage = progress;
    remote.onEvent = events;
    try {
      const info = await remote.load(configJson, owned ? weights : weights.slice(), engineOptions);
      const runner: Runner = { info, classify: (p, m) => remote.classify(p, m), pixels: (i, o) => remote.pixels(i, o), source: () => remote.source(), dispose: () => remote.dispose() };
      return { runner, workerReason: null };
    } catch (e) {
      remote.terminate();
      throw toSoftMoeError(e);
    }
  }
  await initialize();
  // The engine keeps the bytes to re-upload after a device loss: a copy of the caller's.
  const engine = await Engine.create(configJson, owned ? weights : weights.slice(), engineOptions, progress, events);
  const runner: Runner = {
    get info() { return engine.getInfo(); },
    classify: (p, m) => engine.classify(p, m),
    pixels: async (i) => engine.pixelsFromImageData(i),
    source: async () => engine.source(),
    dispose: () => engine.dispose(),
  };
  return { runner, workerReason: reason };
}

async function load(source: { url: string } | { configJson: string; weights: Uint8Array }, options: Partial<LoadModelOptions>): Promise<Classifier> {
  const t0 = performance.now();
  let bytesLoaded = 0, bytesTotal: number | null = null;
  const progress = (stage: LoadStage) => {
    try { options.onProgress?.({ stage, bytesLoaded, bytesTotal }); } catch (e) { console.error(e); }
  };
  // The worker starts (and compiles the wasm) while the files download.
  const worker = startWorker(options.worker);
  let configJson: string, weights: Uint8Array, owned: boolean, files: FileReport[] = [], names: { config: string; weights: string };
  try {
    if ('url' in source) {
      const base = source.url.replace(/\/$/, '');
      names = { config: `${base}/config.json`, weights: `${base}/model.safetensors` };
      const urls = [names.config, names.weights].map((u) => new URL(u, baseUrl()).href);
      const fetched = await fetchFiles(urls, options.cache ?? true, (l, t) => { bytesLoaded = l; bytesTotal = t; progress('fetch'); }, [names.config, names.weights]);
      files = fetched.map(({ data: _, ...report }) => report);
      configJson = new TextDecoder().decode(fetched[0].data);
      weights = fetched[1].data;
      owned = true;
    } else {
      ({ configJson, weights } = source);
      names = { config: 'config.json', weights: 'model.safetensors' };
      owned = false;
      bytesLoaded = weights.length + configJson.length;
      bytesTotal = bytesLoaded;
    }
  } catch (e) {
    worker.then(({ remote }) => remote?.terminate());
    throw toSoftMoeError(e);
  }
  const fetchMs = performance.now() - t0;
  const classifier = new Classifier(undefined as unknown as Runner, null as unknown as LoadReport);
  const { runner, workerReason } = await run(configJson, weights, owned, options, names, worker, progress, (e) => classifier.handle(e));
  const report: LoadReport = { files, timings: { fetch: fetchMs, ...runner.info.timings, total: performance.now() - t0 }, worker: workerReason === null, workerReason };
  classifier.attach(runner, report);
  if (runner.info.fallbackReason) console.info(`softmoe: running on the CPU (${runner.info.fallbackReason})`);
  return classifier;
}

/**
 * Loads a model folder: `${url}/config.json` and `${url}/model.safetensors`, from the Cache API
 * when an intact copy is there (`cache: false` skips it). Rejects with FetchError (the URL and
 * HTTP status), ConfigError, WeightsError, WebGpuUnavailableError or InputError.
 */
export async function loadModel(url: string | URL, options?: LoadModelOptions): Promise<Classifier> {
  if (typeof url !== 'string' && !(url instanceof URL)) throw new InputError(`softmoe: loadModel takes the model folder's URL, got ${describe(url)}`, 'a URL');
  return load({ url: String(url) }, checkOptions<LoadModelOptions>(options, [...MODEL_KEYS, 'cache'], 'loadModel'));
}

/** Loads a model from its config.json text and model.safetensors bytes (copied, not taken). */
export async function loadModelFromBytes(configJson: string, weights: Uint8Array, options?: ModelOptions): Promise<Classifier> {
  if (typeof configJson !== 'string') throw new InputError(`softmoe: loadModelFromBytes takes config.json as a string, got ${describe(configJson)}`, 'a string');
  if (!(weights instanceof Uint8Array)) throw new InputError(`softmoe: loadModelFromBytes takes model.safetensors as a Uint8Array, got ${describe(weights)}`, 'a Uint8Array');
  return load({ configJson, weights }, checkOptions<ModelOptions>(options, MODEL_KEYS, 'loadModelFromBytes'));
}

/** A loaded Soft MoE ViT (or any ViT softmoe loads): classify images, read the routing. Fires
 * `devicelost` and `backendchange` (see {@link ClassifierEventMap}). */
export class Classifier extends EventTarget {
  #runner!: Runner;
  #info!: EngineInfo;
  #disposed = false;
  #report!: LoadReport;

  /** Made by loadModel / loadModelFromBytes. */
  constructor(runner: Runner, report: LoadReport) {
    super();
    if (runner) this.attach(runner, report);
  }

  /** @internal */
  attach(runner: Runner, report: LoadReport) {
    this.#runner = runner;
    this.#info = runner.info;
    this.#report = report;
  }

  /** The model's hyper-parameters (config.json's keys). */
  get config(): ModelConfig { return this.#info.config; }
  /** The class names, by label. */
  get classNames(): string[] { return this.#info.config.class_names; }
  /** How the load went (files, cache, stage timings, worker). */
  get loadReport(): LoadReport { return this.#report; }

  /** @internal */
  handle(e: EngineEvent) {
    if (this.#disposed) return;
    if (e.type === 'devicelost') {
      console.warn(`softmoe: the GPU device was lost (${e.reason}); re-creating it`);
      this.dispatchEvent(new CustomEvent<DeviceLostDetail>('devicelost', { detail: { reason: e.reason } }));
    } else {
      this.#info = e.info;
      const { backend, adapter, fallbackReason } = e.info;
      this.dispatchEvent(new CustomEvent<BackendChangeDetail>('backendchange', { detail: { backend, adapter, fallbackReason, reason: e.reason } }));
    }
  }

  /** Where the model runs now: "webgpu" or "cpu". */
  get backend(): ActiveBackend { return this.#info.backend; }
  /** The adapter's name, or the CPU path. */
  get adapter(): string { return this.#info.adapter; }
  /** Why the CPU path runs, or null. */
  get fallbackReason(): string | null { return this.#info.fallbackReason; }
  /** How the Soft MoE experts' weights are stored: `'f32'` or `'f16'` on WebGPU (f32 arithmetic
   * either way), `'f64'` on the CPU path. */
  get precision(): 'f32' | 'f16' | 'f64' { return this.#info.precision; }
  /** Whether the model runs in a Web Worker. */
  get worker(): boolean { return this.loadReport.worker; }
  /** Whether dispose() was called. */
  get disposed(): boolean { return this.#disposed; }

  #check(what: string) {
    if (this.#disposed) throw new DisposedError(`softmoe: ${what} on a disposed model`);
  }

  /**
   * The model's input for `image`: a Float32Array or array of S·S values in [0, 1] as it is; an
   * ImageData or a canvas (any size, RGBA) to grayscale resized to S×S.
   */
  async pixels(image: ImageInput): Promise<Float32Array> {
    this.#check('pixels');
    if (image instanceof Float32Array) return image;
    if (Array.isArray(image)) return Float32Array.from(image);
    if (typeof ImageData !== 'undefined' && image instanceof ImageData) return this.#runner.pixels(image, false);
    const canvas = image as { getContext?: unknown; width?: number; height?: number } | null;
    if (canvas && typeof canvas.getContext === 'function') {
      const c = canvas as HTMLCanvasElement | OffscreenCanvas;
      if (!(c.width > 0 && c.height > 0)) throw new InputError(`softmoe: the canvas is empty (${c.width}×${c.height})`, 'a canvas of at least 1×1');
      const ctx = c.getContext('2d') as CanvasRenderingContext2D | OffscreenCanvasRenderingContext2D | null;
      if (!ctx) throw new InputError('softmoe: the canvas has no 2d context (it is in use by WebGL or WebGPU)', 'a canvas with a 2d context');
      return this.#runner.pixels(ctx.getImageData(0, 0, c.width, c.height), true);
    }
    const s = this.config.image_size;
    throw new InputError(`softmoe: classify takes a Float32Array or array of ${s}·${s} values in [0, 1], an ImageData or a canvas, got ${describe(image)}`,
      'a Float32Array, array, ImageData or canvas', [s, s]);
  }

  /** Classifies one image: `{label, className, probs, logits, layers, ms, backend}`. */
  async classify(image: ImageInput, options?: ClassifyOptions): Promise<Classification> {
    const { maps = true } = checkOptions<ClassifyOptions>(options, ['maps'], 'classify');
    const [result] = await this.classifyBatch(await this.pixels(image), { maps });
    return result;
  }

  /** Classifies b images given as b·S·S pixels; one result per image (`ms` is the whole batch's). */
  async classifyBatch(pixels: Float32Array, options?: ClassifyOptions): Promise<Classification[]> {
    this.#check('classifyBatch');
    const { maps = false } = checkOptions<ClassifyOptions>(options, ['maps'], 'classifyBatch');
    const s = this.config.image_size;
    if (!(pixels instanceof Float32Array)) throw new InputError(`softmoe: classifyBatch takes a Float32Array of b·${s}·${s} values, got ${describe(pixels)}`, 'a Float32Array', ['b', s, s]);
    const results = await this.#runner.classify(pixels, maps);
    // A call that was in flight when dispose() came rejects, however far it had got.
    if (this.#disposed) throw new DisposedError('softmoe: the model was disposed during classifyBatch');
    return results;
  }

  /** config.json's text and a copy of the model.safetensors bytes this model was loaded from
   * (what `createTrainer(classifier)` fine-tunes). */
  async source(): Promise<{ configJson: string; weights: Uint8Array }> {
    this.#check('source');
    return this.#runner.source();
  }

  /** Frees the model (its GPU memory, its worker) now; every later call rejects with DisposedError. */
  dispose(): void {
    if (this.#disposed) return;
    this.#disposed = true;
    this.#runner.dispose();
  }

  [Symbol.dispose](): void {
    this.dispose();
  }

  addEventListener<K extends keyof ClassifierEventMap>(type: K, listener: (ev: ClassifierEventMap[K]) => void, options?: boolean | AddEventListenerOptions): void;
  addEventListener(type: string, listener: EventListenerOrEventListenerObject | null, options?: boolean | AddEventListenerOptions): void;
  addEventListener(type: string, listener: EventListenerOrEventListenerObject | null | ((ev: never) => void), options?: boolean | AddEventListenerOptions): void {
    super.addEventListener(type, listener as EventListenerOrEventListenerObject | null, options);
  }

  removeEventListener<K extends keyof ClassifierEventMap>(type: K, listener: (ev: ClassifierEventMap[K]) => void, options?: boolean | EventListenerOptions): void;
  removeEventListener(type: string, listener: EventListenerOrEventListenerObject | null, options?: boolean | EventListenerOptions): void;
  removeEventListener(type: string, listener: EventListenerOrEventListenerObject | null | ((ev: never) => void), options?: boolean | EventListenerOptions): void {
    super.removeEventListener(type, listener as EventListenerOrEventListenerObject | null, options);
  }
}

/** A bare Soft MoE layer (on this thread), for models of your own. */
export class SoftMoeLayer {
  #raw: RawLayer;
  #disposed = false;

  /** Made by loadLayer. */
  constructor(raw: RawLayer) {
    this.#raw = raw;
  }

  get backend(): ActiveBackend { return this.#raw.backend; }
  get fallbackReason(): string | null { return this.#raw.fallbackReason ?? null; }
  /** The model width d: x is [batch, tokens, d]. */
  get d(): number { return this.#raw.d; }
  get disposed(): boolean { return this.#disposed; }

  /** x is a Float32Array [batch, tokens, d]; dispatch and combine come back as [batch, tokens, n, p]. */
  async forward(x: Float32Array, batch: number, tokens: number): Promise<LayerResult> {
    if (this.#disposed) throw new DisposedError('softmoe: forward on a disposed layer');
    try {
      return await this.#raw.forward(x, batch, tokens);
    } catch (e) {
      throw toSoftMoeError(e);
    }
  }

  /** Frees the layer's GPU memory now; every later call rejects with DisposedError. */
  dispose(): void {
    if (this.#disposed) return;
    this.#disposed = true;
    this.#raw.dispose();
    this.#raw.free();
  }

  [Symbol.dispose](): void {
    this.dispose();
  }
}

export interface LayerOptions {
  /** As for models: `'auto'` (default), `'webgpu'` or `'cpu'`. */
  backend?: Backend;
  /** Load a file holding tensors or metadata keys a layer does not use (they are ignored). */
  allowUnused?: boolean;
}

/** Loads a bare Soft MoE layer (safetensors with SPEC names) from a URL or bytes. */
export async function loadLayer(source: string | URL | Uint8Array, options?: LayerOptions): Promise<SoftMoeLayer> {
  const opts = checkOptions<LayerOptions>(options, ['backend', 'allowUnused'], 'loadLayer');
  await initialize();
  let bytes: Uint8Array, name = 'layer.safetensors';
  if (typeof source === 'string' || source instanceof URL) {
    name = String(source);
    const [f] = await fetchFiles([new URL(name, baseUrl()).href], false, () => {}, [name]);
    bytes = f.data;
  } else if (source instanceof Uint8Array) {
    bytes = source;
  } else {
    throw new InputError(`softmoe: loadLayer takes a URL or a Uint8Array of safetensors bytes, got ${describe(source)}`, 'a URL or a Uint8Array');
  }
  try {
    return new SoftMoeLayer(await RawLayer.load(bytes, { backend: opts.backend ?? 'auto', allowUnused: opts.allowUnused ?? false, weightsName: name }));
  } catch (e) {
    throw toSoftMoeError(e);
  }
}
