// The model where it runs (the page or the worker): loading in stages with warm-up, classifying,
// and recovery when the GPU device is lost. `Classifier` drives one directly or through the worker.

import { Model } from './softmoe_wasm.js';
import type { ActiveBackend, Backend, Classification, ModelConfig, Precision } from './softmoe_wasm.js';
import { DeviceLostError, DisposedError, toSoftMoeError } from './errors.js';

/** The stages of a load after the bytes are in: checking them, getting a device, uploading the
 * weights, compiling the pipelines (the first forward at batch 1 builds and runs every kernel),
 * warming up (a second forward, without maps), ready. */
export type EngineStage = 'parse' | 'device' | 'upload' | 'compile' | 'warmup' | 'ready';

export interface EngineInfo {
  backend: ActiveBackend;
  adapter: string;
  fallbackReason: string | null;
  /** The Soft MoE experts' weights on the GPU (`f32`, `f16`), or `f64` on the CPU path. */
  precision: 'f32' | 'f16' | 'f64';
  config: ModelConfig;
  /** Milliseconds each stage took (absent: skipped; none for `ready`). */
  timings: Partial<Record<EngineStage, number>>;
}

export interface EngineOptions {
  backend: Backend;
  allowUnused: boolean;
  precision: Precision;
  warmup: boolean;
  configName: string;
  weightsName: string;
}

/** What an engine tells its Classifier outside any call. */
export type EngineEvent =
  | { type: 'devicelost'; reason: string }
  | { type: 'backendchange'; info: EngineInfo; reason: string };

/** How long a failed call waits for the device's lost notice before judging it not lost. */
const LOST_GRACE_MS = 1000;

export class Engine {
  private raw: Model;
  private info: EngineInfo;
  private lostReason: string | null = null;
  private lostWaiters: ((reason: string) => void)[] = [];
  private recovering: Promise<void> | null = null;
  private disposed = false;
  private failed: Error | null = null;

  private constructor(
    private readonly configJson: string,
    /** Kept to re-upload after a device loss. */
    private readonly weights: Uint8Array,
    private readonly options: EngineOptions,
    private readonly onEvent: (e: EngineEvent) => void,
  ) {
    this.raw = null as unknown as Model;
    this.info = null as unknown as EngineInfo;
  }

  /** Loads and warms up a model; `onStage` hears each stage as it begins. */
  static async create(configJson: string, weights: Uint8Array, options: EngineOptions, onStage: (s: EngineStage) => void, onEvent: (e: EngineEvent) => void): Promise<Engine> {
    const engine = new Engine(configJson, weights, options, onEvent);
    const { raw, info } = await engine.load(options.backend, onStage);
    engine.raw = raw;
    engine.info = info;
    return engine;
  }

  private async load(backend: Backend, onStage: (s: EngineStage) => void): Promise<{ raw: Model; info: EngineInfo }> {
    const timings: Partial<Record<EngineStage, number>> = {};
    let current: EngineStage = 'parse';
    let since = performance.now();
    const enter = (s: EngineStage) => {
      const now = performance.now();
      timings[current] = (timings[current] ?? 0) + now - since;
      current = s;
      since = now;
      onStage(s);
    };
    onStage('parse');
    let raw: Model;
    try {
      raw = await Model.load(this.configJson, this.weights, {
        backend,
        allowUnused: this.options.allowUnused,
        precision: this.options.precision,
        configName: this.options.configName,
        weightsName: this.options.weightsName,
        onStage: (s) => enter(s),
        onDeviceLost: (reason) => this.lost(raw, reason),
      });
    } catch (e) {
      throw toSoftMoeError(e);
    }
    if (this.options.warmup) {
      const c = raw.config;
      const blank = new Float32Array(c.image_size * c.image_size * c.channels);
      try {
        // Both plans a batch of one uses (with maps, as classify; without, as classifyBatch). On
        // WebGPU the first forward compiles every pipeline: its own stage.
        if (raw.backend === 'webgpu') {
          enter('compile');
          await raw.classify(blank, true);
          enter('warmup');
        } else {
          enter('warmup');
          await raw.classify(blank, true);
        }
        await raw.classify(blank, false);
      } catch (e) {
        raw.dispose();
        raw.free();
        throw toSoftMoeError(e);
      }
    }
    enter('ready');
    const info: EngineInfo = { backend: raw.backend, adapter: raw.adapter, fallbackReason: raw.fallbackReason ?? null, precision: raw.precision as EngineInfo['precision'], config: raw.config, timings };
    return { raw, info };
  }

  /** The device of `raw` is lost: tell the Classifier and start re-creating it. */
  private lost(raw: Model, reason: string) {
    if (this.disposed || raw !== this.raw) return;
    this.lostReason = reason;
    for (const w of this.lostWaiters.splice(0)) w(reason);
    this.onEvent({ type: 'devicelost', reason });
    this.recovering ??= this.recover(reason).catch((e) => {
      // Not even the CPU path loads (it did before): every later call says so.
      this.recovering = null;
      this.failed = toSoftMoeError(e);
    });
  }

  /** A new device and the weights uploaded again; failing that, the CPU path, and why. */
  private async recover(reason: string): Promise<void> {
    const old = this.raw;
    let next: { raw: Model; info: EngineInfo };
    let why: string;
    try {
      next = await this.load(this.options.backend, () => {});
      why = next.info.backend === 'webgpu' ? `the GPU device was lost (${reason}); a new device was created and the weights uploaded again` : `the GPU device was lost (${reason}); the new load chose the CPU (${next.info.fallbackReason})`;
    } catch (e) {
      const failed = toSoftMoeError(e).message;
      next = await this.load('cpu', () => {});
      why = `the GPU device was lost (${reason}) and re-creating it failed (${failed}); running on the CPU path`;
      next.info.fallbackReason = why;
    }
    if (this.disposed) {
      next.raw.dispose();
      next.raw.free();
      return;
    }
    this.raw = next.raw;
    this.info = next.info;
    this.lostReason = null;
    this.recovering = null;
    // A call that was in flight may still read `old`; the GC frees it after that.
    old.dispose();
    this.onEvent({ type: 'backendchange', info: this.info, reason: why });
  }

  /** config.json's text and a copy of the model.safetensors bytes the model was loaded from. */
  source(): { configJson: string; weights: Uint8Array } {
    this.check('source');
    return { configJson: this.configJson, weights: this.weights.slice() };
  }

  getInfo(): EngineInfo {
    return this.info;
  }

  private check(what: string) {
    if (this.disposed) throw new DisposedError(`softmoe: ${what} on a disposed model`);
    if (this.failed) throw this.failed;
  }

  /** Resolves with the reason once the current device is lost, or null after `ms`. */
  private lostWithin(ms: number): Promise<string | null> {
    if (this.lostReason) return Promise.resolve(this.lostReason);
    return new Promise((resolve) => {
      const timer = setTimeout(() => resolve(null), ms);
      this.lostWaiters.push((r) => { clearTimeout(timer); resolve(r); });
    });
  }

  async classify(pixels: Float32Array, maps: boolean): Promise<Classification[]> {
    this.check('classify');
    // A lost device is being replaced: this call waits for it (and then runs on what replaced it).
    while (this.recovering) await this.recovering;
    this.check('classify');
    const raw = this.raw;
    try {
      return await raw.classify(pixels, maps);
    } catch (e) {
      if (this.disposed) throw new DisposedError('softmoe: the model was disposed during classify');
      const err = toSoftMoeError(e);
      if (raw.backend === 'webgpu' && (err.code === 'DEVICE' || err.code === 'DEVICE_LOST')) {
        const reason = raw.deviceLost ?? (await this.lostWithin(LOST_GRACE_MS));
        if (reason) throw new DeviceLostError(`softmoe: the GPU device was lost during classify (${reason}); the next call runs on a new device or the CPU`, reason);
      }
      throw err;
    }
  }

  pixelsFromImageData(image: ImageData): Float32Array {
    this.check('pixels');
    try {
      return this.raw.pixelsFromImageData(image);
    } catch (e) {
      throw toSoftMoeError(e);
    }
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    for (const w of this.lostWaiters.splice(0)) w('disposed');
    this.raw.dispose();
    this.raw.free();
  }
}
