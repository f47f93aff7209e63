// The page's side of worker mode: the same calls as a local Engine, sent to worker.ts.

import type { Classification, EvalResult, StepResult, WasmTrainOptions } from './softmoe_wasm.js';
import type { ExportedModel, TrainInfo } from './train-engine.js';
import type { EngineEvent, EngineInfo, EngineOptions, EngineStage } from './engine.js';
import { DisposedError, SoftMoeError, toSoftMoeError } from './errors.js';
import type { Reply, Request, WorkerHello } from './protocol.js';

type Pending = { resolve: (v: unknown) => void; reject: (e: Error) => void };
type Body<R> = R extends { id: number } ? Omit<R, 'id'> : never;

export class RemoteEngine {
  private nextId = 1;
  private pending = new Map<number, Pending>();
  private broken: SoftMoeError | null = null;
  onStage: (s: EngineStage) => void = () => {};
  onEvent: (e: EngineEvent) => void = () => {};

  private constructor(private readonly worker: Worker) {
    worker.addEventListener('message', (ev: MessageEvent<Reply>) => this.receive(ev.data));
    // A worker that fails to start or dies rejects every call in flight: nothing waits forever.
    worker.addEventListener('error', (ev) => this.fail(`the softmoe worker failed: ${ev.message || 'it could not be started (is worker.js served beside index.js?)'}`));
    worker.addEventListener('messageerror', () => this.fail('a message from the softmoe worker could not be read'));
  }

  /** Starts the worker and loads the wasm in it. */
  static async start(wasmUrl: string | null): Promise<{ remote: RemoteEngine; hello: WorkerHello }> {
    const worker = new Worker(new URL('./worker.js', import.meta.url), { type: 'module', name: 'softmoe' });
    const remote = new RemoteEngine(worker);
    const hello = (await remote.call({ op: 'init', wasmUrl })) as WorkerHello;
    return { remote, hello };
  }

  private fail(message: string, code: 'WORKER' | 'DISPOSED' = 'WORKER') {
    this.broken = code === 'DISPOSED' ? new DisposedError(message) : new SoftMoeError(message, code);
    for (const p of this.pending.values()) p.reject(this.broken);
    this.pending.clear();
  }

  private receive(r: Reply) {
    if (r.kind === 'stage') return this.onStage(r.stage);
    if (r.kind === 'event') return this.onEvent(r.event);
    const p = this.pending.get(r.id);
    if (!p) return;
    this.pending.delete(r.id);
    if (r.kind === 'done') p.resolve(r.value);
    else p.reject(toSoftMoeError(r.error));
  }

  private call(body: Body<Request>, transfer: Transferable[] = []): Promise<unknown> {
    if (this.broken) return Promise.reject(this.broken);
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.worker.postMessage({ ...body, id } as Request, transfer);
    });
  }

  /** Loads the model in the worker; the weights' buffer is transferred (the caller's copy is gone). */
  async load(configJson: string, weights: Uint8Array, options: EngineOptions): Promise<EngineInfo> {
    const transfer = weights.byteOffset === 0 && weights.byteLength === weights.buffer.byteLength ? [weights.buffer as ArrayBuffer] : [];
    return (await this.call({ op: 'load', configJson, weights, options }, transfer)) as EngineInfo;
  }

  classify(pixels: Float32Array, maps: boolean): Promise<Classification[]> {
    return this.call({ op: 'classify', pixels, maps }) as Promise<Classification[]>;
  }

  /** The loaded model's config.json text and model.safetensors bytes (a copy). */
  source(): Promise<{ configJson: string; weights: Uint8Array }> {
    return this.call({ op: 'source' }) as Promise<{ configJson: string; weights: Uint8Array }>;
  }

  /** Creates the trainer in the worker (the weights' buffer is transferred when `owned`). */
  async trainCreate(configJson: string, weights: Uint8Array | null, options: WasmTrainOptions, owned: boolean): Promise<TrainInfo> {
    const whole = weights && owned && weights.byteOffset === 0 && weights.byteLength === weights.buffer.byteLength;
    return (await this.call({ op: 'trainCreate', configJson, weights, options }, whole ? [weights.buffer as ArrayBuffer] : [])) as TrainInfo;
  }

  trainStep(pixels: Float32Array, labels: Int32Array | Uint32Array | number[], lr: number | undefined): Promise<StepResult> {
    return this.call({ op: 'trainStep', pixels, labels, lr }) as Promise<StepResult>;
  }

  trainEvaluate(pixels: Float32Array, labels: Int32Array | Uint32Array | number[]): Promise<EvalResult> {
    return this.call({ op: 'trainEvaluate', pixels, labels }) as Promise<EvalResult>;
  }

  trainClassify(pixels: Float32Array, maps: boolean): Promise<Classification[]> {
    return this.call({ op: 'trainClassify', pixels, maps }) as Promise<Classification[]>;
  }

  trainExport(): Promise<ExportedModel> {
    return this.call({ op: 'trainExport' }) as Promise<ExportedModel>;
  }

  /** `owned`: the ImageData is ours to give away (its buffer is transferred). */
  pixels(image: ImageData, owned: boolean): Promise<Float32Array> {
    return this.call({ op: 'pixels', image }, owned ? [image.data.buffer as ArrayBuffer] : []) as Promise<Float32Array>;
  }

  /** Frees the model (or trainer: `what`) in the worker, then ends the worker. */
  dispose(what = 'model'): void {
    const done = this.call({ op: 'dispose' });
    // Calls made from now on are refused; those in flight are answered (the worker rejects them
    // with DisposedError), and whatever is left when the worker ends is rejected here.
    this.broken = new DisposedError(`softmoe: the ${what} was disposed`);
    done.catch(() => {}).finally(() => {
      this.worker.terminate();
      this.fail(`softmoe: the ${what} was disposed during the call`, 'DISPOSED');
    });
  }

  terminate(): void {
    this.worker.terminate();
    this.fail('softmoe: the worker was stopped');
  }
}
