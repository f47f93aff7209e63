// The trainer where it runs (the page or the worker): the wasm Trainer, its errors turned into the
// typed ones, each call after the one before (the wasm refuses overlapping calls).

import { Trainer as RawTrainer } from './softmoe_wasm.js';
import type { Classification, EvalResult, ModelConfig, StepResult, TrainSchedule, WasmTrainOptions } from './softmoe_wasm.js';
import { DisposedError, toSoftMoeError } from './errors.js';

/** What a trainer says about itself once created. */
export interface TrainInfo {
  adapter: string;
  config: ModelConfig;
  schedule: TrainSchedule;
  steps: number;
}

/** A trained model as its two files. */
export interface ExportedModel {
  /** config.json's text (the model's keys and a `training` record). */
  configJson: string;
  /** model.safetensors' bytes. */
  weights: Uint8Array;
  /** Steps taken when it was exported. */
  steps: number;
}

export class TrainEngine {
  private queue: Promise<unknown> = Promise.resolve();
  private disposed = false;

  private constructor(private readonly raw: RawTrainer) {}

  static async create(configJson: string, weights: Uint8Array | null, options: WasmTrainOptions): Promise<TrainEngine> {
    try {
      return new TrainEngine(await RawTrainer.create(configJson, weights ?? undefined, options));
    } catch (e) {
      throw toSoftMoeError(e);
    }
  }

  info(): TrainInfo {
    return { adapter: this.raw.adapter, config: this.raw.config, schedule: this.raw.schedule, steps: this.raw.steps };
  }

  /** Runs `f` after every call before it has settled. */
  private serial<T>(what: string, f: () => Promise<T>): Promise<T> {
    const run = async () => {
      if (this.disposed) throw new DisposedError(`softmoe: ${what} on a disposed trainer`);
      try {
        return await f();
      } catch (e) {
        throw toSoftMoeError(e);
      }
    };
    const p = this.queue.then(run, run);
    this.queue = p.catch(() => {});
    return p;
  }

  step(pixels: Float32Array, labels: Int32Array | Uint32Array | number[], lr: number | undefined): Promise<StepResult> {
    return this.serial('step', () => this.raw.step(pixels, labels, lr));
  }

  evaluate(pixels: Float32Array, labels: Int32Array | Uint32Array | number[]): Promise<EvalResult> {
    return this.serial('evaluate', () => this.raw.evaluate(pixels, labels));
  }

  classify(pixels: Float32Array, maps: boolean): Promise<Classification[]> {
    return this.serial('classify', () => this.raw.classify(pixels, maps));
  }

  export(): Promise<ExportedModel> {
    return this.serial('export', () => this.raw.export());
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    // After the call in flight, if any: it must not find its device gone midway.
    this.queue.finally(() => {
      this.raw.dispose();
      this.raw.free();
    });
  }
}
