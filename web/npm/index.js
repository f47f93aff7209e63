// softmoe: Soft Mixture-of-Experts on WebGPU. A thin ES-module layer over the wasm build:
// fetching, image conversion and timing; the model runs in Rust (WebGPU, or the CPU path in wasm).
import init, { Model, SoftMoeLayer } from './softmoe_wasm.js';

let ready = null;

/** Loads the wasm module once (by default from beside this file). */
export function initialize(wasmUrl) {
  ready ??= init(wasmUrl ? { module_or_path: wasmUrl } : undefined);
  return ready;
}

async function fetchOk(url, as) {
  let res;
  try {
    res = await fetch(url);
  } catch (e) {
    throw new Error(`softmoe: fetching ${url} failed: ${e.message ?? e}`);
  }
  if (!res.ok) throw new Error(`softmoe: fetching ${url} failed: HTTP ${res.status} ${res.statusText}`.trimEnd());
  return as === 'text' ? res.text() : new Uint8Array(await res.arrayBuffer());
}

/** What a value is, for messages: "a string", "Int32Array", "null". */
function describe(v) {
  if (v === null || v === undefined) return String(v);
  if (typeof v !== 'object' && typeof v !== 'function') return `a ${typeof v}`;
  return v.constructor?.name || 'an object';
}

/** The backend option, checked: 'auto', 'webgpu' or 'cpu' (the wasm names a wrong string too). */
function backendOption(backend) {
  if (typeof backend !== 'string') throw new Error(`softmoe: backend must be one of auto, webgpu, cpu, got ${describe(backend)}`);
  return backend;
}

/** Loads a model folder (config.json + model.safetensors) from a URL. */
export async function loadModel(url, options = {}) {
  const base = url.replace(/\/$/, '');
  // Both fetches run at once; when both fail, the message names config.json's.
  const fetched = await Promise.allSettled([fetchOk(`${base}/config.json`, 'text'), fetchOk(`${base}/model.safetensors`)]);
  const failed = fetched.find((f) => f.status === 'rejected');
  if (failed) throw failed.reason;
  return loadModelFromBytes(fetched[0].value, fetched[1].value, options);
}

/** A boolean option, checked. */
function flagOption(name, v) {
  if (typeof v !== 'boolean') throw new Error(`softmoe: ${name} must be true or false, got ${describe(v)}`);
  return v;
}

/**
 * Loads a model from its config.json text and model.safetensors bytes. A tensor the config does not
 * use is an error unless `allowUnused` is true (then it is ignored).
 */
export async function loadModelFromBytes(configJson, weights, { backend = 'auto', allowUnused = false } = {}) {
  if (typeof configJson !== 'string') throw new Error(`softmoe: loadModelFromBytes takes config.json as a string, got ${describe(configJson)}`);
  if (!(weights instanceof Uint8Array)) throw new Error(`softmoe: loadModelFromBytes takes model.safetensors as a Uint8Array, got ${describe(weights)}`);
  await initialize();
  const model = await Model.load(configJson, weights, backendOption(backend), flagOption('allowUnused', allowUnused));
  if (model.fallbackReason) console.info(`softmoe: running on the CPU (${model.fallbackReason})`);
  return new Classifier(model);
}

/** A loaded Soft MoE ViT. */
export class Classifier {
  constructor(model) {
    this.model = model;
    this.config = JSON.parse(model.config);
    this.classNames = model.classNames;
  }
  /** "webgpu" or "cpu". */
  get backend() { return this.model.backend; }
  /** The adapter's name, or the CPU path. */
  get adapter() { return this.model.adapter; }
  /** Why the CPU path runs, or null. */
  get fallbackReason() { return this.model.fallbackReason ?? null; }

  /**
   * Converts an image to S·S pixels: a Float32Array or array of S·S values in [0, 1] as it is, an
   * ImageData or a canvas (any size, RGBA) to grayscale resized to S×S.
   */
  pixels(image) {
    if (image instanceof Float32Array) return image;
    if (Array.isArray(image)) return Float32Array.from(image);
    if (typeof ImageData !== 'undefined' && image instanceof ImageData) return this.model.pixelsFromImageData(image);
    if (image && typeof image.getContext === 'function') {
      if (!(image.width > 0 && image.height > 0)) throw new Error(`softmoe: the canvas is empty (${image.width}×${image.height})`);
      const ctx = image.getContext('2d');
      if (!ctx) throw new Error('softmoe: the canvas has no 2d context (it is in use by WebGL or WebGPU)');
      return this.model.pixelsFromImageData(ctx.getImageData(0, 0, image.width, image.height));
    }
    const s = this.config.image_size;
    throw new Error(`softmoe: classify takes a Float32Array or array of ${s}·${s} values in [0, 1], an ImageData or a canvas, got ${describe(image)}`);
  }

  /** Classifies one image: {label, className, probs, logits, layers, ms, backend}. */
  async classify(image, { maps = true } = {}) {
    const [result] = await this.classifyBatch(this.pixels(image), { maps });
    return result;
  }

  /** Classifies b images given as b·S·S pixels; one result per image, ms for the whole batch. */
  async classifyBatch(pixels, { maps = false } = {}) {
    if (!(pixels instanceof Float32Array)) throw new Error(`softmoe: classifyBatch takes a Float32Array of b·${this.config.image_size}·${this.config.image_size} values, got ${describe(pixels)}`);
    const t0 = performance.now();
    const results = await this.model.classify(pixels, maps);
    const ms = performance.now() - t0;
    for (const r of results) { r.ms = ms; r.backend = this.backend; }
    return results;
  }
}

/** Loads a bare Soft MoE layer (safetensors with SPEC names) from a URL or bytes. */
export async function loadLayer(source, { backend = 'auto', allowUnused = false } = {}) {
  await initialize();
  const bytes = typeof source === 'string' || source instanceof URL ? await fetchOk(source) : source;
  if (!(bytes instanceof Uint8Array)) throw new Error(`softmoe: loadLayer takes a URL or a Uint8Array of safetensors bytes, got ${describe(source)}`);
  return SoftMoeLayer.load(bytes, backendOption(backend), flagOption('allowUnused', allowUnused));
}
