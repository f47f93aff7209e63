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
  const res = await fetch(url);
  if (!res.ok) throw new Error(`softmoe: fetching ${url} failed: HTTP ${res.status}`);
  return as === 'text' ? res.text() : new Uint8Array(await res.arrayBuffer());
}

/** Loads a model folder (config.json + model.safetensors) from a URL. */
export async function loadModel(url, options = {}) {
  const base = url.replace(/\/$/, '');
  const [config, weights] = await Promise.all([fetchOk(`${base}/config.json`, 'text'), fetchOk(`${base}/model.safetensors`)]);
  return loadModelFromBytes(config, weights, options);
}

/** Loads a model from its config.json text and model.safetensors bytes. */
export async function loadModelFromBytes(configJson, weights, { backend = 'auto' } = {}) {
  await initialize();
  const model = await Model.load(configJson, weights, backend);
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

  /** Converts an image (Float32Array or array of S·S values in [0, 1], ImageData, or a canvas) to pixels. */
  pixels(image) {
    if (image instanceof Float32Array) return image;
    if (Array.isArray(image)) return Float32Array.from(image);
    if (typeof ImageData !== 'undefined' && image instanceof ImageData) return this.model.pixelsFromImageData(image);
    if (image && typeof image.getContext === 'function') {
      const ctx = image.getContext('2d');
      return this.model.pixelsFromImageData(ctx.getImageData(0, 0, image.width, image.height));
    }
    throw new Error('softmoe: classify takes a Float32Array, an array, ImageData or a canvas');
  }

  /** Classifies one image: {label, className, probs, logits, layers, ms, backend}. */
  async classify(image, { maps = true } = {}) {
    const [result] = await this.classifyBatch(this.pixels(image), { maps });
    return result;
  }

  /** Classifies b images given as b·S·S pixels; one result per image, ms for the whole batch. */
  async classifyBatch(pixels, { maps = false } = {}) {
    const t0 = performance.now();
    const results = await this.model.classify(pixels, maps);
    const ms = performance.now() - t0;
    for (const r of results) { r.ms = ms; r.backend = this.backend; }
    return results;
  }
}

/** Loads a bare Soft MoE layer (safetensors with SPEC names) from a URL or bytes. */
export async function loadLayer(source, { backend = 'auto' } = {}) {
  await initialize();
  const bytes = typeof source === 'string' ? await fetchOk(source) : source;
  return SoftMoeLayer.load(bytes, backend);
}
