// The messages between the page and the worker (worker.ts, remote.ts).

import type { Classification, WasmTrainOptions } from './softmoe_wasm.js';
import type { EngineEvent, EngineInfo, EngineOptions, EngineStage } from './engine.js';
import type { PlainError } from './errors.js';

export type Request =
  | { id: number; op: 'init'; wasmUrl: string | null }
  | { id: number; op: 'load'; configJson: string; weights: Uint8Array; options: EngineOptions }
  | { id: number; op: 'classify'; pixels: Float32Array; maps: boolean }
  | { id: number; op: 'pixels'; image: ImageData }
  | { id: number; op: 'dispose' }
  | { id: number; op: 'source' }
  | { id: number; op: 'trainCreate'; configJson: string; weights: Uint8Array | null; options: WasmTrainOptions }
  | { id: number; op: 'trainStep'; pixels: Float32Array; labels: Int32Array | Uint32Array | number[]; lr: number | undefined }
  | { id: number; op: 'trainEvaluate'; pixels: Float32Array; labels: Int32Array | Uint32Array | number[] }
  | { id: number; op: 'trainClassify'; pixels: Float32Array; maps: boolean }
  | { id: number; op: 'trainExport' };

export type Reply =
  | { kind: 'done'; id: number; value: unknown }
  | { kind: 'failed'; id: number; error: PlainError }
  | { kind: 'stage'; stage: EngineStage }
  | { kind: 'event'; event: EngineEvent };

/** What the worker answers to `init`: whether WebGPU is there in the worker. */
export interface WorkerHello {
  gpu: boolean;
}

export type { Classification, EngineInfo };

/** The ArrayBuffers of the typed arrays in `results`, to transfer instead of copying them. */
export function buffersOf(results: Classification[]): ArrayBuffer[] {
  const out = new Set<ArrayBuffer>();
  const add = (a: { buffer: ArrayBufferLike }) => { if (a.buffer instanceof ArrayBuffer) out.add(a.buffer); };
  for (const r of results) {
    add(r.probs);
    add(r.logits);
    for (const l of r.layers) {
      if (l.kind === 'soft') { add(l.dispatch); add(l.combine); } else { add(l.gates); add(l.slots); }
    }
  }
  return [...out];
}
