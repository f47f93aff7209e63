// Training in the browser: `createTrainer` and the `Trainer` it resolves to, run in a Web Worker by
// default (as a Classifier is) on WebGPU; the options checked strictly, every failure a typed error.

import type { Classification, EvalResult, ModelConfig, StepResult, TrainSchedule, WasmTrainOptions } from './softmoe_wasm.js';
import { DisposedError, InputError, toSoftMoeError } from './errors.js';
import type { RemoteEngine } from './remote.js';
import { TrainEngine, type ExportedModel, type TrainInfo } from './train-engine.js';

export type { EvalResult, ExportedModel, StepResult, TrainSchedule };

export interface TrainerOptions {
  /** `'auto'` (default) or `'webgpu'`: either way WebGPU on any adapter (SwiftShader included),
   * since there is no CPU trainer; without an adapter createTrainer rejects with WebGpuUnavailableError. */
  backend?: 'auto' | 'webgpu';
  /** model.safetensors bytes to fine-tune (copied, not taken); without them the weights start from
   * the recipe's initialisation for `seed`. */
  weights?: Uint8Array;
  /** Accept weights holding tensors the config does not use. */
  allowUnused?: boolean;
  /** Seed of the initialisation (default 42). */
  seed?: number;
  /** Peak learning rate (default 4e-3). */
  lr?: number;
  /** Steps of the warm-up + cosine schedule (the candle trainer's recipe); without it every step runs
   * at `lr` unless it gives its own. */
  totalSteps?: number;
  /** Linear warm-up steps of the schedule (default: totalSteps / 48, the recipe's half epoch of 24). */
  warmupSteps?: number;
  /** AdamW's decoupled weight decay (default 0.05). */
  weightDecay?: number;
  /** Label smoothing of the loss (default 0.1). */
  labelSmoothing?: number;
  /** Clip the gradients' global norm to this (default 0: no clipping). */
  clipNorm?: number;
  /** Train in a Web Worker (default: yes where workers have WebGPU); `false` trains on this thread. */
  worker?: boolean;
}

export interface StepOptions {
  /** This step's learning rate instead of the schedule's. */
  lr?: number;
}

export type Labels = Int32Array | Uint32Array | number[];

const KEYS = ['backend', 'weights', 'allowUnused', 'seed', 'lr', 'totalSteps', 'warmupSteps', 'weightDecay', 'labelSmoothing', 'clipNorm', 'worker'];

/** What a value is, for messages. */
function describe(v: unknown): string {
  if (v === null || v === undefined) return String(v);
  if (typeof v !== 'object' && typeof v !== 'function') return `a ${typeof v}`;
  return (v as { constructor?: { name?: string } }).constructor?.name || 'an object';
}

function number(o: Record<string, unknown>, key: string, ok: (v: number) => boolean, expected: string): number | undefined {
  const v = o[key];
  if (v === undefined) return undefined;
  if (typeof v !== 'number' || !ok(v)) throw new InputError(`softmoe: createTrainer option ${key} must be ${expected}, got ${typeof v === 'number' ? v : describe(v)}`, expected);
  return v;
}

/** The options checked (known keys only, each of its type and range) as the wasm's. */
function check(options: unknown): { wasm: WasmTrainOptions; weights: Uint8Array | null; worker: boolean | undefined } {
  if (options === undefined) return { wasm: {}, weights: null, worker: undefined };
  if (options === null || typeof options !== 'object') throw new InputError(`softmoe: createTrainer takes an options object, got ${describe(options)}`, 'an options object');
  const o = options as Record<string, unknown>;
  for (const k of Object.keys(o)) {
    if (!KEYS.includes(k)) throw new InputError(`softmoe: createTrainer has no option \`${k}\` (it takes ${KEYS.join(', ')})`, `one of ${KEYS.join(', ')}`);
  }
  if (o.backend !== undefined && o.backend !== 'auto' && o.backend !== 'webgpu') {
    const got = typeof o.backend === 'string' ? `\`${o.backend}\`` : describe(o.backend);
    throw new InputError(`softmoe: createTrainer backend must be auto or webgpu (training runs on WebGPU only; there is no CPU trainer), got ${got}`, 'auto or webgpu');
  }
  if (o.weights !== undefined && !(o.weights instanceof Uint8Array)) throw new InputError(`softmoe: createTrainer option weights must be model.safetensors as a Uint8Array, got ${describe(o.weights)}`, 'a Uint8Array');
  for (const k of ['allowUnused', 'worker']) {
    if (o[k] !== undefined && typeof o[k] !== 'boolean') throw new InputError(`softmoe: createTrainer option ${k} must be true or false, got ${describe(o[k])}`, 'a boolean');
  }
  const int = (v: number) => Number.isSafeInteger(v) && v >= 0;
  const pos = (v: number) => Number.isSafeInteger(v) && v > 0;
  const wasm: WasmTrainOptions = {
    seed: number(o, 'seed', int, 'an integer ≥ 0'),
    lr: number(o, 'lr', (v) => Number.isFinite(v) && v > 0, 'a positive number'),
    totalSteps: number(o, 'totalSteps', pos, 'a positive integer'),
    warmupSteps: number(o, 'warmupSteps', int, 'an integer ≥ 0'),
    weightDecay: number(o, 'weightDecay', (v) => Number.isFinite(v) && v >= 0, 'a number ≥ 0'),
    labelSmoothing: number(o, 'labelSmoothing', (v) => v >= 0 && v < 1, 'a number in [0, 1)'),
    clipNorm: number(o, 'clipNorm', (v) => Number.isFinite(v) && v >= 0, 'a number ≥ 0 (0: no clipping)'),
    allowUnused: o.allowUnused as boolean | undefined,
  };
  // serde reads an absent key as its default, not an undefined one.
  for (const k of Object.keys(wasm) as (keyof WasmTrainOptions)[]) if (wasm[k] === undefined) delete wasm[k];
  return { wasm, weights: (o.weights as Uint8Array | undefined) ?? null, worker: o.worker as boolean | undefined };
}

/** The trainer's runner: an engine here, or one in the worker. */
interface Runner {
  step(pixels: Float32Array, labels: Labels, lr: number | undefined): Promise<StepResult>;
  evaluate(pixels: Float32Array, labels: Labels): Promise<EvalResult>;
  classify(pixels: Float32Array, maps: boolean): Promise<Classification[]>;
  export(): Promise<ExportedModel>;
  dispose(): void;
}

/** What index.ts lends: the wasm on this thread, and a worker with the wasm loaded. */
export interface Host {
  initialize(): Promise<void>;
  startWorker(want: boolean | undefined): Promise<{ remote: RemoteEngine | null; reason: string | null }>;
}

/** @internal (index.ts's createTrainer) */
export async function create(config: string | ModelConfig | object, options: TrainerOptions | undefined, host: Host): Promise<Trainer> {
  let configJson: string;
  if (typeof config === 'string') configJson = config;
  else if (config !== null && typeof config === 'object' && !ArrayBuffer.isView(config)) configJson = JSON.stringify(config);
  else throw new InputError(`softmoe: createTrainer takes config.json's text or its object, got ${describe(config)}`, 'a string or a config object');
  const { wasm, weights, worker } = check(options);
  const { remote, reason } = await host.startWorker(worker);
  if (remote) {
    try {
      // A copy of the caller's bytes goes to the worker, and that copy's buffer is transferred.
      const info = await remote.trainCreate(configJson, weights ? weights.slice() : null, wasm, true);
      const runner: Runner = {
        step: (p, l, lr) => remote.trainStep(p, l, lr),
        evaluate: (p, l) => remote.trainEvaluate(p, l),
        classify: (p, m) => remote.trainClassify(p, m),
        export: () => remote.trainExport(),
        dispose: () => remote.dispose('trainer'),
      };
      return new Trainer(runner, info, null);
    } catch (e) {
      remote.terminate();
      throw toSoftMoeError(e);
    }
  }
  await host.initialize();
  const engine = await TrainEngine.create(configJson, weights, wasm);
  const runner: Runner = {
    step: (p, l, lr) => engine.step(p, l, lr),
    evaluate: (p, l) => engine.evaluate(p, l),
    classify: (p, m) => engine.classify(p, m),
    export: () => engine.export(),
    dispose: () => engine.dispose(),
  };
  return new Trainer(runner, engine.info(), reason);
}

/** A ViT being trained on WebGPU (made by createTrainer). Each call waits for the one before. */
export class Trainer {
  #runner: Runner;
  #info: TrainInfo;
  #workerReason: string | null;
  #steps: number;
  #disposed = false;

  /** Made by createTrainer. */
  constructor(runner: Runner, info: TrainInfo, workerReason: string | null) {
    this.#runner = runner;
    this.#info = info;
    this.#workerReason = workerReason;
    this.#steps = info.steps;
  }

  /** The adapter training runs on. */
  get adapter(): string { return this.#info.adapter; }
  /** The model's hyper-parameters (config.json's keys). */
  get config(): ModelConfig { return this.#info.config; }
  get classNames(): string[] { return this.#info.config.class_names; }
  /** The learning-rate schedule: peak, total and warm-up steps. */
  get schedule(): TrainSchedule { return this.#info.schedule; }
  /** Steps taken (as of the last step that resolved). */
  get steps(): number { return this.#steps; }
  /** Whether training runs in a Web Worker, and why not when it does not. */
  get worker(): boolean { return this.#workerReason === null; }
  get workerReason(): string | null { return this.#workerReason; }
  get disposed(): boolean { return this.#disposed; }

  #check(what: string) {
    if (this.#disposed) throw new DisposedError(`softmoe: ${what} on a disposed trainer`);
  }

  #pixels(pixels: unknown, what: string): Float32Array {
    const s = this.config.image_size;
    if (!(pixels instanceof Float32Array)) throw new InputError(`softmoe: ${what} takes the images as a Float32Array of b·${s}·${s} values in [0, 1], got ${describe(pixels)}`, 'a Float32Array', ['b', s, s]);
    return pixels;
  }

  #labels(labels: unknown, what: string): Labels {
    if (labels instanceof Int32Array || labels instanceof Uint32Array || Array.isArray(labels)) return labels;
    throw new InputError(`softmoe: ${what} takes the labels as an Int32Array, Uint32Array or array of class indices, got ${describe(labels)}`, 'one class index per image', ['b']);
  }

  /** One AdamW step on a batch: b·S·S pixels in [0, 1] and b labels. Resolves to the batch's loss
   * (before the update), the step count and the learning rate it ran at. */
  async step(pixels: Float32Array, labels: Labels, options?: StepOptions): Promise<StepResult> {
    this.#check('step');
    if (options !== undefined && (options === null || typeof options !== 'object')) throw new InputError(`softmoe: step takes an options object, got ${describe(options)}`, 'an options object');
    const o = (options ?? {}) as Record<string, unknown>;
    for (const k of Object.keys(o)) if (k !== 'lr') throw new InputError(`softmoe: step has no option \`${k}\` (it takes lr)`, 'lr');
    if (o.lr !== undefined && (typeof o.lr !== 'number' || !(Number.isFinite(o.lr) && o.lr >= 0))) throw new InputError(`softmoe: step's lr must be a number ≥ 0, got ${o.lr}`, 'a number ≥ 0');
    const r = await this.#runner.step(this.#pixels(pixels, 'step'), this.#labels(labels, 'step'), o.lr as number | undefined);
    if (this.#disposed) throw new DisposedError('softmoe: the trainer was disposed during step');
    this.#steps = r.step;
    return r;
  }

  /** Accuracy and mean cross-entropy of the current weights on labelled images (b·S·S pixels, b labels). */
  async evaluate(pixels: Float32Array, labels: Labels): Promise<EvalResult> {
    this.#check('evaluate');
    return this.#runner.evaluate(this.#pixels(pixels, 'evaluate'), this.#labels(labels, 'evaluate'));
  }

  /** Classifies b·S·S pixels with the current weights, as Classifier.classifyBatch does (`maps`:
   * each MoE block's routing, default true). */
  async classify(pixels: Float32Array, options?: { maps?: boolean }): Promise<Classification[]> {
    this.#check('classify');
    const maps = options?.maps ?? true;
    if (typeof maps !== 'boolean') throw new InputError(`softmoe: classify's maps must be true or false, got ${describe(maps)}`, 'a boolean');
    return this.#runner.classify(this.#pixels(pixels, 'classify'), maps);
  }

  /** The model as it is now: config.json's text and model.safetensors' bytes, which
   * loadModelFromBytes and `softmoe classify --model DIR` load. */
  async export(): Promise<ExportedModel> {
    this.#check('export');
    return this.#runner.export();
  }

  /** Frees the GPU memory and the worker; every later call rejects with DisposedError. */
  dispose(): void {
    if (this.#disposed) return;
    this.#disposed = true;
    this.#runner.dispose();
  }

  [Symbol.dispose](): void {
    this.dispose();
  }
}
