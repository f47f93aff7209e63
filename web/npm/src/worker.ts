// The worker that runs a model off the main thread: one Engine, driven by messages (protocol.ts).
// Results go back as transferred buffers, not copies.

import init from './softmoe_wasm.js';
import { Engine } from './engine.js';
import { TrainEngine } from './train-engine.js';
import { toPlain } from './errors.js';
import { buffersOf, type Reply, type Request, type WorkerHello } from './protocol.js';

interface WorkerScope {
  postMessage(message: Reply, transfer?: Transferable[]): void;
  addEventListener(type: 'message', listener: (ev: MessageEvent<Request>) => void): void;
  navigator: Navigator;
}
const scope = self as unknown as WorkerScope;
let engine: Engine | null = null;
let trainer: TrainEngine | null = null;

function training(): TrainEngine {
  if (!trainer) throw new Error('no trainer created');
  return trainer;
}

const post = (reply: Reply, transfer: Transferable[] = []) => scope.postMessage(reply, transfer);

async function handle(req: Request): Promise<{ value: unknown; transfer?: Transferable[] }> {
  switch (req.op) {
    case 'init': {
      await init(req.wasmUrl ? { module_or_path: req.wasmUrl } : undefined);
      const hello: WorkerHello = { gpu: 'gpu' in scope.navigator && !!(scope.navigator as { gpu?: unknown }).gpu };
      return { value: hello };
    }
    case 'load':
      engine = await Engine.create(req.configJson, req.weights, req.options, (stage) => post({ kind: 'stage', stage }), (event) => post({ kind: 'event', event }));
      return { value: engine.getInfo() };
    case 'classify': {
      if (!engine) throw new Error('no model loaded');
      const results = await engine.classify(req.pixels, req.maps);
      return { value: results, transfer: buffersOf(results) };
    }
    case 'pixels': {
      if (!engine) throw new Error('no model loaded');
      const px = engine.pixelsFromImageData(req.image);
      return { value: px, transfer: [px.buffer as ArrayBuffer] };
    }
    case 'source': {
      if (!engine) throw new Error('no model loaded');
      const src = engine.source();
      return { value: src, transfer: [src.weights.buffer as ArrayBuffer] };
    }
    case 'dispose':
      engine?.dispose();
      engine = null;
      trainer?.dispose();
      trainer = null;
      return { value: null };
    case 'trainCreate':
      trainer = await TrainEngine.create(req.configJson, req.weights, req.options);
      return { value: trainer.info() };
    case 'trainStep':
      return { value: await training().step(req.pixels, req.labels, req.lr) };
    case 'trainEvaluate':
      return { value: await training().evaluate(req.pixels, req.labels) };
    case 'trainClassify': {
      const results = await training().classify(req.pixels, req.maps);
      return { value: results, transfer: buffersOf(results) };
    }
    case 'trainExport': {
      const out = await training().export();
      return { value: out, transfer: [out.weights.buffer as ArrayBuffer] };
    }
  }
}

scope.addEventListener('message', (ev) => {
  const req = ev.data;
  handle(req).then(
    ({ value, transfer }) => post({ kind: 'done', id: req.id, value }, transfer),
    (e) => post({ kind: 'failed', id: req.id, error: toPlain(e) }),
  );
});
