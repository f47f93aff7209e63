/**
 * One Soft MoE block's routing for one image; dispatch and combine are [grid², experts·slotsPerExpert]
 * over the patch tokens. With classifier `token` the class token's rows come apart in `classToken`
 * (null otherwise); dispatch's columns then sum to 1 with its row included.
 */
export interface LayerMaps {
  kind: 'soft';
  block: number;
  grid: number;
  experts: number;
  slotsPerExpert: number;
  dispatch: Float32Array;
  combine: Float32Array;
  classToken: { dispatch: Float32Array; combine: Float32Array } | null;
}

/**
 * One sparse block's routing for one image (Tokens Choice or Experts Choice), over the patch tokens
 * (a class token's routing is left out): gates [grid², experts]
 * (softmax over experts) and, per (token, expert), the slot the token took in that expert's buffer,
 * or -1 when that expert did not process it. A token with no slot anywhere was dropped.
 */
export interface LayerRoutes {
  kind: 'tokens_choice' | 'experts_choice';
  block: number;
  grid: number;
  experts: number;
  gates: Float32Array;
  slots: Int32Array;
}

export interface Classification {
  label: number;
  className: string;
  probs: Float32Array;
  logits: Float32Array;
  /** Present when maps were asked for (the default for classify). */
  layers: (LayerMaps | LayerRoutes)[];
  /** Wall time of the call in milliseconds. */
  ms: number;
  backend: 'webgpu' | 'cpu';
}

export type Backend = 'auto' | 'webgpu' | 'cpu';
/**
 * S·S grayscale values in [0, 1] (Float32Array or array), or an ImageData or canvas of any size:
 * composited over black, Rec. 709 luma, resized to S×S (as `softmoe classify --images FILE.png`).
 */
export type ImageInput = Float32Array | number[] | ImageData | HTMLCanvasElement | OffscreenCanvas;

export function initialize(wasmUrl?: string | URL): Promise<unknown>;
/**
 * Fetches `${url}/config.json` and `${url}/model.safetensors`. Rejects with a message naming the
 * URL and HTTP status of a failed fetch; `backend: 'webgpu'` rejects where there is no WebGPU adapter.
 */
/**
 * Load options: `backend` (default 'auto'); `allowUnused` (default false): load a file that holds
 * tensors the config does not use (they are ignored) instead of rejecting it, naming the first.
 */
export interface LoadOptions {
  backend?: Backend;
  allowUnused?: boolean;
}
export function loadModel(url: string, options?: LoadOptions): Promise<Classifier>;
export function loadModelFromBytes(configJson: string, weights: Uint8Array, options?: LoadOptions): Promise<Classifier>;

export class Classifier {
  readonly config: Record<string, unknown>;
  readonly classNames: string[];
  readonly backend: 'webgpu' | 'cpu';
  readonly adapter: string;
  readonly fallbackReason: string | null;
  pixels(image: ImageInput): Float32Array;
  classify(image: ImageInput, options?: { maps?: boolean }): Promise<Classification>;
  /** `pixels` must be a Float32Array of b·S·S values (anything else rejects, naming what it got). */
  classifyBatch(pixels: Float32Array, options?: { maps?: boolean }): Promise<Classification[]>;
}

export interface SoftMoeLayer {
  readonly backend: 'webgpu' | 'cpu';
  /** x is a Float32Array [batch, tokens, d]; dispatch and combine come back as [batch, tokens, n, p]. */
  forward(x: Float32Array, batch: number, tokens: number): Promise<{ y: Float32Array; dispatch: Float32Array; combine: Float32Array }>;
}

export function loadLayer(source: string | URL | Uint8Array, options?: LoadOptions): Promise<SoftMoeLayer>;
